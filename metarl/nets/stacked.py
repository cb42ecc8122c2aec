"""Seeds as a batch dimension: N independent copies of a net, parameters stacked over a leading seed
dimension, run at once.

A stacked net is built from N single-seed nets of one shape (each built under its own seed, so seed k
starts exactly where a single-seed run with seed k starts) and has **the same parameter names** as
each of them, every tensor with a leading dimension N. So a state dict converts both ways by stacking
or indexing dim 0 (``stack_state_dicts``, ``unstack_state_dict``): seed k of a batched run loads into a
single-seed net, and the other way round.

Inputs and outputs carry the seed dimension first (``[N, B, ...]``). No operation mixes seeds:

* the MLPs run as batched matmuls (``torch.baddbmm``: ``x [N, B, in] @ W^T [N, in, out] + b``).
  ``torch.func.vmap`` over ``stack_module_state`` computes the same and was 1.2x slower forward and
  backward at MQL's sizes (BENCHMARKS.md, "Seed-batched update"), and it cannot carry the GRU's
  hand-written autograd Function;
* the GRUs are the groups of one fused recurrence (``metarl.nets.stacked_gru``).

Adam over stacked parameters is N independent Adams: it is elementwise, and nothing in MQL's update
(no gradient clipping or norm) couples parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from metarl.nets.actor import Actor
from metarl.nets.critic import TwinCritic
from metarl.nets.encoder import ContextEncoder
from metarl.nets.optim import adam_over
from metarl.nets.stacked_gru import stacked_gru

__all__ = [
    "StackedActor", "StackedContextEncoder", "StackedLinear", "StackedTwinCritic", "stack_state_dicts",
    "stacked_mlp", "unstack_state_dict",
]


def stack_state_dicts(states: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """N single-seed state dicts (same keys and shapes) -> the stacked net's: each tensor stacked on a
    new leading seed dimension."""
    if not states:
        raise ValueError("stack_state_dicts: no state dicts to stack")
    keys = list(states[0])
    for i, s in enumerate(states):
        if list(s) != keys:
            raise ValueError(f"stack_state_dicts: state dict {i} has keys {sorted(s)}, expected {sorted(keys)}")
    return {k: torch.stack([s[k] for s in states]) for k in keys}


def unstack_state_dict(state: Mapping[str, Tensor], seed_index: int) -> dict[str, Tensor]:
    """Seed ``seed_index``'s single-seed state dict out of a stacked one (copies, not views)."""
    n = {v.shape[0] for v in state.values()}
    if len(n) != 1:
        raise ValueError(f"unstack_state_dict: tensors disagree on the seed dimension, sizes {sorted(n)}")
    size = n.pop()
    if not 0 <= seed_index < size:
        raise ValueError(f"unstack_state_dict: seed_index must be in [0, {size}), got {seed_index}")
    return {k: v[seed_index].clone() for k, v in state.items()}


def _stacked_param(tensors: Iterable[Tensor]) -> nn.Parameter:
    ts = list(tensors)
    return nn.Parameter(torch.stack([t.detach() for t in ts]), requires_grad=any(t.requires_grad for t in ts))


class StackedLinear(nn.Module):
    """N ``nn.Linear`` of one shape: ``weight [N, out, in]``, ``bias [N, out]``; ``[N, B, in] -> [N, B, out]``."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = _stacked_param(layer.weight for layer in layers)
        self.bias = _stacked_param(layer.bias for layer in layers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


def stacked_mlp(mlps: Sequence[nn.Sequential]) -> nn.Sequential:
    """N MLPs of one shape (``metarl.nets.mlp.mlp``) as one ``nn.Sequential`` with the same layer
    indices: ``StackedLinear`` in place of ``nn.Linear``, the activations shared (elementwise)."""
    layers: list[nn.Module] = []
    for i, layer in enumerate(mlps[0]):
        if isinstance(layer, nn.Linear):
            layers.append(StackedLinear([m[i] for m in mlps]))  # type: ignore[misc]
        elif isinstance(layer, nn.ReLU):
            layers.append(nn.ReLU())
        else:
            raise TypeError(f"stacked_mlp: layer {i} is {type(layer).__name__}; only nn.Linear and nn.ReLU stack")
    return nn.Sequential(*layers)


def _alike(kind: str, nets: Sequence[nn.Module], *attrs: str) -> dict[str, Any]:
    """Check that N nets stack (same parameter names and shapes, same ``attrs``); the stacked net's
    hyperparameters: ``n_seeds`` and those ``attrs``."""
    if not nets:
        raise ValueError(f"{kind}: needs at least one net to stack")
    first = {k: v.shape for k, v in nets[0].state_dict().items()}
    values = {a: getattr(nets[0], a) for a in attrs}
    for i, net in enumerate(nets):
        shapes = {k: v.shape for k, v in net.state_dict().items()}
        if shapes != first or any(getattr(net, a) != v for a, v in values.items()):
            raise ValueError(f"{kind}: net {i} differs from net 0 in its parameter shapes or in {list(attrs)}")
    return {"n_seeds": len(nets), **values}


class StackedActor(pl.LightningModule):
    """N ``Actor``s: pi_k(o, z) = max_action * tanh(MLP_k([o, z])) for seed k, ``[N, B, ...]`` in and out."""

    def __init__(self, actors: Sequence[Actor]) -> None:
        super().__init__()
        self.save_hyperparameters(_alike("StackedActor", actors, "lr", "max_action"))
        self.lr, self.max_action = actors[0].lr, actors[0].max_action
        self.net = stacked_mlp([a.net for a in actors])

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        """obs [N, B, obs_dim], z [N, B, context_dim] -> action [N, B, act_dim]."""
        return self.max_action * torch.tanh(self.net(torch.cat([obs, z], dim=-1)))

    def make_optimizer(self, extra: Iterable[nn.Module] = ()) -> torch.optim.Optimizer:
        """Adam over this actor and its encoder: per seed, exactly ``Actor.make_optimizer``'s Adam."""
        return adam_over(self, extra, self.lr)


