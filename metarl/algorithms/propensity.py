"""Propensity scores for MQL adaptation: logistic fit (eq. 11), beta (eq. 12), ESS (eq. 13), lambda.

The classifier separates the new task (label -1) from meta-training data (label +1, the proposal
distribution). ``beta = P(new | x) / P(meta | x)`` then reweighs meta-training transitions in
eq. 19, and ``lambda = 1 - ESS`` (Remark 3) sets the proximal weight of eqs. 18-19.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "LogisticFit",
    "beta_from_logits",
    "effective_sample_size",
    "fit_logistic",
    "prox_coef",
]

# Sufficient-decrease constant of the Armijo backtracking line search (Nocedal & Wright,
# Numerical Optimization, 2nd ed., §3.1, which suggests 1e-4).
_ARMIJO_C = 1e-4
# Step halvings before the line search gives up: 0.5**60 ~ 1e-18 is below float64 resolution,
# so a step that small cannot change the parameters anyway.
_MAX_HALVINGS = 60


def effective_sample_size(beta: Tensor) -> Tensor:
    """Normalized effective sample size, MQL eq. 13: ``(sum beta)^2 / (N * sum beta^2)``.

    Scale-invariant and in [0, 1]: 1 when all weights are equal, 1/N when one weight carries all
    the mass. If every beta is 0, no sample contributes to the importance-sampling estimate (eq. 10),
    so there are zero effective samples: the result is 0 (then lambda = 1 - ESS = 1, the strongest
    pull towards theta_meta). The released code's ``+1e-7`` in the denominator gives 0 there as well.

    Args:
        beta: ``[N]`` non-negative importance weights, N >= 1 (any shape is read as N = numel).

    Returns:
        ``[]`` ESS, in beta's floating dtype, on beta's device. Differentiable; no host sync.
    """
    n = beta.numel()
    if n == 0:
        raise ValueError("effective_sample_size: beta is empty; need at least one weight")
    b = beta.flatten()
    if not b.is_floating_point():
        b = b.to(torch.get_default_dtype())
    # Dividing by the largest |beta| first keeps squares of tiny or huge weights from
    # underflowing to 0/0 or overflowing to inf/inf; ESS is scale-invariant, so it is unchanged.
    scale = b.abs().amax()
    safe_scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    b = b / safe_scale
    # After the rescale sum(b^2) >= 1 whenever scale > 0; the floor only keeps the discarded
    # all-zero branch of the where() below free of 0/0 (which would poison gradients with NaN).
    ess = b.sum().square() / (n * b.square().sum().clamp_min(torch.finfo(b.dtype).tiny))
    # Rounding can land an ulp above 1; Cauchy-Schwarz bounds the exact value to [0, 1].
    return torch.where(scale > 0, ess.clamp(0.0, 1.0), torch.zeros_like(ess))


def beta_from_logits(logits: Tensor, clip: float, zero_below: float = 0.0) -> Tensor:
    """Propensity score from the classifier logit, MQL eq. 12 with Remark 4's clipping.

    ``f`` is the logit of P(meta-train | x) (label +1 in eq. 11), so
    ``beta = P(new | x) / P(meta | x) = exp(-f)``. Remark 4 clips large beta; as in the released
    code the clip acts on the logit, ``beta = exp(-max(f, -clip))``, so beta <= exp(clip) (Table 1
    "beta clipping": clip = 1 caps beta at e). Weights below ``zero_below`` are set to 0 (the
    released code uses 0.1; the default 0.0 leaves every weight as is).

    Args:
        logits: ``[N]`` f(x) = w^T x + b, e.g. ``LogisticFit.logits(x)``.
        clip: > 0, the log of the largest allowed beta (Table 1, "beta clipping").
        zero_below: >= 0; beta strictly below it becomes 0.

    Returns:
        ``[N]`` beta >= 0, same dtype and device as ``logits``.
    """
    if not clip > 0.0:
        raise ValueError(f"beta_from_logits: clip must be > 0 (beta is capped at exp(clip)), got {clip}")
    if not zero_below >= 0.0:
        raise ValueError(f"beta_from_logits: zero_below must be >= 0, got {zero_below}")
    beta = torch.exp(-logits.clamp_min(-clip))
    if zero_below > 0.0:
        beta = torch.where(beta < zero_below, torch.zeros_like(beta), beta)
    return beta


def prox_coef(ess: Tensor | float) -> Tensor:
    """Proximal coefficient of eqs. 18-19, MQL Remark 3: ``lambda = 1 - ESS``.

    Args:
        ess: ``[]`` normalized ESS in [0, 1], e.g. from ``effective_sample_size``.

    Returns:
        ``[]`` lambda in [0, 1] (a tensor ESS is clamped to [0, 1] first, since a negative lambda
        would push the parameters away from theta_meta).
    """
    if not isinstance(ess, Tensor):
        if not 0.0 <= ess <= 1.0:
            raise ValueError(f"prox_coef: ess must be in [0, 1], got {ess}")
        return torch.tensor(1.0 - float(ess))
    return 1.0 - ess.clamp(0.0, 1.0)


@dataclass(frozen=True)
class LogisticFit:
    """A fitted propensity classifier (MQL eq. 11): logit of P(meta-train | x) = ``x @ weight + bias``.

    Attributes:
        weight: ``[D]`` float64 coefficients w.
        bias: ``[]`` float64 intercept b.
        accuracy: training accuracy in [0, 1] (the released code logs it as ``train_acc``).
        n_new, n_meta: sample counts of the new task (label -1) and meta-training data (label +1).
        n_iter: Newton iterations taken.
        converged: whether the step size fell below ``tol`` within ``max_iter`` iterations.
    """

    weight: Tensor
    bias: Tensor
    accuracy: float
    n_new: int
    n_meta: int
    n_iter: int = 0
    converged: bool = True

    def logits(self, x: Tensor) -> Tensor:
        """``[N, D] -> [N]`` logit f(x) of P(meta-train | x), in x's dtype and on x's device."""
        if x.ndim != 2 or x.shape[1] != self.weight.shape[0]:
            raise ValueError(f"LogisticFit.logits: x must be [N, {self.weight.shape[0]}], got {tuple(x.shape)}")
        return x @ self.weight.to(x) + self.bias.to(x)


def _objective(theta: Tensor, xa: Tensor, y: Tensor, C: float) -> Tensor:
    # 1/2 |w|^2 + C * sum log(1 + exp(-y m)); logaddexp(0, .) is exact where softplus thresholds.
    margin = y * (xa @ theta)
    return 0.5 * theta[:-1].square().sum() + C * torch.logaddexp(torch.zeros_like(margin), -margin).sum()


def fit_logistic(
    x_new: Tensor,
    x_meta: Tensor,
    C: float,
    max_iter: int = 2000,
    tol: float = 1e-6,
) -> LogisticFit:
    """Fit the propensity classifier of MQL eq. 11: L2-regularized logistic regression.

    Minimizes ``1/2 |w|^2 + C * sum_i log(1 + exp(-y_i (w^T x_i + b)))`` with y = -1 for the new
    task and y = +1 for meta-training data, and an unregularized intercept b. This is the objective
    of ``sklearn.linear_model.LogisticRegression(C=C)``, which the released code fits
    (``C = lam_csc``, the *inverse* regularization strength), so the solutions agree. The paper's
    eq. 11 writes the same problem as ``1/(2m) sum loss + c |w|^2`` without an intercept; for
    N = 2m samples that is C = 1 / (2 c N).

    Solved by damped Newton's method (Armijo backtracking) in float64 from w = 0, b = 0: the
    problem is strictly convex in w and small (D <= ~400, N <= ~1000), so a handful of iterations
    reach float64 precision. No randomness is used (global RNG state is untouched) and the inputs
    are only read; no gradient is recorded. Runs on the inputs' device.

    Args:
        x_new: ``[Nn, D]`` features of new-task transitions (label -1), Nn >= 1.
        x_meta: ``[Nm, D]`` features of meta-training transitions (label +1), Nm >= 1.
        C: > 0, inverse L2 regularization strength (reference ``--lam_csc``: 0.05-0.5). Remark 4:
            a small C (strong regularization) favours false negatives over false positives.
        max_iter: most Newton iterations (the released code's ``max_iter_logistic`` is 2000).
        tol: > 0; stop once the largest entry of the Newton step is at most ``tol``.

    Returns:
        A ``LogisticFit`` with float64 ``weight`` ``[D]`` and ``bias`` ``[]``.
    """
    for name, x in (("x_new", x_new), ("x_meta", x_meta)):
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"fit_logistic: {name} must be [N, D] with N >= 1, got {tuple(x.shape)}")
    if x_new.shape[1] != x_meta.shape[1]:
        raise ValueError(f"fit_logistic: feature sizes differ: x_new has {x_new.shape[1]}, x_meta {x_meta.shape[1]}")
    if x_new.device != x_meta.device:
        raise ValueError(f"fit_logistic: x_new is on {x_new.device} but x_meta on {x_meta.device}")
    if not (C > 0.0 and math.isfinite(C)):
        raise ValueError(f"fit_logistic: C must be a finite number > 0, got {C}")
    if max_iter < 1:
        raise ValueError(f"fit_logistic: max_iter must be >= 1, got {max_iter}")
    if not tol > 0.0:
        raise ValueError(f"fit_logistic: tol must be > 0, got {tol}")

    with torch.no_grad():
        f64 = torch.float64
        n_new, n_meta, d = x_new.shape[0], x_meta.shape[0], x_new.shape[1]
        x = torch.cat([x_new.detach().to(f64), x_meta.detach().to(f64)])
        if not torch.isfinite(x).all():
            raise ValueError("fit_logistic: features contain NaN or inf")
        xa = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)  # last column carries the intercept
        y = torch.cat([-torch.ones(n_new, dtype=f64, device=x.device), torch.ones(n_meta, dtype=f64, device=x.device)])
        reg = torch.ones(d + 1, dtype=f64, device=x.device)
        reg[-1] = 0.0  # the intercept is not penalized

        theta = torch.zeros(d + 1, dtype=f64, device=x.device)
        loss = _objective(theta, xa, y, C)
        converged, n_iter = False, 0
        while n_iter < max_iter:
            n_iter += 1
            margin = y * (xa @ theta)
            s = torch.sigmoid(-margin)  # = 1 - P(correct label | x)
            grad = reg * theta - C * (xa.T @ (y * s))
            hess = (xa.T * (C * s * (1.0 - s))) @ xa + torch.diag(reg)
            step, info = torch.linalg.solve_ex(hess, grad)
            if info.item() != 0 or not torch.isfinite(step).all():
                # Only when every margin saturates (huge C); a pseudo-inverse step still descends.
                step = torch.linalg.pinv(hess) @ grad
            decrease = float(grad @ step)
            t = 1.0
            for _ in range(_MAX_HALVINGS):
                candidate = theta - t * step
                cand_loss = _objective(candidate, xa, y, C)
                if cand_loss <= loss - _ARMIJO_C * t * decrease:
                    break
                t *= 0.5
            else:
                converged = True  # no representable decrease is left: we are at the optimum
                break
            theta, loss = candidate, cand_loss
            if float((t * step).abs().max()) <= tol:
                converged = True
                break

        w, b = theta[:-1].clone(), theta[-1].clone()
        predicted_meta = (xa @ theta) > 0  # sklearn's predict: decision > 0 -> the +1 class
        accuracy = float((predicted_meta == (y > 0)).to(f64).mean())
    return LogisticFit(w, b, accuracy, n_new, n_meta, n_iter, converged)
