"""The fast TD3+GRU update is the straightforward one: the fused GRU (metarl.nets.gru), the encoders
batched in td3_update and fused Adam against nn.GRU, one call per encoder and plain Adam.

The reference update below is TD3ContextNets.td3_update as it was before the fast path, written out
with ``nn.GRU`` calls (``encoder.gru(history)``) and ``torch.optim.Adam(foreach=False)``; the TD3 math
comes from metarl.algorithms in both (tested on its own in test_algorithms_td3.py).
"""

from __future__ import annotations

import copy
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from tensordict import TensorDict
from torch import Tensor, nn
from torch.testing import assert_close

from metarl import keys
from metarl.algorithms.proximal import proximal_penalty
from metarl.algorithms.td3 import actor_loss, critic_loss, smooth_target_action, soft_update_, td3_target
from metarl.methods.mql import TD3Settings
from metarl.methods.mql.td3_nets import TD3ContextNets
from metarl.nets import Actor, ContextEncoder, TwinCritic
from metarl.nets.gru import fused_gru

OBS, ACT, H, Z, B = 3, 2, 5, 4, 16
TD3 = TD3Settings(policy_freq=2)


class Tiny(TD3ContextNets, pl.LightningModule):
    def __init__(self, shared: bool, dtype: torch.dtype, fast: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.build_nets(
            OBS, ACT, partial(ContextEncoder, hidden_size=Z, fast=fast), partial(Actor, hidden_sizes=(8, 8)),
            partial(TwinCritic, hidden_sizes=(8, 8)), shared,
        )
        self.to(dtype)


def batch(seed: int, dtype: torch.dtype, n: int = B) -> TensorDict:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    return TensorDict({
        keys.OBS: r(n, OBS), keys.ACTION: r(n, ACT).clamp(-1, 1), keys.HISTORY: r(n, H, ACT + 1 + OBS),
        "next": {"observation": r(n, OBS), "reward": r(n, 1), "terminated": torch.rand(n, 1, generator=g) < 0.2,
                 "history": r(n, H, ACT + 1 + OBS)},
    }, batch_size=[n])


def gru_z(encoder: ContextEncoder, history: Tensor) -> Tensor:
    return encoder.gru(history)[1][-1]  # nn.GRU, the straightforward path


def reference_update(m: Tiny, b: TensorDict, i: int, copt, aopt, noise: Tensor, weight=None, coef=None,
                     anchor=None) -> tuple[Tensor, Tensor | None]:
    with torch.no_grad():
        next_action = m.actor_target(b[keys.NEXT_OBS], gru_z(m.actor_encoder_target, b[keys.NEXT_HISTORY]))
        next_action = smooth_target_action(next_action, noise * TD3.policy_noise, TD3.noise_clip)
        nq1, nq2 = m.critic_target(b[keys.NEXT_OBS], next_action, gru_z(m.critic_encoder_target, b[keys.NEXT_HISTORY]))
        y = td3_target(b[keys.REWARD], b[keys.TERMINATED], nq1, nq2, TD3.gamma)
    q1, q2 = m.critic(b[keys.OBS], b[keys.ACTION], gru_z(m.critic_encoder, b[keys.HISTORY]))
    loss_c = critic_loss(q1, q2, y, weight)
    if coef is not None:
        loss_c = loss_c + proximal_penalty(m._critic_side_params(), anchor[0], coef, True)
    copt.zero_grad()
    loss_c.backward()
    copt.step()
    loss_a = None
    if i % TD3.policy_freq == 0:
        m.critic.requires_grad_(False)
        m.critic_encoder.requires_grad_(False)
        z_actor = gru_z(m.actor_encoder, b[keys.HISTORY])
        if m.shared_encoder:
            z_actor = z_actor.detach()
        with torch.no_grad():
            z_critic = gru_z(m.critic_encoder, b[keys.HISTORY])
        loss_a = actor_loss(m.critic.q1_only(b[keys.OBS], m.actor(b[keys.OBS], z_actor), z_critic), weight)
        if coef is not None:
            loss_a = loss_a + proximal_penalty(m._actor_side_params(), anchor[1], coef, True)
        aopt.zero_grad()
        loss_a.backward()
        aopt.step()
        m.critic.requires_grad_(True)
        m.critic_encoder.requires_grad_(True)
        soft_update_(*m._target_pairs(), TD3.tau)
    return loss_c.detach(), None if loss_a is None else loss_a.detach()


def plain_adam(m: Tiny) -> list[torch.optim.Optimizer]:
    return [torch.optim.Adam(m._critic_side_params(), lr=m.critic.lr, foreach=False),
            torch.optim.Adam(m._actor_side_params(), lr=m.actor.lr, foreach=False)]


def named_state(m: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def grads(m: nn.Module) -> dict[str, Tensor | None]:
    return {k: None if p.grad is None else p.grad.clone() for k, p in m.named_parameters()}


def run_both(shared: bool, dtype: torch.dtype, steps: int, adapt: bool = False):
    fast = Tiny(shared, dtype)
    ref = copy.deepcopy(fast)
    fast_opts, ref_opts = fast.make_optimizers(), plain_adam(ref)
    assert any(g.get("fused") for o in fast_opts for g in o.param_groups), "the fast path uses fused Adam"
    anchor_f, anchor_r = fast.anchor_params(), ref.anchor_params()
    for i in range(steps):
        b = batch(i, dtype)
        noise = torch.randn(B, ACT, generator=torch.Generator().manual_seed(100 + i), dtype=dtype)
        weight = torch.rand(B, 1, generator=torch.Generator().manual_seed(200 + i), dtype=dtype) if adapt else None
        coef = 0.3 if adapt else None
        out = fast.td3_update(b, i, *fast_opts, TD3, noise, weight, coef, anchor_f if adapt else None)
        loss_c, loss_a = reference_update(ref, b, i, *ref_opts, noise, weight, coef, anchor_r if adapt else None)
        yield i, fast, ref, out, loss_c, loss_a


@pytest.mark.parametrize("shared", [False, True])
def test_one_update_matches_at_fp32_tolerance(shared: bool) -> None:
    """Losses and every gradient of one full update (critic step, actor step, Polyak) in float32."""
    for _, fast, ref, out, loss_c, loss_a in run_both(shared, torch.float32, steps=1):
        assert_close(out.loss_critic, loss_c)
        assert loss_a is not None and out.loss_actor is not None
        assert_close(out.loss_actor, loss_a)
        gf, gr = grads(fast), grads(ref)
        assert gf.keys() == gr.keys()
        for k in gf:
            if gr[k] is None:
                assert gf[k] is None, k
            else:
                assert_close(gf[k], gr[k], msg=k)
        sf, sr = named_state(fast), named_state(ref)
        for k in sf:
            assert_close(sf[k], sr[k], msg=k)


@pytest.mark.parametrize(("shared", "adapt"), [(False, False), (True, False), (False, True)])
def test_several_updates_match_in_float64(shared: bool, adapt: bool) -> None:
    """Several updates (critic-only and actor steps, Polyak, Adam state; with adapt: per-sample
    weights and the proximal term of eqs. 18-19): every parameter, online and target, agrees."""
    models: tuple[Tiny, Tiny] | None = None
    for _, fast, ref, out, loss_c, loss_a in run_both(shared, torch.float64, steps=5, adapt=adapt):
        assert_close(out.loss_critic, loss_c, rtol=1e-10, atol=1e-12)
        assert (out.loss_actor is None) == (loss_a is None)
        if loss_a is not None:
            assert_close(out.loss_actor, loss_a, rtol=1e-10, atol=1e-12)
        models = (fast, ref)
    assert models is not None
    sf, sr = named_state(models[0]), named_state(models[1])
    for k in sf:
        assert_close(sf[k], sr[k], rtol=1e-9, atol=1e-12, msg=k)


def test_fused_gru_matches_nn_gru_in_float64() -> None:
    """Several GRUs over shared and distinct inputs, gradients for some of them only."""
    torch.manual_seed(0)
    grus = [nn.GRU(5, 4, batch_first=True).double() for _ in range(4)]
    grus[1].requires_grad_(False)
    xa, xb = torch.randn(6, 7, 5, dtype=torch.float64), torch.randn(6, 7, 5, dtype=torch.float64)
    xs = [xa, xb, xb, xa]
    out = fused_gru(xs, grus)
    ref = torch.stack([g(x)[1][-1] for g, x in zip(grus, xs, strict=True)])
    assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(out)
    params = [p for g in grus for p in g.parameters() if p.requires_grad]
    for a, b in zip(torch.autograd.grad((out * w).sum(), params), torch.autograd.grad((ref * w).sum(), params),
                    strict=True):
        assert_close(a, b, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        assert_close(fused_gru(xa, grus), torch.stack([g(xa)[1][-1] for g in grus]), rtol=1e-12, atol=1e-12)


def test_fused_gru_gradcheck() -> None:
    """The hand-written backward against finite differences (float64), one GRU and two."""
    from metarl.nets.gru import _FusedGRU

    torch.manual_seed(1)
    weights = [p.detach().requires_grad_() for _ in range(2) for p in nn.GRU(3, 2).double().parameters()]
    xa, xb = torch.randn(4, 3, 3, dtype=torch.float64), torch.randn(4, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *ws: _FusedGRU.apply(1, xa, *ws), weights[:4])
    assert torch.autograd.gradcheck(lambda *ws: _FusedGRU.apply(2, xa, xb, *ws), weights)


def test_encoder_fast_switch_and_encode_many() -> None:
    torch.manual_seed(0)
    enc = ContextEncoder(OBS, ACT, hidden_size=Z)
    slow = copy.deepcopy(enc)
    slow.fast = False
    h = torch.randn(7, H, ACT + 1 + OBS)
    assert_close(enc(h), slow(h), rtol=1e-5, atol=1e-6)
    other = ContextEncoder(OBS, ACT, hidden_size=Z)
    h2 = torch.randn(7, H, ACT + 1 + OBS)
    got = ContextEncoder.encode_many([enc, other, enc], [h, h2, h])
    assert got[0] is got[2]  # one pair computed once
    assert_close(got[1], other.gru(h2)[1][-1], rtol=1e-5, atol=1e-6)
    # A history longer than the config's and a single row (the acting policy's batch) work too.
    assert enc(torch.randn(1, 2 * H, ACT + 1 + OBS)).shape == (1, Z)
    with pytest.raises(ValueError, match="one input per GRU"):
        fused_gru([h], [enc.gru, other.gru])
