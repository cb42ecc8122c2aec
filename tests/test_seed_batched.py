"""Seeds as a batch dimension (issue #15): seed k of the N-seed batched TD3-context update is the
single-seed update of seed k; no gradient crosses seeds; stacked state dicts convert to and from N
single-seed ones (a batched run's seed k loads as a single-seed checkpoint)."""

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
from metarl.methods.mql import TD3Settings
from metarl.methods.mql.seed_batched import SeedBatchedTD3Nets, stack_optimizer_states, unstack_optimizer_state
from metarl.methods.mql.td3_nets import TD3ContextNets
from metarl.nets import Actor, ContextEncoder, TwinCritic
from metarl.nets.stacked import stack_state_dicts, unstack_state_dict
from metarl.nets.stacked_gru import stacked_gru

OBS, ACT, H, Z, B = 3, 2, 5, 4, 16
SEEDS = (0, 1, 2)
TD3 = TD3Settings(policy_freq=2)


class Single(TD3ContextNets, pl.LightningModule):
    def __init__(self, seed: int, shared: bool = False, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.build_nets(OBS, ACT, partial(ContextEncoder, hidden_size=Z), partial(Actor, hidden_sizes=(8, 8)),
                        partial(TwinCritic, hidden_sizes=(8, 8)), shared)
        self.to(dtype)


class Batched(SeedBatchedTD3Nets, pl.LightningModule):
    def __init__(self, seeds: list[Single]) -> None:
        super().__init__()
        self.stack_nets(seeds)


def batch(seed: int, step: int, dtype: torch.dtype) -> TensorDict:
    g = torch.Generator().manual_seed(1000 * seed + step)

    def r(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    return TensorDict({
        keys.OBS: r(B, OBS), keys.ACTION: r(B, ACT).clamp(-1, 1), keys.HISTORY: r(B, H, ACT + 1 + OBS),
        "noise": r(B, ACT),
        "next": {"observation": r(B, OBS), "reward": r(B, 1), "terminated": torch.rand(B, 1, generator=g) < 0.2,
                 "history": r(B, H, ACT + 1 + OBS)},
    }, batch_size=[B])


def build(shared: bool, dtype: torch.dtype) -> tuple[list[Single], Batched]:
    singles = [Single(s, shared, dtype) for s in SEEDS]
    return singles, Batched([copy.deepcopy(m) for m in singles])


@pytest.mark.parametrize(("shared", "dtype", "tol"), [
    (False, torch.float32, {}),  # assert_close's fp32 defaults
    (True, torch.float32, {}),
    (False, torch.float64, {"rtol": 1e-9, "atol": 1e-12}),
])
def test_seed_k_of_a_batched_update_is_the_single_seed_update(shared: bool, dtype: torch.dtype, tol: dict) -> None:
    """Five updates (critic-only steps and, every policy_freq, actor steps with Polyak averaging of
    every target), each seed fed its own batches and noise: every loss and every parameter of seed k,
    online and target, and its Adam state, equal the single-seed run's."""
    singles, batched = build(shared, dtype)
    opts = [m.make_optimizers() for m in singles]
    b_opts = batched.make_optimizers()
    for step in range(5):
        per_seed = [batch(s, step, dtype) for s in SEEDS]
        out = batched.td3_update(torch.stack(per_seed), step, *b_opts, TD3, torch.stack([b["noise"] for b in per_seed]))
        assert out.loss_critic.shape == (len(SEEDS),)
        assert (out.loss_actor is None) == (step % TD3.policy_freq != 0)
        for k, (m, (c_opt, a_opt)) in enumerate(zip(singles, opts, strict=True)):
            ref = m.td3_update(per_seed[k], step, c_opt, a_opt, TD3, per_seed[k]["noise"])
            assert_close(out.loss_critic[k], ref.loss_critic, **tol)
            if ref.loss_actor is not None:
                assert out.loss_actor is not None
                assert_close(out.loss_actor[k], ref.loss_actor, **tol)
            # The last gradients (critic step; actor step when there was one) before Adam: Adam is
            # almost scale-invariant, so equal parameters alone would not catch a gradient scaled by 1/N.
            grads = {name: p.grad for name, p in m.named_parameters()}
            for name, p in batched.named_parameters():
                if grads[name] is None:
                    assert p.grad is None, name
                else:
                    assert_close(p.grad[k], grads[name], msg=name, **tol)
    for k, m in enumerate(singles):
        got, want = batched.seed_state_dict(k), m.state_dict()
        assert got.keys() == want.keys()
        for key in want:
            assert_close(got[key], want[key], msg=key, **tol)
        for b_opt, opt in zip(b_opts, opts[k], strict=True):
            got_o, want_o = unstack_optimizer_state(b_opt.state_dict(), k), opt.state_dict()
            for i, st in want_o["state"].items():
                for name, value in st.items():
                    assert_close(got_o["state"][i][name], value, msg=f"{i}.{name}", **tol)


def test_no_gradient_crosses_seeds() -> None:
    """A loss on seed 0 alone (through both encoders' GRUs, the actor and both critic heads) gives
    seeds 1 and 2 exactly zero gradient, and seed 0 a nonzero one."""
    _, batched = build(shared=False, dtype=torch.float32)
    b = torch.stack([batch(s, 0, torch.float32) for s in SEEDS])
    z_c, z_a = batched._encode_many([batched.critic_encoder, batched.actor_encoder], b[keys.HISTORY])
    action = batched.actor(b[keys.OBS], z_a)
    q1, q2 = batched.critic(b[keys.OBS], action, z_c)
    (q1[0].sum() + q2[0].square().sum()).backward()
    online = [batched.actor, batched.critic, batched.critic_encoder, batched.actor_encoder]
    for module in online:
        for name, p in module.named_parameters():
            assert p.grad is not None, name
            assert torch.count_nonzero(p.grad[1:]) == 0, name
            assert torch.count_nonzero(p.grad[0]) > 0, name


@pytest.mark.parametrize("shared", [False, True])
def test_state_dicts_round_trip_between_stacked_and_single_seed(shared: bool) -> None:
    """The stacked module's state dict has the single-seed keys with a leading seed dimension; seed k
    loads strictly into a single-seed module, and N single-seed state dicts load into the stack."""
    singles, batched = build(shared, torch.float32)
    state = batched.state_dict()
    assert state.keys() == singles[0].state_dict().keys()
    for key, value in state.items():
        assert value.shape == (len(SEEDS), *singles[0].state_dict()[key].shape), key
    fresh = Single(seed=99, shared=shared)
    fresh.load_state_dict(batched.seed_state_dict(1), strict=True)
    for key, value in singles[1].state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    # The other way: three single-seed state dicts (seed 2 replaced by `fresh`) into the stack.
    other, _ = build(shared, torch.float32)
    batched.load_seed_state_dicts([other[0].state_dict(), other[1].state_dict(), fresh.state_dict()])
    for key, value in fresh.state_dict().items():
        assert torch.equal(batched.seed_state_dict(2)[key], value), key
    assert torch.equal(batched.state_dict()["actor.net.0.weight"][0], other[0].actor.net[0].weight)
    # The pure helpers: stack then unstack is the identity.
    sds = [m.critic.state_dict() for m in singles]
    stacked = stack_state_dicts(sds)
    for k, sd in enumerate(sds):
        assert all(torch.equal(unstack_state_dict(stacked, k)[key], v) for key, v in sd.items())
    with pytest.raises(ValueError, match="seed_index must be in"):
        unstack_state_dict(stacked, 3)


def test_optimizer_states_round_trip() -> None:
    """After an update, each seed's Adam state unstacks to a state a single-seed optimizer loads, and
    stacking the N of them gives the stacked optimizer's state back."""
    singles, batched = build(shared=False, dtype=torch.float32)
    c_opt, a_opt = batched.make_optimizers()
    b = torch.stack([batch(s, 0, torch.float32) for s in SEEDS])
    batched.td3_update(b, 0, c_opt, a_opt, TD3, b["noise"])
    for opt, single_opt in ((c_opt, singles[1].make_optimizers()[0]), (a_opt, singles[1].make_optimizers()[1])):
        per_seed = [unstack_optimizer_state(opt.state_dict(), k) for k in range(len(SEEDS))]
        single_opt.load_state_dict(per_seed[1])
        back = stack_optimizer_states(per_seed)
        for i, st in opt.state_dict()["state"].items():
            for name, value in st.items():
                assert torch.equal(back["state"][i][name], value)


def test_stacked_gru_matches_nn_gru_in_float64() -> None:
    """Three GRUs stacked over three seeds, two of them over one input, gradients for two of them."""
    torch.manual_seed(0)
    n, t, d = 3, 7, 5
    grus = [[nn.GRU(d, Z, batch_first=True).double() for _ in range(n)] for _ in range(3)]
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    weights = [[torch.stack([getattr(g, k) for g in row]).detach().requires_grad_(e != 1) for k in names]
               for e, row in enumerate(grus)]
    xa, xb = torch.randn(n, 6, t, d, dtype=torch.float64), torch.randn(n, 6, t, d, dtype=torch.float64)
    xs = [xa, xa, xb]
    out = stacked_gru(xs, weights)
    ref = torch.stack([torch.stack([g(x_k)[1][-1] for g, x_k in zip(row, x, strict=True)])
                       for row, x in zip(grus, xs, strict=True)])
    assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(out)
    got = torch.autograd.grad((out * w).sum(), [p for e in (0, 2) for p in weights[e]])
    ref_params = [getattr(g, k) for e in (0, 2) for k in names for g in grus[e]]
    want = torch.autograd.grad((ref * w).sum(), ref_params)
    for i, g in enumerate(got):
        assert_close(g, torch.stack(want[i * n:(i + 1) * n]), rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        assert_close(stacked_gru(xs, weights), ref, rtol=1e-12, atol=1e-12)
    x1 = torch.randn(2, 3, 3, d, dtype=torch.float64)
    ws = [p[:2].detach().clone().requires_grad_() for p in weights[0]]
    ws2 = [p[:2].detach().clone().requires_grad_() for p in weights[2]]
    assert torch.autograd.gradcheck(lambda *a: stacked_gru([x1, x1], [a[:4], a[4:]]), [*ws, *ws2])
    with pytest.raises(ValueError, match="stacked over the 3 seeds"):
        stacked_gru([xa], [[p[:2] for p in weights[0]]])


def test_td3_losses_reduce_per_seed() -> None:
    """With a leading seed dimension the TD3 losses are one per seed, each seed's own mean."""
    from metarl.algorithms.td3 import actor_loss, critic_loss

    g = torch.Generator().manual_seed(0)
    q1, q2, y, w = (torch.randn(3, B, 1, generator=g) for _ in range(4))
    assert_close(critic_loss(q1, q2, y, w), torch.stack([critic_loss(q1[k], q2[k], y[k], w[k]) for k in range(3)]))
    assert_close(actor_loss(q1, w), torch.stack([actor_loss(q1[k], w[k]) for k in range(3)]))
    assert critic_loss(q1[0], q2[0], y[0]).shape == ()
