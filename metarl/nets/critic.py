"""MQL's twin critics q_phi1, q_phi2(x, u, z) (clipped double-Q, paper §3.1)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from metarl.nets.mlp import mlp
from metarl.nets.optim import adam_over


class TwinCritic(pl.LightningModule):
    """Two independent MLP heads on [observation, action, z]; both heads read the same z.

    Args:
        obs_dim, act_dim, context_dim: input sizes (filled in by the coordinating module).
        hidden_sizes: MLP widths of each head (reference code: 300, 300).
        lr: Adam learning rate (paper Table 1 "Adam learning rate").
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        context_dim: int,
        hidden_sizes: Sequence[int] = (300, 300),
        lr: float = 3e-4,
    ) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"TwinCritic: lr must be > 0, got {lr}")
        self.save_hyperparameters()
        self.lr = lr
        in_dim = obs_dim + act_dim + context_dim
        self.q1 = mlp(in_dim, list(hidden_sizes), 1)
        self.q2 = mlp(in_dim, list(hidden_sizes), 1)

    def forward(self, obs: Tensor, action: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """-> (q1 [B, 1], q2 [B, 1])."""
        x = torch.cat([obs, action, z], dim=-1)
        return self.q1(x), self.q2(x)

    def q1_only(self, obs: Tensor, action: Tensor, z: Tensor) -> Tensor:
        """Q1 alone: the actor loss of TD3 needs only the first head."""
        return self.q1(torch.cat([obs, action, z], dim=-1))

    def make_optimizer(self, extra: Iterable[nn.Module] = ()) -> torch.optim.Optimizer:
        """Adam over both heads and the modules trained by the TD loss (the critic's encoder)."""
        return adam_over(self, extra, self.lr)
