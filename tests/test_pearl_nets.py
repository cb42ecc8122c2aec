"""PEARL's nets: shapes, the posterior's permutation invariance, the actor's deterministic mode,
log-std clamp and init, the context layout read from replay batches."""

from __future__ import annotations

import pytest
import torch

from metarl import keys
from metarl.algorithms.pearl import product_of_gaussians
from metarl.algorithms.sac import tanh_gaussian_log_prob
from metarl.data.replay import MultiTaskReplay
from metarl.nets import ProbContextEncoder, TanhGaussianActor, TanhGaussianOutput, TwinCritic, ValueNet
from tests.test_replay import ACT, OBS, make_episode

LATENT = 4


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_encoder_shapes_positive_variances_and_posterior() -> None:
    torch.manual_seed(0)
    enc = ProbContextEncoder(OBS, ACT, latent_size=LATENT, hidden_sizes=(16, 16))
    assert enc.context_dim == OBS + ACT + 1
    assert ProbContextEncoder(OBS, ACT, use_next_obs=True).context_dim == 2 * OBS + ACT + 1
    context = torch.randn(3, 7, enc.context_dim, generator=gen())
    mu, var = enc(context)
    assert mu.shape == var.shape == (3, 7, LATENT) and (var > 0).all()
    raw = enc.net(context)[..., LATENT:]
    torch.testing.assert_close(var, torch.nn.functional.softplus(raw))  # oyster: var = softplus(raw)
    post_mu, post_var = enc.posterior(context)
    assert post_mu.shape == post_var.shape == (3, LATENT)
    ref_mu, ref_var = product_of_gaussians(mu, var)
    torch.testing.assert_close(post_mu, ref_mu)
    torch.testing.assert_close(post_var, ref_var)
    assert (post_var < var.min(dim=1).values + 1e-6).all()  # more evidence, narrower belief


def test_posterior_is_invariant_to_the_order_of_transitions() -> None:
    torch.manual_seed(1)
    enc = ProbContextEncoder(OBS, ACT, latent_size=LATENT, hidden_sizes=(16,))
    context = torch.randn(2, 9, enc.context_dim, generator=gen(1))
    perm = torch.randperm(9, generator=gen(2))
    for a, b in zip(enc.posterior(context), enc.posterior(context[:, perm]), strict=True):
        torch.testing.assert_close(a, b)
    other = enc.posterior(context[:, :8])  # ... but not to which transitions are there
    assert not torch.allclose(other[1], enc.posterior(context)[1])


def test_encoder_rejects_a_wrong_context_width() -> None:
    enc = ProbContextEncoder(OBS, ACT, hidden_sizes=(8,))
    with pytest.raises(ValueError, match=rf"\[\.\.\., N, {OBS + ACT + 1}\]"):
        enc(torch.zeros(2, 5, OBS + ACT + 1 + OBS))
    with pytest.raises(ValueError, match="latent_size"):
        ProbContextEncoder(OBS, ACT, latent_size=0)


@pytest.mark.parametrize("use_next_obs", [False, True])
def test_context_from_replay_batch_layout(use_next_obs: bool) -> None:
    replay = MultiTaskReplay(2, 20, OBS, ACT, 0)
    replay.extend(make_episode(0, 0, 6))
    replay.extend(make_episode(1, 2, 5))
    batch = replay.sample_per_task([1, 0, 1], 8, gen(3))
    context = ProbContextEncoder.context_from(batch, use_next_obs)
    width = OBS + ACT + 1 + (OBS if use_next_obs else 0)
    assert context.shape == (3, 8, width) and context.dtype == torch.float32
    torch.testing.assert_close(context[..., :OBS], batch[keys.OBS])
    torch.testing.assert_close(context[..., OBS:OBS + ACT], batch[keys.ACTION])
    torch.testing.assert_close(context[..., OBS + ACT:OBS + ACT + 1], batch[keys.REWARD])  # raw reward
    if use_next_obs:
        torch.testing.assert_close(context[..., OBS + ACT + 1:], batch[keys.NEXT_OBS])
    enc = ProbContextEncoder(OBS, ACT, use_next_obs=use_next_obs, hidden_sizes=(8,))
    assert enc.posterior(context)[0].shape == (3, 5)


def _actor(**kwargs) -> TanhGaussianActor:  # type: ignore[no-untyped-def]
    torch.manual_seed(2)
    return TanhGaussianActor(OBS, ACT, LATENT, hidden_sizes=(32, 32), **kwargs)


