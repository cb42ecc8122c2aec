"""The proximal term of MQL adaptation, eqs. 18-19: keep theta near the meta-trained theta_meta."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["proximal_penalty"]


def proximal_penalty(
    params: Sequence[Tensor],
    anchor: Sequence[Tensor],
    prox_coef: Tensor | float,
    half: bool = True,
) -> Tensor:
    """Quadratic pull towards the meta-trained parameters, MQL eqs. 18-19.

    ``(lambda / 2) * sum_p |theta_p - theta_meta_p|^2`` as the paper writes it (``half=True``), or
    ``lambda * sum_p |theta_p - theta_meta_p|^2`` as the released code adds it to both the actor and
    the critic loss (``half=False``). Its gradient is ``lambda (theta - theta_meta)`` (or twice that).

    The anchor and lambda are constants of the objective and are detached: theta_meta is a frozen
    snapshot, and lambda = 1 - ESS (Remark 3) must not send gradient into the beta features.

    Args:
        params: the adapted parameters theta, e.g. ``list(actor.parameters())``.
        anchor: theta_meta, same order and shapes as ``params``.
        prox_coef: ``[]`` lambda >= 0, e.g. ``prox_coef(effective_sample_size(beta))``.
        half: True for the paper's lambda/2, False for the released code's lambda.

    Returns:
        ``[]`` penalty, on the device and in the dtype of ``params`` (0 for no parameters).
    """
    params, anchor = list(params), list(anchor)
    if len(params) != len(anchor):
        raise ValueError(f"proximal_penalty: {len(params)} params but {len(anchor)} anchor tensors")
    for i, (p, a) in enumerate(zip(params, anchor, strict=True)):
        if p.shape != a.shape:
            raise ValueError(f"proximal_penalty: tensor {i} has shape {tuple(p.shape)} but its anchor {tuple(a.shape)}")
    if isinstance(prox_coef, Tensor):
        if prox_coef.numel() != 1:
            raise ValueError(f"proximal_penalty: prox_coef must be a scalar, got {tuple(prox_coef.shape)}")
        coef = prox_coef.detach().reshape(())
    elif not prox_coef >= 0.0:
        raise ValueError(f"proximal_penalty: prox_coef must be >= 0, got {prox_coef}")
    else:
        coef = prox_coef
    if not params:
        return torch.zeros(()) * coef
    sq = torch.stack([(p - a.detach()).square().sum() for p, a in zip(params, anchor, strict=True)]).sum()
    return (0.5 * coef if half else coef) * sq
