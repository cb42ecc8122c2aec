"""SeedBatchedTD3Nets: MQL's nets and TD3 update for N independent seeds at once (seeds as a batch
dimension, issue #15).

The update is ``TD3ContextNets.td3_update`` itself, over the stacked nets of ``metarl.nets.stacked``:
every tensor has a leading seed dimension (batch ``[N, B]``, noise ``[N, B, A]``), the TD3 losses of
``metarl.algorithms.td3`` return one loss per seed (``[N]``), and the backward runs on their sum. Seed
k's parameters appear in seed k's loss only, so the sum's gradient w.r.t. them is exactly seed k's
single-seed gradient; with per-seed Adam (elementwise) and Polyak averaging (elementwise), seed k of a
batched update is the single-seed update of seed k, up to fp32 rounding
(``tests/test_seed_batched.py``).

The nets keep the single-seed attribute and parameter names, so ``seed_state_dict(k)`` is a state dict
that a single-seed ``TD3ContextNets`` of the same sizes loads (``load_seed_state_dict`` the other way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from metarl.methods.mql.settings import TD3Settings
from metarl.methods.mql.td3_nets import TD3ContextNets, UpdateResult
from metarl.nets.stacked import (
    StackedActor,
    StackedContextEncoder,
    StackedTwinCritic,
    stack_state_dicts,
    unstack_state_dict,
)
from metarl.training.module import backward

__all__ = ["CollectPhase", "SeedBatchedTD3Nets", "batched_iteration", "stack_optimizer_states",
           "unstack_optimizer_state"]


class SeedBatchedTD3Nets(TD3ContextNets):
    """``TD3ContextNets`` for N seeds, built from N single-seed ones. Mixed into a LightningModule
    (or an ``nn.Module``), like ``TD3ContextNets``."""

    actor: StackedActor  # type: ignore[assignment]
    critic: StackedTwinCritic  # type: ignore[assignment]
    critic_encoder: StackedContextEncoder  # type: ignore[assignment]
    actor_encoder: StackedContextEncoder  # type: ignore[assignment]

    def stack_nets(self, seeds: Sequence[TD3ContextNets]) -> None:
        """Stack the nets of N single-seed ``TD3ContextNets`` (their current weights; the targets
        stacked from their targets). The single-seed nets are not modified or kept."""
        if not seeds:
            raise ValueError("stack_nets: needs at least one seed's nets")
        layout = {(s.obs_dim, s.act_dim, s.shared_encoder) for s in seeds}
        if len(layout) != 1:
            raise ValueError(f"stack_nets: the seeds' nets differ in (obs_dim, act_dim, shared_encoder): {layout}")
        self.n_seeds = len(seeds)
        self.obs_dim, self.act_dim, self.shared_encoder = layout.pop()
        self.critic_encoder = StackedContextEncoder([s.critic_encoder for s in seeds])
        self.actor_encoder = (self.critic_encoder if self.shared_encoder
                              else StackedContextEncoder([s.actor_encoder for s in seeds]))
        self.actor = StackedActor([s.actor for s in seeds])
        self.critic = StackedTwinCritic([s.critic for s in seeds])
        self.actor_target = StackedActor([s.actor_target for s in seeds]).requires_grad_(False)
        self.critic_target = StackedTwinCritic([s.critic_target for s in seeds]).requires_grad_(False)
        self.critic_encoder_target = StackedContextEncoder([s.critic_encoder_target for s in seeds]).requires_grad_(
            False)
        self.actor_encoder_target = (
            self.critic_encoder_target if self.shared_encoder
            else StackedContextEncoder([s.actor_encoder_target for s in seeds]).requires_grad_(False)
        )

    def _encode_many(self, encoders: Sequence[Any], histories: Tensor | Sequence[Tensor]) -> list[Tensor]:
        return StackedContextEncoder.encode_many(encoders, histories)

    def _backward(self, loss: Tensor) -> None:
        """Backward of the sum of the per-seed losses ``[N]``: each seed's parameters get exactly the
        gradient of their own seed's loss."""
        backward(self, loss.sum())  # type: ignore[arg-type]

    def td3_update(
        self,
        batch: TensorDictBase,
        update_index: int,
        critic_opt: pl.core.optimizer.LightningOptimizer | torch.optim.Optimizer,
        actor_opt: pl.core.optimizer.LightningOptimizer | torch.optim.Optimizer,
        td3: TD3Settings,
        noise: Tensor,
        weight: Tensor | None = None,
        prox_coef: Tensor | float | None = None,
        anchor: tuple[list[Tensor], list[Tensor]] | None = None,
        prox_half: bool = True,
    ) -> UpdateResult:
        """``TD3ContextNets.td3_update`` with a leading seed dimension on ``batch`` ``[N, B]``,
        ``noise`` ``[N, B, A]`` and ``weight`` ``[N, B, 1]``; the losses come back per seed, ``[N]``.
        The proximal term of adaptation (eqs. 18-19) is not batched: adapt seed by seed
        (``seed_state_dict``)."""
        if prox_coef is not None or anchor is not None:
            raise NotImplementedError("SeedBatchedTD3Nets.td3_update: the proximal term is per seed; "
                                      "adapt each seed with a single-seed TD3ContextNets")
        n = self.n_seeds
        if tuple(batch.batch_size[:1]) != (n,) or noise.shape[0] != n:
            raise ValueError(f"td3_update: batch and noise need a leading seed dimension of {n}, "
                             f"got batch {tuple(batch.batch_size)} and noise {tuple(noise.shape)}")
        return super().td3_update(batch, update_index, critic_opt, actor_opt, td3, noise, weight)

    def _net_modules(self) -> dict[str, nn.Module]:
        names = ["actor", "critic", "critic_encoder", "actor_encoder", "actor_target", "critic_target",
                 "critic_encoder_target", "actor_encoder_target"]
        return {name: getattr(self, name) for name in names}

    def seed_state_dict(self, seed_index: int) -> dict[str, Tensor]:
        """Seed ``seed_index``'s nets as a single-seed ``TD3ContextNets`` state dict (same keys)."""
        out: dict[str, Tensor] = {}
        for name, module in self._net_modules().items():
            for key, value in unstack_state_dict(module.state_dict(), seed_index).items():
                out[f"{name}.{key}"] = value
        return out

    def load_seed_state_dicts(self, states: Sequence[Mapping[str, Tensor]]) -> None:
        """Load N single-seed nets' state dicts (``TD3ContextNets`` keys), seed k from ``states[k]``."""
        if len(states) != self.n_seeds:
            raise ValueError(f"load_seed_state_dicts: {self.n_seeds} seeds but {len(states)} state dicts")
        for name, module in self._net_modules().items():
            prefix = f"{name}."
            per_seed = [{k[len(prefix):]: v for k, v in s.items() if k.startswith(prefix)} for s in states]
            module.load_state_dict(stack_state_dicts(per_seed))


