"""The state-value net V(s, z) of PEARL's SAC (Haarnoja et al., 2018a, eq. 5) and its target V̄."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from metarl.nets.mlp import mlp
from metarl.nets.optim import adam_over


class ValueNet(pl.LightningModule):
    """V(o, z) = MLP([o, z]) -> [B, 1].

    Args:
        obs_dim, context_dim: input sizes (context_dim: PEARL's latent size).
        hidden_sizes: MLP widths (oyster ``net_size``: 300, 300, 300).
        lr: Adam learning rate (oyster ``vf_lr``: 3e-4).
    """

    def __init__(
        self,
        obs_dim: int,
        context_dim: int,
        hidden_sizes: Sequence[int] = (300, 300, 300),
        lr: float = 3e-4,
    ) -> None:
        super().__init__()
        if not lr > 0:
            raise ValueError(f"ValueNet: lr must be > 0, got {lr}")
        self.save_hyperparameters()
        self.lr = lr
        self.net = mlp(obs_dim + context_dim, list(hidden_sizes), 1)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        """obs [B, obs_dim], z [B, context_dim] -> V [B, 1]."""
        return self.net(torch.cat([obs, z], dim=-1))

    def make_optimizer(self, extra: Iterable[nn.Module] = ()) -> torch.optim.Optimizer:
        """Adam over this value net (PEARL's V loss trains nothing else: z is detached)."""
        return adam_over(self, extra, self.lr)