class StackedTwinCritic(pl.LightningModule):
    """N ``TwinCritic``s; both heads of seed k read seed k's [o, a, z]."""

    def __init__(self, critics: Sequence[TwinCritic]) -> None:
        super().__init__()
        self.save_hyperparameters(_alike("StackedTwinCritic", critics, "lr"))
        self.lr = critics[0].lr
        self.q1 = stacked_mlp([c.q1 for c in critics])
        self.q2 = stacked_mlp([c.q2 for c in critics])

    def forward(self, obs: Tensor, action: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """-> (q1 [N, B, 1], q2 [N, B, 1])."""
        x = torch.cat([obs, action, z], dim=-1)
        return self.q1(x), self.q2(x)

    def q1_only(self, obs: Tensor, action: Tensor, z: Tensor) -> Tensor:
        return self.q1(torch.cat([obs, action, z], dim=-1))

    def make_optimizer(self, extra: Iterable[nn.Module] = ()) -> torch.optim.Optimizer:
        return adam_over(self, extra, self.lr)


class StackedGRUParams(nn.Module):
    """The parameters of N one-layer ``nn.GRU``s, under ``nn.GRU``'s names, stacked over seeds."""

    NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")

    def __init__(self, grus: Sequence[nn.GRU]) -> None:
        super().__init__()
        for g in grus:
            if g.num_layers != 1 or g.bidirectional or not g.bias or not g.batch_first:
                raise ValueError(f"StackedGRUParams: only one-layer, batch-first GRUs with biases stack, got {g}")
        for name in self.NAMES:
            setattr(self, name, _stacked_param(getattr(g, name) for g in grus))

    def weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0


class StackedContextEncoder(pl.LightningModule):
    """N ``ContextEncoder``s: z_k = the final GRU state of seed k over its history window.

    Always runs the fused kernel (``metarl.nets.stacked_gru``), on any device: its ops are generic
    torch ops, and on a GPU one kernel per step for all seeds is what batching seeds is for.
    """

    def __init__(self, encoders: Sequence[ContextEncoder]) -> None:
        super().__init__()
        self.save_hyperparameters(_alike("StackedContextEncoder", encoders, "input_size", "hidden_size"))
        self.input_size, self.hidden_size = encoders[0].input_size, encoders[0].hidden_size
        self.gru = StackedGRUParams([e.gru for e in encoders])

    def forward(self, history: Tensor) -> Tensor:
        """history [N, B, H, act_dim + 1 + obs_dim] -> z [N, B, hidden_size]."""
        return stacked_gru([history], [self.gru.weights()])[0]

    @staticmethod
    def encode_many(encoders: Sequence[StackedContextEncoder], histories: Tensor | Sequence[Tensor]) -> list[Tensor]:
        """``[e(h) for e, h in zip(encoders, histories)]`` in one fused kernel; an (encoder, history)
        pair listed twice is computed once (as ``ContextEncoder.encode_many``)."""
        hs = [histories] * len(encoders) if isinstance(histories, Tensor) else list(histories)
        if len(hs) != len(encoders):
            raise ValueError(f"encode_many: {len(encoders)} encoders but {len(hs)} histories")
        unique: dict[tuple[int, int], tuple[StackedContextEncoder, Tensor]] = {}
        for e, h in zip(encoders, hs, strict=True):
            unique.setdefault((id(e), id(h)), (e, h))
        pairs = list(unique.values())
        zs = stacked_gru([h for _, h in pairs], [e.gru.weights() for e, _ in pairs]).unbind(0)
        out = dict(zip(unique, zs, strict=True))
        return [out[(id(e), id(h))] for e, h in zip(encoders, hs, strict=True)]

    @torch.no_grad()
    def features(self, history: Tensor) -> Tensor:
        return self(history)