def unstack_optimizer_state(state: Mapping[str, Any], seed_index: int) -> dict[str, Any]:
    """Seed ``seed_index``'s part of a stacked optimizer's state dict (Adam: ``exp_avg`` and
    ``exp_avg_sq`` are indexed on the seed dimension; ``step`` is shared by all seeds and kept)."""
    return {
        "state": {i: {k: (v[seed_index].clone() if k in _PER_SEED else v.clone()) for k, v in s.items()}
                  for i, s in state["state"].items()},
        "param_groups": [dict(g) for g in state["param_groups"]],
    }


def stack_optimizer_states(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """N single-seed optimizer state dicts of one layout -> the stacked optimizer's (the inverse of
    ``unstack_optimizer_state``); the seeds must be at the same ``step``."""
    first = states[0]
    out: dict[int, dict[str, Tensor]] = {}
    for i, s in first["state"].items():
        out[i] = {}
        for k, v in s.items():
            vals = [st["state"][i][k] for st in states]
            if k in _PER_SEED:
                out[i][k] = torch.stack(vals)
            elif all(torch.equal(x, v) for x in vals):
                out[i][k] = v.clone()
            else:
                raise ValueError(f"stack_optimizer_states: the seeds' optimizers differ in {k!r}")
    return {"state": out, "param_groups": [dict(g) for g in first["param_groups"]]}


_PER_SEED = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


# ---------------------------------------------------------------------------------------------- in fit
@dataclass
class CollectPhase:
    """What an MQL iteration's collection leaves for its updates (``MQLMetaTrain.collect_phase``)."""

    metrics: dict[str, float]
    n_updates: int
    frames: int
    collect_s: float
    collected_at: float


class _Seed(Protocol):
    """The parts of ``MQLMetaTrain`` that the batched iteration uses (no import of the module above)."""

    batched_update: bool
    num_updates: int
    td3: TD3Settings
    device: torch.device

    def collect_phase(self) -> CollectPhase: ...
    def update_inputs(self) -> tuple[TensorDictBase, int]: ...
    def update_noise(self) -> Tensor: ...
    def optimizers(self, use_pl_optimizer: bool = True) -> Any: ...
    def finish_iteration(self, phase: CollectPhase, loss_c: Tensor, loss_a: Tensor, n_actor: int) -> dict: ...
    def load_state_dict(self, state: Mapping[str, Any], strict: bool = ...) -> Any: ...


class _Stacked(SeedBatchedTD3Nets, nn.Module):
    pass


class _CountedStep:
    """The stacked optimizer, stepped as the seeds' own would be counted (Lightning's global step
    advances once per seed, as in the seed-by-seed path)."""

    def __init__(self, optimizer: torch.optim.Optimizer, seeds_opts: Sequence[Any]) -> None:
        self.optimizer, self.seeds_opts = optimizer, seeds_opts

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def step(self) -> None:
        for opt in self.seeds_opts:
            getattr(opt, "_on_before_step", lambda: None)()
        self.optimizer.step()
        for opt in self.seeds_opts:
            getattr(opt, "_on_after_step", lambda: None)()


def batched_iteration(seeds: Sequence[_Seed], as_seed: Callable[[int], contextlib.AbstractContextManager[Any]]
                      ) -> list[dict[str, float]] | None:
    """One lockstep iteration of N MQL seeds with their updates as one stacked update, or None when
    ``batched_update`` is off (the seed-by-seed path runs). Each seed collects and draws its minibatch
    and noise from its own generators, in the order of its single-seed run; the nets and Adam states
    are stacked before the updates and written back after them, so between iterations (evaluation,
    checkpoints, acting) every seed holds its own state as in the seed-by-seed path."""
    if not seeds[0].batched_update:
        return None
    phases = []
    for i, s in enumerate(seeds):
        with as_seed(i):
            phases.append(s.collect_phase())
    n = phases[0].n_updates
    if any(p.n_updates != n for p in phases):
        raise RuntimeError("batched_update: the seeds' iterations have different numbers of updates")
    n_seeds = len(seeds)
    losses = [(torch.zeros(()), torch.zeros(()), 0)] * n_seeds
    if n:
        stacked = _Stacked()
        stacked.stack_nets(seeds)  # type: ignore[arg-type]
        stacked.to(seeds[0].device)
        object.__setattr__(stacked, "_seed_host", getattr(seeds[0], "_seed_host", None))  # backward as the seeds
        seed_opts = [s.optimizers() for s in seeds]
        raw = [s.optimizers(use_pl_optimizer=False) for s in seeds]
        opts = []
        for j, opt in enumerate(stacked.make_optimizers()):
            opt.load_state_dict(stack_optimizer_states([r[j].state_dict() for r in raw]))
            opts.append(_CountedStep(opt, [o[j] for o in seed_opts]))
        loss_c = loss_a = torch.zeros(n_seeds, device=seeds[0].device)
        n_actor = 0
        first = seeds[0].num_updates  # every seed's: they update in lockstep
        for u in range(n):
            # Explicit per-seed generators only: no global generator to swap in.
            inputs = [(*s.update_inputs(), s.update_noise()) for s in seeds]
            batch, noise = torch.stack([x[0] for x in inputs]), torch.stack([x[2] for x in inputs])
            out = stacked.td3_update(batch, first + u, opts[0], opts[1], seeds[0].td3, noise)  # type: ignore[arg-type]
            loss_c = loss_c + out.loss_critic
            if out.loss_actor is not None:
                loss_a, n_actor = loss_a + out.loss_actor, n_actor + 1
        for k, s in enumerate(seeds):
            s.load_state_dict(stacked.seed_state_dict(k), strict=False)
            for j, opt in enumerate(opts):
                raw[k][j].load_state_dict(unstack_optimizer_state(opt.optimizer.state_dict(), k))
            s.num_updates += n
        losses = [(loss_c[k], loss_a[k], n_actor) for k in range(n_seeds)]
    return [s.finish_iteration(p, *loss) for s, p, loss in zip(seeds, phases, losses, strict=True)]
