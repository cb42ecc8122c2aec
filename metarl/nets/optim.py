"""The nets' optimizer: Adam, with PyTorch's fused multi-tensor kernel where it applies."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

_FUSED_DEVICES = ("cpu", "cuda")


def adam(params: Iterable[Tensor], lr: float) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr=lr)``; ``fused=True`` when every parameter is a floating-point
    tensor on one CPU or CUDA device. The fused kernel computes Adam's update in one pass per
    step instead of about ten ops per parameter tensor: the same algorithm and hyperparameters,
    equal up to fp32 rounding (``tests/test_fast_update.py``) and 3x cheaper on CPU at MQL's sizes
    (BENCHMARKS.md, "Update throughput").
    """
    params = list(params)
    devices = {p.device for p in params}
    fused = (
        len(devices) == 1 and next(iter(devices)).type in _FUSED_DEVICES
        and all(p.dtype.is_floating_point for p in params)
    )
    return torch.optim.Adam(params, lr=lr, fused=True if fused else None)


def adam_over(module: nn.Module, extra: Iterable[nn.Module], lr: float) -> torch.optim.Adam:
    """Adam over ``module`` and the modules trained by its loss (e.g. its context encoder)."""
    params = list(module.parameters()) + [p for m in extra for p in m.parameters()]
    return adam(params, lr=lr)
