"""MIER's pure math (metarl.algorithms.mier): the model's NLL against torch.distributions and its
log-var bounds, the clipped context step by hand, the second-order meta-gradient against finite
differences (and what first order drops), the outer clip's groups, and relabeling with an oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.distributions import Normal

from metarl.algorithms.mier import (
    GaussianPrediction,
    adapt_context,
    bounded_logvar,
    clip_by_norm,
    clip_grad_groups_,
    context_sgd_step,
    gaussian_nll,
    meta_gradient,
    model_loss,
    model_targets,
    post_adaptation_loss,
    relabel,
)
from metarl.envs import make_task_family
from metarl.envs.point import MAX_STEP

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=F64)


def test_targets_are_reward_then_state_delta() -> None:
    obs, nxt, rew = randn(4, 3), randn(4, 3, seed=1), randn(4, 1, seed=2)
    y = model_targets(obs, rew, nxt)
    torch.testing.assert_close(y, torch.cat([rew, nxt - obs], -1))
    with pytest.raises(ValueError, match="reward"):
        model_targets(obs, rew.squeeze(-1), nxt)


def test_nll_matches_normal_log_prob_where_the_bounds_are_inactive() -> None:
    mean, raw, y = randn(2, 7, 3), randn(2, 7, 3, seed=1).clamp(-2, 2), randn(2, 7, 3, seed=2)
    lo, hi = torch.full((3,), -50.0, dtype=F64), torch.full((3,), 50.0, dtype=F64)
    logvar = bounded_logvar(raw, lo, hi)
    torch.testing.assert_close(logvar, raw, rtol=0, atol=1e-12)  # far from both bounds: the identity
    loss, mse = gaussian_nll(mean, logvar, y, lo, hi)
    log_p = Normal(mean, torch.exp(0.5 * logvar)).log_prob(y)
    # mier_public's loss is 2 x the mean NLL minus log 2 pi, plus 0.01 (sum max - sum min) = 0.01 * 300.
    expected = -2 * log_p.mean(dim=(-2, -1)) - math.log(2 * math.pi) + 0.01 * (150.0 + 150.0)
    assert loss.shape == (2,)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(mse, (mean - y).square().mean(dim=(-2, -1)))


def test_logvar_bounds_saturate_and_are_learned() -> None:
    lo, hi = torch.tensor([-10.0], dtype=F64), torch.tensor([0.5], dtype=F64)
    raw = torch.linspace(-1e4, 1e4, 2001, dtype=F64).unsqueeze(-1)
    lv = bounded_logvar(raw, lo, hi)
    assert (torch.diff(lv.squeeze(-1)) >= 0).all()  # monotone
    assert lv.min() >= -10.0 and lv.max() <= 0.5 + 1e-4  # soft: within a softplus tail of max
    assert lv[0].item() == pytest.approx(-10.0, abs=1e-6) and lv[-1].item() == pytest.approx(0.5, abs=1e-4)
    # A huge error with a saturated variance stays finite: the weight e^{-lv} is at most e^{10}.
    loss, _ = gaussian_nll(torch.zeros(1, 1, dtype=F64), bounded_logvar(torch.tensor([[-1e4]], dtype=F64), lo, hi),
                           torch.full((1, 1), 1e3, dtype=F64), lo, hi)
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(1e6 * math.exp(10) - 10 + 0.105, rel=1e-6)
    # The bounds get gradients: with outputs saturated at max and tiny errors, the likelihood pushes max
    # down (d/d max > 0, more than the 0.01 regulariser alone); min gets about the regulariser's -0.01 only.
    hi_p, lo_p = hi.clone().requires_grad_(), lo.clone().requires_grad_()
    lv = bounded_logvar(torch.full((5, 1), 100.0, dtype=F64), lo_p, hi_p)
    loss, _ = gaussian_nll(torch.zeros(5, 1, dtype=F64), lv, torch.full((5, 1), 1e-3, dtype=F64), lo_p, hi_p)
    d_hi, d_lo = torch.autograd.grad(loss, (hi_p, lo_p))
    assert d_hi.item() > 0.5 and d_lo.item() == pytest.approx(-0.01, abs=1e-4)  # + a sigmoid(-10.5) tail


def test_model_loss_sums_the_reward_and_state_blocks() -> None:
    mean, raw, y = randn(6, 4), randn(6, 4, seed=1), randn(6, 4, seed=2)
    lo, hi = torch.tensor([-10.0, -9.0, -8.0, -7.0], dtype=F64), torch.tensor([0.5, 0.4, 0.3, 0.2], dtype=F64)
    pred = GaussianPrediction(mean, bounded_logvar(raw, lo, hi), lo, hi)
    r = gaussian_nll(mean[:, :1], pred.logvar[:, :1], y[:, :1], lo[:1], hi[:1])
    s = gaussian_nll(mean[:, 1:], pred.logvar[:, 1:], y[:, 1:], lo[1:], hi[1:])
    out = model_loss(pred, y)
    torch.testing.assert_close(out.total, r[0] + s[0])  # each block averaged over its own outputs
    torch.testing.assert_close((out.reward_mse, out.state_mse), (r[1], s[1]))
    torch.testing.assert_close(model_loss(pred, y, predict_state=False).total, r[0])
    torch.testing.assert_close(model_loss(pred, y, predict_reward=False).total, s[0])
    with pytest.raises(ValueError, match="at least one"):
        model_loss(pred, y, predict_reward=False, predict_state=False)


def test_clip_by_norm_is_tf_clip_by_norm_per_row() -> None:
    x = torch.tensor([[3.0, 4.0], [30.0, 40.0], [0.0, 0.0]], dtype=F64)
    torch.testing.assert_close(clip_by_norm(x, 10.0), torch.tensor([[3.0, 4.0], [6.0, 8.0], [0.0, 0.0]], dtype=F64))


def quadratic(a: Tensor, b: Tensor):  # type: ignore[no-untyped-def]
    """Per-task loss 0.5 |A_t c_t - b_t|^2 with gradient A_t^T (A_t c_t - b_t): known by hand."""

    def loss(params: dict[str, Tensor], c: Tensor) -> Tensor:
        return 0.5 * (torch.einsum("tij,tj->ti", params["a"], c) - params["b"]).square().sum(-1)

    def hand_grad(c: Tensor) -> Tensor:
        return torch.einsum("tij,ti->tj", a, torch.einsum("tij,tj->ti", a, c) - b)

    return loss, hand_grad


def test_context_steps_equal_hand_computed_clipped_sgd() -> None:
    a = torch.stack([3.0 * torch.eye(2, dtype=F64), 0.1 * torch.eye(2, dtype=F64)])
    b = torch.tensor([[30.0, -40.0], [0.1, 0.2]], dtype=F64)  # task 0's gradient is clipped, task 1's is not
    loss, hand_grad = quadratic(a, b)
    c0 = torch.tensor([[0.5, 1.0], [-1.0, 2.0]], dtype=F64)
    c = c0
    for lr in (0.01, 0.001):  # extrapolation's schedule: 0.01, then 0.001
        g = hand_grad(c)
        norm = g.norm(dim=-1, keepdim=True)
        c = c - lr * torch.where(norm > 10.0, g * 10.0 / norm, g)
    assert hand_grad(c0)[0].norm() > 10 > hand_grad(c0)[1].norm()
    out = adapt_context(loss, {"a": a, "b": b}, c0, steps=2, lr=[0.01, 0.001], max_norm=10.0)
    torch.testing.assert_close(out, c)
    one = context_sgd_step(c0, hand_grad(c0), 0.01, 10.0)
    torch.testing.assert_close(adapt_context(loss, {"a": a, "b": b}, c0, steps=1, lr=0.01), one)
    torch.testing.assert_close(adapt_context(loss, {"a": a, "b": b}, c0, steps=0), c0)
    with pytest.raises(ValueError, match="need 2 learning rates"):
        adapt_context(loss, {"a": a, "b": b}, c0, steps=2, lr=[0.01])


def tiny_model(seed: int = 0):  # type: ignore[no-untyped-def]
    """A 2-task tanh net on [x, c] with fixed adaptation and evaluation data, float64."""
    params = {"w1": randn(4, 3, seed=seed), "b1": randn(3, seed=seed + 1), "w2": randn(3, 2, seed=seed + 2)}
    x_a, y_a = randn(2, 5, 2, seed=seed + 3), randn(2, 5, 2, seed=seed + 4)
    x_e, y_e = randn(2, 6, 2, seed=seed + 5), randn(2, 6, 2, seed=seed + 6)

    def on(x: Tensor, y: Tensor):  # type: ignore[no-untyped-def]
        def loss(p: dict[str, Tensor], c: Tensor) -> Tensor:
            inp = torch.cat([x, c.unsqueeze(-2).expand(*x.shape[:-1], 2)], -1)
            out = torch.tanh(inp @ p["w1"] + p["b1"]) @ p["w2"]
            return (out - y).square().mean(dim=(-2, -1))

        return loss

    return params, on(x_a, y_a), on(x_e, y_e), randn(2, 2, seed=seed + 7)


def objective(params, adapt, evaluate, c0, **kw) -> float:  # type: ignore[no-untyped-def]
    return post_adaptation_loss(adapt, evaluate, params, c0, **kw)[0].mean().item()


@pytest.mark.parametrize("max_norm", [100.0, 0.1])  # the clip inactive, and active on every step and task
def test_second_order_meta_gradient_matches_finite_differences(max_norm: float) -> None:
    params, adapt, evaluate, c0 = tiny_model()
    kw = {"steps": 2, "lr": 0.5, "max_norm": max_norm}
    inner = torch.func.grad(lambda c: adapt(params, c).sum())
    c1 = adapt_context(adapt, params, c0, 1, 0.5, max_norm)
    norms = torch.stack([inner(c0).norm(dim=-1), inner(c1).norm(dim=-1)])
    assert (norms > max_norm).all() if max_norm < 1 else (norms < max_norm).all()
    # Autograd path (what a LightningModule's backward sees) ...
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    c0_leaf = c0.clone().requires_grad_()
    loss, _ = post_adaptation_loss(adapt, evaluate, leaves, c0_leaf, **kw)
    grads = torch.autograd.grad(loss.mean(), [*leaves.values(), c0_leaf])
    # ... and the functional path agree ...
    fn = meta_gradient(adapt, evaluate, params, c0, **kw)
    for name, g in zip([*params, "c0"], grads, strict=True):
        torch.testing.assert_close(fn.params[name] if name != "c0" else fn.context0, g)
    # ... and both match central differences of the whole adapted objective.
    eps = 1e-6
    for name, value in [*params.items(), ("c0", c0)]:
        fd = torch.zeros_like(value)
        for i in range(value.numel()):
            shift = torch.zeros_like(value).view(-1)
            shift[i] = eps
            plus, minus = value + shift.view_as(value), value - shift.view_as(value)
            if name == "c0":
                f_p, f_m = (objective(params, adapt, evaluate, x, **kw) for x in (plus, minus))
            else:
                f_p, f_m = (objective({**params, name: x}, adapt, evaluate, c0, **kw) for x in (plus, minus))
            fd.view(-1)[i] = (f_p - f_m) / (2 * eps)
        got = fn.context0 if name == "c0" else fn.params[name]
        torch.testing.assert_close(got, fd, rtol=1e-6, atol=1e-8)


def test_first_order_drops_exactly_the_second_order_term() -> None:
    params, adapt, evaluate, c0 = tiny_model(seed=10)
    lr, kw = 0.5, {"steps": 1, "lr": 0.5, "max_norm": 1e6}
    second = meta_gradient(adapt, evaluate, params, c0, **kw)
    first = meta_gradient(adapt, evaluate, params, c0, first_order=True, **kw)
    # First order: the partial derivatives at a constant phi_1 (d phi_1 / d theta = 0, d phi_1 / d phi_0 = I).
    phi1 = second.context
    torch.testing.assert_close(first.context, phi1)
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    phi1_leaf = phi1.clone().requires_grad_()
    partials = torch.autograd.grad(evaluate(leaves, phi1_leaf).mean(), [*leaves.values(), phi1_leaf])
    for name, g in zip(params, partials[:-1], strict=True):
        torch.testing.assert_close(first.params[name], g)
    torch.testing.assert_close(first.context0, partials[-1])
    # Second minus first = -lr * d/d(theta, phi_0) [grad_phi L_adapt(theta, phi_0) . v], v = dL_eval/dphi_1.
    v = partials[-1].detach()
    leaves = {k: v_.clone().requires_grad_() for k, v_ in params.items()}
    c0_leaf = c0.clone().requires_grad_()
    g_phi = torch.autograd.grad(adapt(leaves, c0_leaf).sum(), c0_leaf, create_graph=True)[0]
    hvp = torch.autograd.grad((g_phi * v).sum(), [*leaves.values(), c0_leaf])
    for name, h in zip(params, hvp[:-1], strict=True):
        torch.testing.assert_close(second.params[name] - first.params[name], -lr * h)
        assert h.abs().max() > 1e-3  # the dropped term is not negligible here
    torch.testing.assert_close(second.context0 - first.context0, -lr * hvp[-1])


def test_outer_clip_groups_share_one_norm() -> None:
    w1, w2, bound = (torch.zeros(2, requires_grad=True) for _ in range(3))
    w1.grad, w2.grad = torch.tensor([12.0, 0.0]), torch.tensor([0.0, 16.0])  # group norm 20
    bound.grad = torch.tensor([3.0, 4.0])  # norm 5: untouched
    clip_grad_groups_([[w1, w2], [bound]], 10.0)
    torch.testing.assert_close(w1.grad, torch.tensor([6.0, 0.0]))  # per-parameter clipping would keep 12 -> 10
    torch.testing.assert_close(w2.grad, torch.tensor([0.0, 8.0]))
    torch.testing.assert_close(bound.grad, torch.tensor([3.0, 4.0]))


def point_transitions(n: int = 60) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Real point-robot transitions (random actions, partly outside the action box) on one task."""
    fam = make_task_family("point-robot")
    task = fam.eval_tasks[2]
    env = fam.make_env(task)
    rng = np.random.default_rng(0)
    obs, rows = env.reset(seed=1)[0], []
    for _ in range(n):
        a = rng.uniform(-1.5, 1.5, 2)
        nxt, r, *_ = env.step(a)
        rows.append((obs, a, r, nxt))
        obs = nxt
    o, a, r, nx = (torch.tensor(np.array(col), dtype=F64) for col in zip(*rows, strict=True))
    return o, a, r.unsqueeze(-1), nx, torch.tensor(task.params["goal"], dtype=F64)


