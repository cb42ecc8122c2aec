"""The MQL context: a GRU over the recent (action, reward, observation) triples (paper §3.1.1)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor, nn


class ContextEncoder(pl.LightningModule):
    """z = the final hidden state of a one-layer GRU run over a history window.

    The window is re-encoded from a zero hidden state on every call, as the released MQL code does
    (its authors: the task is inferred from the current trajectory window, issue #5).

    Args:
        obs_dim: observation size.
        act_dim: action size.
        hidden_size: the context dimension (paper Table 1 "Context dimension").
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_size: int = 30) -> None:
        super().__init__()
        if obs_dim < 1 or act_dim < 1 or hidden_size < 1:
            raise ValueError(
                f"ContextEncoder: obs_dim, act_dim and hidden_size must be >= 1, "
                f"got {obs_dim}, {act_dim}, {hidden_size}"
            )
        self.save_hyperparameters()
        self.input_size = act_dim + 1 + obs_dim
        self.hidden_size = hidden_size
        self.gru = nn.GRU(self.input_size, hidden_size, batch_first=True)

    def forward(self, history: Tensor) -> Tensor:
        """history [B, H, act_dim + 1 + obs_dim] (oldest first) -> z [B, hidden_size]."""
        _, h_n = self.gru(history)
        return h_n[-1]

    @torch.no_grad()
    def features(self, history: Tensor) -> Tensor:
        """z without a graph: the propensity classifier's features (MQL §3.2)."""
        return self(history)