def test_actor_sampled_and_deterministic_outputs() -> None:
    actor = _actor()
    obs, z = torch.randn(5, OBS, generator=gen(4)), torch.randn(5, LATENT, generator=gen(5))
    eps = torch.randn(5, ACT, generator=gen(6))
    rng = torch.get_rng_state()
    out = actor(obs, z, eps)
    assert torch.equal(torch.get_rng_state(), rng)  # the noise is the caller's
    assert isinstance(out, TanhGaussianOutput)
    assert out.action.shape == out.mean.shape == out.log_std.shape == out.pre_tanh.shape == (5, ACT)
    assert out.log_prob.shape == (5, 1)
    torch.testing.assert_close(out.pre_tanh, out.mean + out.log_std.exp() * eps)
    torch.testing.assert_close(out.action, torch.tanh(out.pre_tanh))
    torch.testing.assert_close(out.log_prob, tanh_gaussian_log_prob(out.pre_tanh, out.mean, out.log_std))
    det = actor(obs, z, None)
    torch.testing.assert_close(det.action, torch.tanh(det.mean))
    torch.testing.assert_close(det.mean, out.mean)
    assert torch.equal(det.pre_tanh, det.mean)
    (out.action.sum() + out.log_prob.sum()).backward()  # reparameterised: both heads get gradients
    assert actor.mean_head.weight.grad.abs().sum() > 0 and actor.log_std_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="eps has shape"):
        actor(obs, z, torch.zeros(5, ACT + 1))


def test_actor_heads_init_uniform_init_w_body_default() -> None:
    actor = _actor(init_w=1e-3)
    for head in (actor.mean_head, actor.log_std_head):
        for p in head.parameters():
            assert p.abs().max() <= 1e-3 and p.abs().max() > 5e-4  # filled, not zero
    assert actor.body[0].weight.abs().max() > 1e-2  # PyTorch's default init, untouched
    out = actor(torch.randn(64, OBS, generator=gen(7)), torch.randn(64, LATENT, generator=gen(8)), None)
    assert out.mean.abs().max() < 0.05 and out.log_std.abs().max() < 0.05  # starts near N(0, 1) before the tanh


def test_actor_log_std_is_clamped() -> None:
    actor = _actor(log_std_min=-5.0, log_std_max=1.5)
    obs, z = torch.randn(4, OBS, generator=gen(9)), torch.randn(4, LATENT, generator=gen(10))
    with torch.no_grad():
        actor.log_std_head.bias.fill_(40.0)
    high = actor(obs, z, torch.zeros(4, ACT))
    assert torch.equal(high.log_std, torch.full((4, ACT), 1.5))
    high.log_prob.sum().backward()
    assert actor.log_std_head.bias.grad.abs().sum() == 0  # no gradient through a saturated clamp
    with torch.no_grad():
        actor.log_std_head.bias.fill_(-40.0)
    assert torch.equal(actor(obs, z, None).log_std, torch.full((4, ACT), -5.0))
    default = _actor()
    assert (default.log_std_min, default.log_std_max) == (-20.0, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"lr": 0.0}, "lr"), ({"log_std_min": 2.0, "log_std_max": 2.0}, "log_std_min"), ({"init_w": 0.0}, "init_w")],
)
def test_actor_bad_args(kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        TanhGaussianActor(OBS, ACT, LATENT, **kwargs)


def test_value_net_twin_critic_three_layers_and_optimizers() -> None:
    v = ValueNet(OBS, LATENT, hidden_sizes=(16, 16, 16))
    assert v(torch.zeros(6, OBS), torch.zeros(6, LATENT)).shape == (6, 1)
    q = TwinCritic(OBS, ACT, LATENT, hidden_sizes=(16, 16, 16))
    assert sum(isinstance(m, torch.nn.Linear) for m in q.q1) == 4  # three hidden layers + output
    assert all(t.shape == (6, 1) for t in q(torch.zeros(6, OBS), torch.zeros(6, ACT), torch.zeros(6, LATENT)))
    enc, actor = ProbContextEncoder(OBS, ACT, hidden_sizes=(8,)), _actor()
    for net in (v, enc, actor):
        opt = net.make_optimizer()
        assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 3e-4
        assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in net.parameters()}
    with_extra = actor.make_optimizer(extra=[enc])
    assert len(with_extra.param_groups[0]["params"]) == len(list(actor.parameters())) + len(list(enc.parameters()))
    with pytest.raises(ValueError, match="lr"):
        ValueNet(OBS, LATENT, lr=-1.0)
