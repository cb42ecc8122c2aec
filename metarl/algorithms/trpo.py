"""Trust-region policy optimisation (Schulman et al., 2015, "Trust Region Policy Optimization") as
pure functions: TorchRL 0.14 has no TRPO (no conjugate gradient, no Hessian-vector product).

The update of §6 / appendix C: maximise the surrogate subject to mean KL(pi_old || pi_theta) <= delta,

* the search direction s solves ``H s = g`` by conjugate gradient (appendix C), where H is the
  Hessian of the mean KL at theta_old (the Fisher information) and g the gradient of the loss;
* the full step is ``beta * s`` with ``beta = sqrt(2 delta / s^T H s)`` (appendix C, eq. after 14):
  the largest step whose quadratic KL model equals delta;
* a backtracking line search shrinks it until the loss improves and the exact KL <= delta.

The constants are the reference codes' (methods-reference §5.2): 10 CG iterations, damping 1e-5,
max KL 0.01, a backtrack ratio of 0.8 and 15 tries (pytorch-maml-rl ``configs/maml/*.yaml``; ProMP's
``ConjugateGradientOptimizer`` and learn2learn use 0.5). Here everything is a *loss* to minimise, so
the step is ``-beta * s`` on the parameters.

Vectors are flat (``torch.nn.utils.parameters_to_vector`` order): CG and the line search work on one
vector whatever the parameter shapes; :func:`unflatten_like` maps one back onto a parameter dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "LineSearchResult",
    "backtracking_line_search",
    "conjugate_gradient",
    "fisher_vector_product",
    "flat_grad",
    "fvp_operator",
    "trpo_direction",
    "trpo_step_scale",
    "unflatten_like",
]


def flat_grad(loss: Tensor, params: Sequence[Tensor], create_graph: bool = False) -> Tensor:
    """``d loss / d params`` as one flat vector; a parameter the loss does not reach gets zeros."""
    if loss.dim() != 0:
        raise ValueError(f"flat_grad: loss must be a scalar, got shape {tuple(loss.shape)}")
    grads = torch.autograd.grad(loss, list(params), create_graph=create_graph, allow_unused=True,
                                retain_graph=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params, strict=True)])


def unflatten_like(flat: Tensor, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Cut a flat vector into tensors shaped like ``params`` (same order), e.g. for ``functional_call``."""
    total = sum(p.numel() for p in params.values())
    if flat.dim() != 1 or flat.numel() != total:
        raise ValueError(f"unflatten_like: flat must be a vector of {total} elements, got shape {tuple(flat.shape)}")
    out, start = {}, 0
    for name, p in params.items():
        out[name] = flat[start:start + p.numel()].view_as(p)
        start += p.numel()
    return out


def fvp_operator(kl: Tensor, params: Sequence[Tensor], damping: float = 1e-5) -> Callable[[Tensor], Tensor]:
    """``v -> (H + damping I) v`` with H the Hessian of the scalar ``kl`` w.r.t. ``params``.

    Double backprop (Pearlmutter's trick, TRPO appendix C.1): ``H v = d (grad(KL) . v) / d theta``. The
    first gradient is taken once, with its graph, so the ~10 products of one CG solve each cost one
    backward pass instead of two. ``kl`` is the mean KL(pi_old || pi_theta) with pi_old detached; at
    theta = theta_old its Hessian is the Fisher information. The damping (pytorch-maml-rl 1e-5) keeps
    CG well posed where the Fisher is singular.
    """
    if not damping >= 0.0:
        raise ValueError(f"fvp_operator: damping must be >= 0, got {damping}")
    params = list(params)
    grad_kl = flat_grad(kl, params, create_graph=True)

    def fvp(v: Tensor) -> Tensor:
        if v.shape != grad_kl.shape:
            raise ValueError(f"fvp: v must have shape {tuple(grad_kl.shape)}, got {tuple(v.shape)}")
        hv = flat_grad(grad_kl @ v.detach(), params)
        return hv + damping * v.detach()

    return fvp


def fisher_vector_product(kl: Tensor, params: Sequence[Tensor], v: Tensor, damping: float = 1e-5) -> Tensor:
    """One product ``(H + damping I) v`` (see :func:`fvp_operator`, which CG should use)."""
    return fvp_operator(kl, params, damping)(v)