def oracle(obs: Tensor, action: Tensor, goal: Tensor, logvar: float = -3.0) -> GaussianPrediction:
    """The point robot's true dynamics and reward, written as MIER's model: y = [r, Δs]."""
    delta = MAX_STEP * action.clamp(-1.0, 1.0)
    reward = -(obs + delta - goal).norm(dim=-1, keepdim=True)
    mean = torch.cat([reward, delta], -1)
    bounds = torch.full((3,), logvar, dtype=F64)
    return GaussianPrediction(mean, torch.full_like(mean, logvar), bounds, bounds)


def never(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    return torch.zeros(*obs.shape[:-1], 1, dtype=torch.bool)


def test_relabel_with_an_oracle_model_reproduces_the_env() -> None:
    obs, action, reward, next_obs, goal = point_transitions()
    new_obs, new_r, done = relabel(oracle(obs, action, goal), obs, action, never, sample=False)
    torch.testing.assert_close(new_obs, next_obs, rtol=0, atol=1e-12)
    torch.testing.assert_close(new_r, reward, rtol=0, atol=1e-12)
    assert done.dtype == torch.bool and not done.any()
    # Sampling (mier_public's default): one N(0, I) draw for [r, Δs], scaled by exp(lv / 2).
    pred = oracle(obs, action, goal)
    s_obs, s_r, _ = relabel(pred, obs, action, never, sample=True, generator=gen(4))
    eps = torch.randn(pred.mean.shape, generator=gen(4), dtype=F64)
    sigma = math.exp(-1.5)
    torch.testing.assert_close(s_r, reward + sigma * eps[:, :1])
    torch.testing.assert_close(s_obs, next_obs + sigma * eps[:, 1:])
    with pytest.raises(ValueError, match="needs a generator"):
        relabel(pred, obs, action, never, sample=True)


def test_relabel_recomputes_termination_from_the_new_next_state() -> None:
    obs, action, _, next_obs, goal = point_transitions(40)
    right = lambda o, a, n: n[..., :1] > o[..., :1]  # noqa: E731  (a "done" rule on s')
    pred = oracle(obs, action, goal, logvar=0.0)  # sigma = 1: the sampled s' often moves the other way
    new_obs, _, done = relabel(pred, obs, action, right, sample=True, generator=gen(5))
    torch.testing.assert_close(done, new_obs[:, :1] > obs[:, :1])  # the rule on the sampled s' ...
    stored = next_obs[:, :1] > obs[:, :1]
    assert (done != stored).any() and done.any() and not done.all()  # ... not the stored flag, nor the mean's
