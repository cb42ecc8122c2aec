"""MIER's model identification and experience relabeling (Mendonca et al., 2020; paper seed 001).

The model p̂(s', r | s, a; θ, φ) predicts a diagonal Gaussian over y = [r, s' - s] (reward first,
mier_public ``data.py`` ``prepare_data``). Identification adapts only the context φ by clipped SGD
(eq. 3, the equation Algorithm 2 calls "Eq. 3"); meta-training minimises the post-adaptation loss
over θ and φ₀ (eq. 4); relabeling replaces (s', r) of stored transitions by model samples (eq. 6).

Gradients are taken with ``torch.func`` over a loss function of ``(params, context)``, so the same
code serves a plain ``backward`` on the module's parameters and a fully functional
``grad_and_value`` (``meta_gradient``). Randomness comes only from a passed generator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor
from torch.func import grad, grad_and_value
from torch.nn import functional as F

__all__ = [
    "BOUND_WEIGHT",
    "ContextLoss",
    "GaussianPrediction",
    "MetaGradient",
    "ModelLoss",
    "adapt_context",
    "bounded_logvar",
    "clip_by_norm",
    "clip_grad_groups_",
    "context_sgd_step",
    "gaussian_nll",
    "meta_gradient",
    "model_loss",
    "model_targets",
    "post_adaptation_loss",
    "relabel",
]

BOUND_WEIGHT = 0.01  # mier_public bnn_contextual.py: + 0.01 * sum(max_logvar) - 0.01 * sum(min_logvar)

Params = Mapping[str, Tensor]
#: ``loss(params, context [..., C]) -> [...]``: one loss per task row of the context. Task t's loss
#: may depend on context row t only; then the gradient of the sum w.r.t. row t is task t's own.
ContextLoss = Callable[[Params, Tensor], Tensor]


class GaussianPrediction(NamedTuple):
    """The model's output: mean and bounded log-variance of [r, Δs], ``[..., 1 + obs_dim]`` each, and
    the bounds ``[1 + obs_dim]`` that produced it (the loss regularises them)."""

    mean: Tensor
    logvar: Tensor
    min_logvar: Tensor
    max_logvar: Tensor


class ModelLoss(NamedTuple):
    """Per-task model losses ``[...]``: ``total`` (the trained one) and its parts, for logging."""

    total: Tensor
    reward_nll: Tensor
    state_nll: Tensor
    reward_mse: Tensor
    state_mse: Tensor


class MetaGradient(NamedTuple):
    loss: Tensor  # [] mean post-adaptation loss over tasks
    params: dict[str, Tensor]  # d loss / d θ, one entry per parameter
    context0: Tensor  # d loss / d φ₀
    context: Tensor  # φ_K, detached


def model_targets(obs: Tensor, reward: Tensor, next_obs: Tensor) -> Tensor:
    """y = [r, s' - s] ``[..., 1 + obs_dim]``: the model predicts state deltas, not next states."""
    if obs.shape != next_obs.shape or reward.shape != (*obs.shape[:-1], 1):
        raise ValueError(f"model_targets: need obs, next_obs [..., O] and reward [..., 1]; got "
                         f"{list(obs.shape)}, {list(next_obs.shape)}, {list(reward.shape)}")
    return torch.cat([reward, next_obs - obs], dim=-1)


def bounded_logvar(raw: Tensor, min_logvar: Tensor, max_logvar: Tensor) -> Tensor:
    """PETS/MBPO soft bounds (mier_public ``_incorporate_max_min_logvar``):

    ``lv = max - softplus(max - raw)``, then ``lv = min + softplus(lv - min)``. Smooth, equal to
    ``raw`` well inside (min, max), and saturating at the bounds, so the variance can neither vanish
    (an infinite weight on one sample) nor explode; the bounds are learned (see ``gaussian_nll``).
    """
    lv = max_logvar - F.softplus(max_logvar - raw)
    return min_logvar + F.softplus(lv - min_logvar)


def gaussian_nll(
    mean: Tensor, logvar: Tensor, target: Tensor, min_logvar: Tensor, max_logvar: Tensor,
    bound_weight: float = BOUND_WEIGHT,
) -> tuple[Tensor, Tensor]:
    """One output block's loss, the −log p̂ of eqs. 3-4 as mier_public writes it:

    ``L = mean_{n,k} (μ - y)² e^{-lv} + mean_{n,k} lv + w Σ_k max_k - w Σ_k min_k``

    i.e. ``2 * mean(−log N(y; μ, e^{lv})) − log 2π`` plus the bound regulariser (w = 0.01), which
    pulls the learned bounds together and so tightens them where the data allow.

    Args:
        mean, logvar, target: ``[..., N, K]`` (logvar already bounded).
        min_logvar, max_logvar: ``[K]``.

    Returns:
        ``(loss, mse)``, each ``[...]``: reduced over the N samples and K outputs of each task.
    """
    if not (mean.shape == logvar.shape == target.shape) or mean.dim() < 2:
        raise ValueError(f"gaussian_nll: need mean, logvar, target of one shape [..., N, K]; got "
                         f"{list(mean.shape)}, {list(logvar.shape)}, {list(target.shape)}")
    sq = (mean - target).square()
    fit = (sq * torch.exp(-logvar)).mean(dim=(-2, -1)) + logvar.mean(dim=(-2, -1))
    reg = bound_weight * (max_logvar.sum() - min_logvar.sum())
    return fit + reg, sq.mean(dim=(-2, -1))


def model_loss(
    pred: GaussianPrediction, target: Tensor, predict_reward: bool = True, predict_state: bool = True,
    bound_weight: float = BOUND_WEIGHT,
) -> ModelLoss:
    """The model's total loss: the reward block's plus the state block's ``gaussian_nll``.

    Each block is averaged over its own outputs, so the 1-d reward weighs as much as the whole
    state (mier_public ``_get_model_loss_dict``); ``predict_reward`` / ``predict_state`` keep one
    block only (mier_public ``rew_pred`` / ``state_pred``: the separate reward and state models).
    """
    if not (predict_reward or predict_state):
        raise ValueError("model_loss: at least one of predict_reward, predict_state must be true")
    parts = [
        gaussian_nll(pred.mean[..., cols], pred.logvar[..., cols], target[..., cols],
                     pred.min_logvar[cols], pred.max_logvar[cols], bound_weight)
        for cols in (slice(0, 1), slice(1, None))
    ]
    (r_nll, r_mse), (s_nll, s_mse) = parts
    if predict_reward and predict_state:
        total = r_nll + s_nll
    else:
        total = r_nll if predict_reward else s_nll
    return ModelLoss(total, r_nll, s_nll, r_mse, s_mse)


def clip_by_norm(x: Tensor, max_norm: float) -> Tensor:
    """``tf.clip_by_norm`` per row: ``x * max_norm / max(‖x‖₂, max_norm)`` over the last dim."""
    if not max_norm > 0:
        raise ValueError(f"clip_by_norm: max_norm must be > 0, got {max_norm}")
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x * (max_norm / norm.clamp(min=max_norm))


def context_sgd_step(context: Tensor, gradient: Tensor, lr: float, max_norm: float) -> Tensor:
    """Eq. 3: ``φ ← φ − α · clip_by_norm(∇_φ L, c)`` (mier_public: α = 0.01, c = 10 = ``clip_val_inner_grad``)."""
    if context.shape != gradient.shape:
        raise ValueError(f"context_sgd_step: context {list(context.shape)} and gradient {list(gradient.shape)} differ")
    return context - lr * clip_by_norm(gradient, max_norm)


def _lrs(steps: int, lr: float | Sequence[float]) -> list[float]:
    lrs = [float(lr)] * steps if isinstance(lr, (int, float)) else [float(x) for x in lr]
    if len(lrs) != steps or any(not x > 0 for x in lrs):
        raise ValueError(f"adapt_context: need {steps} learning rates > 0, got {lr!r}")
    return lrs


def adapt_context(
    loss_fn: ContextLoss, params: Params, context: Tensor, steps: int = 2, lr: float | Sequence[float] = 0.01,
    max_norm: float = 10.0, first_order: bool = False,
) -> Tensor:
    """K steps of eq. 3 on the adaptation data that ``loss_fn`` closes over: φ₀ → φ_K.

    Only φ moves; θ (``params``) is read. Second order by default: φ_K stays a differentiable
    function of θ and φ₀ (mier_public's ``tf.gradients`` through the context update).
    ``first_order`` detaches each inner gradient, dropping the ∂²L/∂φ∂θ and ∂²L/∂φ² terms.
    ``lr`` may list one rate per step (extrapolation: 0.01 for 2 steps, then 0.001;
    mier.py ``fast_adapt_model``).

    Args:
        loss_fn: ``(params, context [..., C]) -> [...]`` per-task losses (see ``ContextLoss``).
        context: φ₀ ``[..., C]``, one row per task.

    Returns:
        φ_K ``[..., C]``.
    """
    if steps < 0:
        raise ValueError(f"adapt_context: steps must be >= 0, got {steps}")
    inner_grad = grad(lambda c: loss_fn(params, c).sum())
    for rate in _lrs(steps, lr):
        g = inner_grad(context)
        context = context_sgd_step(context, g.detach() if first_order else g, rate, max_norm)
    return context


def post_adaptation_loss(
    adapt_loss: ContextLoss, eval_loss: ContextLoss, params: Params, context0: Tensor, steps: int = 2,
    lr: float | Sequence[float] = 0.01, max_norm: float = 10.0, first_order: bool = False,
) -> tuple[Tensor, Tensor]:
    """Eq. 4's objective per task, ``L(θ, φ_K; D_eval)`` with φ_K adapted on D_adapt; and φ_K.

    Differentiable w.r.t. ``params`` and ``context0`` when they require grad (a LightningModule
    calls ``manual_backward`` on its mean). mier_public trains θ and the log-var bounds but keeps
    φ₀ = 0 (``fixed_preupdate_context``); the paper learns φ₀ too: whether φ₀'s gradient is
    used is the method's choice.

    Returns:
        ``(loss [...], φ_K [..., C])``.
    """
    context = adapt_context(adapt_loss, params, context0, steps, lr, max_norm, first_order)
    return eval_loss(params, context), context


def meta_gradient(
    adapt_loss: ContextLoss, eval_loss: ContextLoss, params: Params, context0: Tensor, steps: int = 2,
    lr: float | Sequence[float] = 0.01, max_norm: float = 10.0, first_order: bool = False,
) -> MetaGradient:
    """The gradient of eq. 4's mean post-adaptation loss w.r.t. θ and φ₀, purely functionally
    (``torch.func.grad_and_value``; nothing is accumulated into ``.grad``)."""

    def objective(p: Params, c0: Tensor) -> tuple[Tensor, Tensor]:
        loss, context = post_adaptation_loss(adapt_loss, eval_loss, p, c0, steps, lr, max_norm, first_order)
        return loss.mean(), context

    detached = {k: v.detach() for k, v in params.items()}
    (g_params, g_context), (loss, context) = grad_and_value(objective, argnums=(0, 1), has_aux=True)(
        detached, context0.detach())
    return MetaGradient(loss, dict(g_params), g_context, context.detach())


@torch.no_grad()
def clip_grad_groups_(groups: Sequence[Sequence[Tensor]], max_norm: float) -> None:
    """mier_public's outer clip (``clip_val_outer_grad`` = 10), in place on ``.grad``: one
    ``tf.clip_by_norm`` per TF variable. Its network weights are ONE flat variable
    (``ParameterizedModel``), so they share one norm; each log-var bound is its own group. Clipping
    each ``nn.Parameter`` separately would not be the same."""
    if not max_norm > 0:
        raise ValueError(f"clip_grad_groups_: max_norm must be > 0, got {max_norm}")
    for group in groups:
        grads = [p.grad for p in group if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            scale = max_norm / norm.clamp(min=max_norm)  # a tensor: no device sync
            for g in grads:
                g.mul_(scale)


def relabel(
    pred: GaussianPrediction, obs: Tensor, action: Tensor, termination_fn: Callable[[Tensor, Tensor, Tensor], Tensor],
    sample: bool = True, generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 6: ``(s', r) ~ p̂(· | s, a; θ, φ_T)`` for stored states s and actions a (the caller draws
    a ~ π(· | s, φ_T), or keeps the stored one for MIER's reward-only "off-policy" relabeling).

    As mier_public ``fake_env_contextual.py``: y = μ + σ ε with one ε ~ N(0, I) for [r, Δs]
    jointly (``sample=False``: the mean, its ``is_deterministic`` model), s' = s + Δs, and the
    termination recomputed from (s, a, s') by the env's termination function (the stored flag
    belongs to the old s'). Reward-only relabeling keeps the stored s' and flag and takes only the
    returned reward.

    Args:
        pred: the model's prediction at (s, a, φ_T), ``[..., 1 + O]``.
        obs, action: ``[..., O]``, ``[..., A]``.
        termination_fn: ``(s, a, s') -> [..., 1]`` bool, the family's ``done`` rule.

    Returns:
        ``(next_obs [..., O], reward [..., 1], terminated [..., 1] bool)``.
    """
    if pred.mean.shape != (*obs.shape[:-1], obs.shape[-1] + 1):
        raise ValueError(f"relabel: prediction {list(pred.mean.shape)} does not fit obs {list(obs.shape)}")
    y = pred.mean
    if sample:
        if generator is None:
            raise ValueError("relabel: sample=True needs a generator (all randomness comes from the caller)")
        eps = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        y = y + torch.exp(0.5 * pred.logvar) * eps
    reward, next_obs = y[..., :1], obs + y[..., 1:]
    terminated = termination_fn(obs, action, next_obs).to(torch.bool)
    if terminated.shape != reward.shape:
        raise ValueError(f"relabel: termination_fn must return {list(reward.shape)}, got {list(terminated.shape)}")
    return next_obs, reward, terminated