def conjugate_gradient(
    fvp: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> Tensor:
    """Solve ``A x = b`` for a symmetric positive-definite A given only ``v -> A v`` (TRPO appendix C;
    Nocedal & Wright, Algorithm 5.2), from x0 = 0, stopping after ``iters`` products or when the squared
    residual norm falls below ``residual_tol``. Returns x, detached (a search direction, not a graph)."""
    if iters < 1:
        raise ValueError(f"conjugate_gradient: iters must be >= 1, got {iters}")
    if b.dim() != 1:
        raise ValueError(f"conjugate_gradient: b must be a flat vector, got shape {tuple(b.shape)}")
    b = b.detach()
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr.item() < residual_tol:
            break
        ap = fvp(p).detach()
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def trpo_step_scale(step_dir: Tensor, fvp_of_step_dir: Tensor, max_kl: float) -> Tensor:
    """``beta = sqrt(2 delta / s^T H s)``: the scale at which the quadratic KL model ``0.5 (beta s)^T H
    (beta s)`` equals delta = ``max_kl`` (TRPO appendix C)."""
    if not max_kl > 0.0:
        raise ValueError(f"trpo_step_scale: max_kl must be > 0, got {max_kl}")
    if step_dir.shape != fvp_of_step_dir.shape:
        raise ValueError(f"trpo_step_scale: step_dir {tuple(step_dir.shape)} and fvp_of_step_dir "
                         f"{tuple(fvp_of_step_dir.shape)} must share one shape")
    shs = (step_dir * fvp_of_step_dir).sum()
    # H is a Fisher (+ damping): s^T H s <= 0 means a broken KL, not a step to take.
    if not shs.item() > 0.0:
        raise ValueError(f"trpo_step_scale: s^T H s must be > 0, got {shs.item()}")
    return torch.sqrt(2.0 * max_kl / shs)


def trpo_direction(
    loss: Tensor, kl: Tensor, params: Sequence[Tensor], max_kl: float = 0.01,
    damping: float = 1e-5, cg_iters: int = 10,
) -> Tensor:
    """The full TRPO step on the flat parameters: ``-beta * s`` with ``H s = grad(loss)`` (CG) and beta of
    :func:`trpo_step_scale`. ``loss`` and ``kl`` are scalars of theta (the KL with pi_old detached)."""
    params = list(params)
    g = flat_grad(loss, params).detach()
    fvp = fvp_operator(kl, params, damping)
    s = conjugate_gradient(fvp, g, cg_iters)
    return -trpo_step_scale(s, fvp(s), max_kl) * s


@dataclass(frozen=True)
class LineSearchResult:
    """The outcome of :func:`backtracking_line_search`. ``params`` is the accepted flat vector, or the
    old one when no step was accepted (``accepted`` False, ``step_fraction`` 0)."""

    params: Tensor
    accepted: bool
    step_fraction: float
    loss: float
    kl: float
    tries: int


def backtracking_line_search(
    evaluate: Callable[[Tensor], tuple[Tensor, Tensor]],
    old_params: Tensor,
    full_step: Tensor,
    old_loss: Tensor | float,
    max_kl: float,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
) -> LineSearchResult:
    """TRPO's line search (appendix C): try ``old + f * full_step`` for f = 1, r, r^2, ... (r =
    ``backtrack_ratio``, at most ``max_backtracks`` tries) and accept the first whose loss is below
    ``old_loss`` *and* whose exact KL <= ``max_kl``. If none is, the old parameters stand (as in
    pytorch-maml-rl and garage): a step that breaks the trust region is never taken.

    ``evaluate(flat_params) -> (loss, kl)`` must be a function of its argument only (e.g. through
    ``functional_call`` with :func:`unflatten_like`); it runs under ``no_grad``. ``loss`` and ``kl`` of
    the returned result are those of the accepted step, or of the last rejected one when none was.
    """
    if not max_kl > 0.0:
        raise ValueError(f"backtracking_line_search: max_kl must be > 0, got {max_kl}")
    if not 0.0 < backtrack_ratio < 1.0:
        raise ValueError(f"backtracking_line_search: backtrack_ratio must be in (0, 1), got {backtrack_ratio}")
    if max_backtracks < 1:
        raise ValueError(f"backtracking_line_search: max_backtracks must be >= 1, got {max_backtracks}")
    if old_params.shape != full_step.shape or old_params.dim() != 1:
        raise ValueError(f"backtracking_line_search: old_params {tuple(old_params.shape)} and full_step "
                         f"{tuple(full_step.shape)} must be flat vectors of one shape")
    old_params, full_step = old_params.detach(), full_step.detach()
    reference = float(old_loss.detach()) if isinstance(old_loss, Tensor) else float(old_loss)
    loss_value = kl_value = float("nan")
    with torch.no_grad():
        for i in range(max_backtracks):
            fraction = backtrack_ratio ** i
            candidate = old_params + fraction * full_step
            loss, kl = evaluate(candidate)
            loss_value, kl_value = float(loss), float(kl)
            # NaN compares false on both counts, so a non-finite candidate is rejected too.
            if loss_value < reference and kl_value <= max_kl:
                return LineSearchResult(candidate, True, fraction, loss_value, kl_value, i + 1)
    return LineSearchResult(old_params.clone(), False, 0.0, loss_value, kl_value, max_backtracks)
