"""The TD3 actor u_theta(x, z) of MQL: a tanh MLP on [observation, z]."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from metarl.nets.mlp import mlp
from metarl.nets.optim import adam_over


class Actor(pl.LightningModule):
    """pi(o, z) = max_action * tanh(MLP([o, z])).

    Owns its hyperparameters and optimizer settings; defines no training_step (the coordinating
    module owns the update order).

    Args:
        obs_dim, act_dim, context_dim: input and output sizes (filled in by the coordinating module).
        hidden_sizes: MLP widths (reference code: 300, 300).
        lr: Adam learning rate (paper Table 1 "Adam learning rate").
        max_action: action bound; metarl's envs act in [-1, 1].
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        context_dim: int,
        hidden_sizes: Sequence[int] = (300, 300),
        lr: float = 3e-4,
        max_action: float = 1.0,
    ) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"Actor: lr must be > 0, got {lr}")
        self.save_hyperparameters()
        self.lr = lr
        self.max_action = max_action
        self.net = mlp(obs_dim + context_dim, list(hidden_sizes), act_dim)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        """obs [B, obs_dim], z [B, context_dim] -> action [B, act_dim] in [-max_action, max_action]."""
        return self.max_action * torch.tanh(self.net(torch.cat([obs, z], dim=-1)))

    def make_optimizer(self, extra: Iterable[nn.Module] = ()) -> torch.optim.Optimizer:
        """Adam over this actor and the modules trained by its loss (its context encoder)."""
        return adam_over(self, extra, self.lr)
