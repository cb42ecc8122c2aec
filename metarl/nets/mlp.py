"""A plain ReLU MLP, the body of the actor and of each critic head (paper Table 1: two layers)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> nn.Sequential:
    if in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden_sizes):
        raise ValueError(f"mlp: sizes must be >= 1, got in={in_dim}, hidden={list(hidden_sizes)}, out={out_dim}")
    layers: list[nn.Module] = []
    size = in_dim
    for h in hidden_sizes:
        layers += [nn.Linear(size, h), nn.ReLU()]
        size = h
    layers.append(nn.Linear(size, out_dim))
    return nn.Sequential(*layers)
