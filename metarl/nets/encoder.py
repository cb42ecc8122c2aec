"""The MQL context: a GRU over the recent (action, reward, observation) triples (paper §3.1.1)."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from metarl.nets.gru import fused_gru


class ContextEncoder(pl.LightningModule):
    """z = the final hidden state of a one-layer GRU run over a history window.

    The window is re-encoded from a zero hidden state on every call, as the released MQL code does
    (its authors: the task is inferred from the current trajectory window, issue #5).

    Args:
        obs_dim: observation size.
        act_dim: action size.
        hidden_size: the context dimension (paper Table 1 "Context dimension").
        fast: compute the GRU with metarl's fused kernel (``metarl.nets.gru``) on CPU; the same
            function and gradients as ``nn.GRU`` up to fp32 rounding, about twice as fast (see
            BENCHMARKS.md, "Update throughput"). Other devices use ``nn.GRU`` (cuDNN) either way.
            The parameters are those of ``self.gru`` in both cases.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_size: int = 30, fast: bool = True) -> None:
        super().__init__()
        if obs_dim < 1 or act_dim < 1 or hidden_size < 1:
            raise ValueError(
                f"ContextEncoder: obs_dim, act_dim and hidden_size must be >= 1, "
                f"got {obs_dim}, {act_dim}, {hidden_size}"
            )
        self.save_hyperparameters()
        self.input_size = act_dim + 1 + obs_dim
        self.hidden_size = hidden_size
        self.fast = fast
        self.gru = nn.GRU(self.input_size, hidden_size, batch_first=True)

    def forward(self, history: Tensor) -> Tensor:
        """history [B, H, act_dim + 1 + obs_dim] (oldest first) -> z [B, hidden_size]."""
        if self._fused_on(history):
            return fused_gru(history, [self.gru])[0]
        _, h_n = self.gru(history)
        return h_n[-1]

    def _fused_on(self, history: Tensor) -> bool:
        return (
            self.fast and history.device.type == "cpu" and history.dim() == 3 and history.shape[1] > 0
            and not history.requires_grad  # the fused kernel has no input gradient
        )

    @staticmethod
    def encode_many(encoders: Sequence[ContextEncoder], histories: Tensor | Sequence[Tensor]) -> list[Tensor]:
        """``[e(h) for e, h in zip(encoders, histories)]`` (one history for all, or one each),
        computed at once when every encoder is a fast ContextEncoder of one size: one fused kernel
        runs all their GRUs. An (encoder, history) pair listed twice is computed once. Gradients
        reach each encoder's parameters that require them, as with separate calls.
        """
        hs = [histories] * len(encoders) if isinstance(histories, Tensor) else list(histories)
        if len(hs) != len(encoders):
            raise ValueError(f"encode_many: {len(encoders)} encoders but {len(hs)} histories")
        unique: dict[tuple[int, int], tuple[ContextEncoder, Tensor]] = {}
        for e, h in zip(encoders, hs, strict=True):
            unique.setdefault((id(e), id(h)), (e, h))
        pairs = list(unique.values())
        first = pairs[0][0]
        fusable = len(pairs) > 1 and all(
            type(e).forward is ContextEncoder.forward and e._fused_on(h) and h.shape == pairs[0][1].shape
            and e.gru.weight_ih_l0.shape == first.gru.weight_ih_l0.shape
            and e.gru.weight_hh_l0.shape == first.gru.weight_hh_l0.shape
            for e, h in pairs
        )
        if fusable:
            zs = fused_gru([h for _, h in pairs], [e.gru for e, _ in pairs]).unbind(0)
        else:
            zs = [e(h) for e, h in pairs]
        out = dict(zip(unique, zs, strict=True))
        return [out[(id(e), id(h))] for e, h in zip(encoders, hs, strict=True)]

    @torch.no_grad()
    def features(self, history: Tensor) -> Tensor:
        """z without a graph: the propensity classifier's features (MQL §3.2)."""
        return self(history)
