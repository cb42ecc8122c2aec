"""The model-based nets (metarl.nets.dynamics): MIER's ContextualGaussianModel and GrBAL's
DeltaDynamicsModel. Sizes and inits of the references, context broadcasting, the bounds, the loss
closures that algorithms.mier and a functional inner step use, normalisation, the MPC step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metarl.algorithms.mier import adapt_context, model_loss, model_targets
from metarl.algorithms.mpc import random_shooting
from metarl.nets import ContextualGaussianModel, DeltaDynamicsModel

OBS, ACT = 3, 2


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(*lead: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = gen(seed)
    obs, act = torch.randn(*lead, OBS, generator=g), torch.randn(*lead, ACT, generator=g)
    return obs, act, obs + 0.1 * torch.randn(*lead, OBS, generator=g), torch.randn(*lead, 1, generator=g)


def test_contextual_model_matches_mier_public_sizes_and_init() -> None:
    torch.manual_seed(0)
    model = ContextualGaussianModel(OBS, ACT)
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (OBS + ACT + 5, 200), (200, 200), (200, 200), (200, 200), (200, 2 * (1 + OBS))]
    acts = [m for m in model.net if not isinstance(m, nn.Linear)]
    assert len(acts) == 4 and all(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in acts)
    for m in linears:  # Glorot uniform, zero bias
        limit = (6 / (m.in_features + m.out_features)) ** 0.5
        assert m.weight.abs().max() <= limit and m.weight.abs().max() > 0.9 * limit and not m.bias.any()
    assert model.max_state_logvar.tolist() == [0.5] * OBS and model.min_reward_logvar.tolist() == [-10.0]
    assert model.context0.tolist() == [0.0] * 5 and isinstance(model.context0, nn.Parameter)
    fixed = ContextualGaussianModel(OBS, ACT, learn_context0=False)  # mier_public: phi_0 = 0, not trained
    assert not isinstance(fixed.context0, nn.Parameter) and "context0" in fixed.state_dict()
    assert (model.context_lr, model.context_steps, model.context_clip, model.outer_clip, model.lr) == (
        0.01, 2, 10.0, 10.0, 1e-3)
    with pytest.raises(ValueError, match="context_dim must be an int >= 1"):
        ContextualGaussianModel(OBS, ACT, context_dim=0)


def test_contextual_model_broadcasts_one_context_per_task_and_bounds_logvar() -> None:
    torch.manual_seed(1)
    model = ContextualGaussianModel(OBS, ACT, context_dim=4, hidden_sizes=(16, 16))
    obs, act, _, _ = batch(2, 7)
    ctx = torch.randn(2, 4, generator=gen(1))
    pred = model(obs, act, ctx)
    assert pred.mean.shape == pred.logvar.shape == (2, 7, 1 + OBS)
    explicit = model(obs, act, ctx.unsqueeze(1).expand(2, 7, 4))
    torch.testing.assert_close(pred.mean, explicit.mean)
    assert not torch.allclose(model(obs, act, ctx.flip(0)).mean, pred.mean)  # the context matters
    assert (pred.logvar > -10.0).all() and (pred.logvar < 0.5 + 1e-4).all()
    torch.testing.assert_close(pred.max_logvar, torch.tensor([0.5] * (1 + OBS)))
    with torch.no_grad():  # the reward's bounds go with output 0 (y = [r, ds]), the state's with the rest
        model.min_reward_logvar.fill_(-0.2)
        model.max_state_logvar.fill_(-5.0)
    pred = model(obs, act, ctx)
    assert pred.min_logvar.tolist() == pytest.approx([-0.2] + [-10.0] * OBS)
    # (soft bounds: the state outputs exceed -5 by at most the min bound's softplus tail, e^(-5))
    assert (pred.logvar[..., 0] > -0.2).all() and (pred.logvar[..., 1:] < -5.0 + 0.01).all()


def test_contextual_loss_closure_adapts_the_context_only() -> None:
    torch.manual_seed(2)
    model = ContextualGaussianModel(OBS, ACT, context_dim=3, hidden_sizes=(32, 32)).double()
    obs, act, nxt, rew = (x.double() for x in batch(4, 20, seed=2))
    target = model_targets(obs, rew, nxt)
    params = dict(model.named_parameters())
    loss_fn = model.context_loss(obs, act, target)
    c0 = model.context0.expand(4, 3)
    torch.testing.assert_close(loss_fn(params, c0), model.loss(obs, act, c0, target).total)
    torch.testing.assert_close(loss_fn(params, c0), model_loss(model(obs, act, c0), target).total)
    c2 = adapt_context(loss_fn, params, c0, steps=2, lr=0.01)
    assert (loss_fn(params, c2) < loss_fn(params, c0)).all()  # small steps down a smooth loss
    # The post-adaptation loss trains theta, the bounds and phi_0 through the inner steps.
    loss_fn(params, adapt_context(loss_fn, params, c0, steps=2, lr=0.01)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    reward_only = ContextualGaussianModel(OBS, ACT, context_dim=3, hidden_sizes=(8,), predict_state=False)
    out = reward_only.loss(obs.float(), act.float(), torch.zeros(3), target.float())
    torch.testing.assert_close(out.total, out.reward_nll)


def test_clip_groups_and_optimizer_cover_every_parameter_once() -> None:
    for learn in (True, False):
        model = ContextualGaussianModel(OBS, ACT, hidden_sizes=(8,), learn_context0=learn)
        grouped = [id(p) for group in model.clip_groups() for p in group]
        assert sorted(grouped) == sorted(id(p) for p in model.parameters()) and len(set(grouped)) == len(grouped)
        assert len(model.clip_groups()[0]) == 4  # all weights in one group, as mier_public's one flat variable
        opt = model.make_optimizer()
        assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
        assert opt.param_groups[0]["lr"] == 1e-3


def test_delta_model_sizes_normalisation_and_loss() -> None:
    torch.manual_seed(3)
    default = DeltaDynamicsModel(OBS, ACT)
    assert [m.out_features for m in default.net if isinstance(m, nn.Linear)] == [512, 512, 512, OBS]
    assert sum(isinstance(m, nn.ReLU) for m in default.net) == 3 and default.inner_lr == 1e-3
    model = DeltaDynamicsModel(OBS, ACT, hidden_sizes=(16,), reward_head=True)
    obs, act, nxt, rew = batch(50, seed=3)
    y = model.targets(obs, nxt, rew)
    torch.testing.assert_close(y, torch.cat([nxt - obs, rew], -1))
    out_raw = model(obs, act)
    model.fit_normalization(obs, act, nxt, rew)
    torch.testing.assert_close(model.target_mean, y.mean(0))
    torch.testing.assert_close(model.target_std, y.std(0, unbiased=False))
    assert {"obs_mean", "act_std", "target_mean"} <= set(model.state_dict())  # checkpointed with the weights
    assert not torch.allclose(model(obs, act), out_raw)
    norm_pred = model(obs, act, normalized=True)
    torch.testing.assert_close(model(obs, act), norm_pred * (model.target_std + 1e-10) + model.target_mean)
    expected = (norm_pred - (y - model.target_mean) / (model.target_std + 1e-10)).square().mean()
    torch.testing.assert_close(model.loss(obs, act, nxt, rew), expected)
    with pytest.raises(ValueError, match="needs a reward"):
        model.targets(obs, nxt)


def test_delta_model_functional_inner_step_equals_sgd() -> None:
    torch.manual_seed(4)
    model = DeltaDynamicsModel(OBS, ACT, hidden_sizes=(16, 16), inner_lr=0.1)
    obs, act, nxt, _ = batch(16, seed=4)
    model.fit_normalization(obs, act, nxt)
    params = dict(model.named_parameters())
    torch.testing.assert_close(model.loss(obs, act, nxt, params=params), model.loss(obs, act, nxt))
    grads = torch.func.grad(lambda p: model.loss(obs, act, nxt, params=p))(params)
    adapted = {k: v - model.inner_lr * grads[k] for k, v in params.items()}  # GrBAL's theta' on the past M
    sgd = torch.optim.SGD(model.parameters(), lr=model.inner_lr)
    model.loss(obs, act, nxt).backward()
    sgd.step()
    for name, p in model.named_parameters():
        torch.testing.assert_close(adapted[name], p)
    next_obs, reward = model.step(obs, act)
    assert reward is None and next_obs.shape == obs.shape
    torch.testing.assert_close(next_obs, obs + model(obs, act))


def test_delta_model_with_reward_head_is_an_mpc_step() -> None:
    torch.manual_seed(5)
    model = DeltaDynamicsModel(OBS, ACT, hidden_sizes=(8,), reward_head=True)
    params = {k: v.detach() + 0.01 for k, v in model.named_parameters()}
    step = lambda o, a: model.step(o, a, params)  # noqa: E731  (adapted weights, as GrBAL plans)
    next_obs, reward = step(*batch(5)[:2])
    assert next_obs.shape == (5, OBS) and reward is not None and reward.shape == (5, 1)
    action = random_shooting(step, torch.zeros(OBS), ACT, gen(6), horizon=3, n_candidates=20)
    assert action.shape == (ACT,) and (action.abs() <= 1).all()
