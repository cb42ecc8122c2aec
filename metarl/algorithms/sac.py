"""Soft actor-critic as pure functions: the V-form of PEARL and the twin-Q form of MIER.

* PEARL (Rakelly et al., 2019, eq. 3; official code oyster ``rlkit/torch/sac/sac.py``) uses the
  first SAC (Haarnoja et al., 2018a, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL with
  a Stochastic Actor", §4.2): twin Q nets, a state-value net V with a Polyak target V̄, and a
  fixed temperature alpha = 1 whose role the reward scale plays (oyster issue #9).
* MIER (Mendonca et al., 2020; softlearning's SAC) uses the second SAC (Haarnoja et al., 2018b,
  "Soft Actor-Critic Algorithms and Applications", §5): no V net, the min over two target Q nets
  minus alpha log pi as the bootstrap, and a learned temperature.

Shapes are checked up front for the reason given in ``td3.py`` ([B] against [B, 1] broadcasts to
[B, B] silently). A learned alpha passed as a tensor is detached wherever it only weighs a term:
only :func:`temperature_loss` trains it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from metarl.algorithms.td3 import _same_shape

__all__ = [
    "policy_loss",
    "policy_regularizer",
    "q_target",
    "soft_q_target",
    "tanh_gaussian_log_prob",
    "temperature_loss",
    "twin_q_loss",
    "value_loss",
    "value_target",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _check_gamma_scale(fn: str, gamma: float, reward_scale: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"{fn}: gamma must be in [0, 1], got {gamma}")
    if not reward_scale > 0.0:
        raise ValueError(f"{fn}: reward_scale must be > 0, got {reward_scale}")


def _const(alpha: float | Tensor) -> float | Tensor:
    """alpha as a constant of the objective: a learned log-alpha must not be trained by this loss."""
    return alpha.detach() if isinstance(alpha, Tensor) else alpha


def tanh_gaussian_log_prob(pre_tanh: Tensor, mean: Tensor, log_std: Tensor, eps: float = 1e-6) -> Tensor:
    """log pi(a | s) of a = tanh(u), u ~ N(mean, exp(log_std)^2): SAC 2018a appendix C, eq. 21.

    ``sum_i [log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2 + eps)]`` as in oyster's
    ``TanhNormal.log_prob``; the ``eps`` (oyster: 1e-6) keeps the log finite where tanh saturates,
    and makes the value slightly smaller than the exact change of variables.

    Args:
        pre_tanh, mean, log_std: ``[..., A]`` u, the Gaussian mean and log standard deviation.
        eps: >= 0.

    Returns:
        ``[..., 1]`` log-probability, summed over the action dimensions.
    """
    _same_shape("tanh_gaussian_log_prob", pre_tanh=pre_tanh, mean=mean, log_std=log_std)
    if not eps >= 0.0:
        raise ValueError(f"tanh_gaussian_log_prob: eps must be >= 0, got {eps}")
    normal = -0.5 * ((pre_tanh - mean) * torch.exp(-log_std)).square() - log_std - _HALF_LOG_2PI
    squash = torch.log(1.0 - torch.tanh(pre_tanh).square() + eps)
    return (normal - squash).sum(dim=-1, keepdim=True)


def q_target(reward: Tensor, terminated: Tensor, next_v: Tensor, gamma: float, reward_scale: float) -> Tensor:
    """Bellman target of PEARL eq. 3 / SAC 2018a eq. 8: ``y = s * r + (1 - d) * gamma * V̄(s', z)``.

    Only the Bellman reward is scaled by ``reward_scale`` (s; oyster 5, 100 for the point robots);
    the reward in the encoder's context stays raw. Only a true termination stops the bootstrap.

    Args:
        reward: ``[B, 1]`` raw r. terminated: ``[B, 1]`` bool or 0/1.
        next_v: ``[B, 1]`` target value net at (s', z), computed by the caller under ``no_grad``.
        gamma: discount in [0, 1]. reward_scale: > 0.

    Returns:
        ``[B, 1]`` y (``twin_q_loss`` detaches it).
    """
    _same_shape("q_target", reward=reward, terminated=terminated, next_v=next_v)
    _check_gamma_scale("q_target", gamma, reward_scale)
    return reward_scale * reward + (1.0 - terminated.to(reward.dtype)) * gamma * next_v


def twin_q_loss(q1: Tensor, q2: Tensor, target: Tensor) -> Tensor:
    """``mean (Q1 - y)^2 + mean (Q2 - y)^2``: PEARL eq. 3 for each Q net, as oyster sums them.

    Both nets see the whole batch (torchrl's SACLoss v1 splits it between them; PEARL does not).
    The target is detached: no gradient reaches V̄ (or z through it). MIER's softlearning SAC halves
    each term; multiply by 0.5 there.

    Args:
        q1, q2, target: ``[B, 1]``.

    Returns:
        ``[]`` scalar.
    """
    _same_shape("twin_q_loss", q1=q1, q2=q2, target=target)
    y = target.detach()
    return (q1 - y).square().mean() + (q2 - y).square().mean()


def value_target(min_q: Tensor, log_pi: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
    """Soft state value target, SAC 2018a eq. 5: ``V*(s) = min_j Q_j(s, ã, z) - alpha * log pi(ã | s, z)``.

    ã is a fresh reparameterised action; PEARL evaluates the Q nets after their update of the
    same step, with z detached. ``value_loss`` detaches the result.

    Args:
        min_q, log_pi: ``[B, 1]``. alpha: the temperature (PEARL: fixed 1).

    Returns:
        ``[B, 1]``.
    """
    _same_shape("value_target", min_q=min_q, log_pi=log_pi)
    return min_q - _const(alpha) * log_pi


def value_loss(v: Tensor, target: Tensor) -> Tensor:
    """SAC 2018a eq. 5: ``mean (V(s, z) - stopgrad(V*))^2``; the target trains neither Q nor pi.

    Args:
        v, target: ``[B, 1]``.

    Returns:
        ``[]`` scalar.
    """
    _same_shape("value_loss", v=v, target=target)
    return (v - target.detach()).square().mean()


def policy_loss(log_pi: Tensor, min_q: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
    """Reparameterised policy loss, SAC 2018a eq. 12: ``mean(alpha * log pi(ã | s) - min_j Q_j(s, ã))``.

    The gradient reaches the policy through both terms (through ã into the Q nets: only the policy's
    optimiser may step on it, and the Q nets' grads must be zeroed before their next step).

    Args:
        log_pi, min_q: ``[B, 1]``. alpha: the temperature (detached if a tensor).

    Returns:
        ``[]`` scalar.
    """
    _same_shape("policy_loss", log_pi=log_pi, min_q=min_q)
    return (_const(alpha) * log_pi - min_q).mean()


def policy_regularizer(
    mean: Tensor,
    log_std: Tensor,
    pre_tanh: Tensor,
    w_mean: float = 1e-3,
    w_std: float = 1e-3,
    w_pre: float = 0.0,
) -> Tensor:
    """oyster's policy regulariser (not in the paper): keeps the Gaussian's mean and log-std small.

    ``w_mean * mean(m^2) + w_std * mean(log_std^2) + w_pre * mean_b(sum_i u_i^2)`` with oyster's
    weights 1e-3, 1e-3 and 0 (``policy_{mean,std}_reg_weight``, ``policy_pre_activation_weight``).

    Args:
        mean, log_std, pre_tanh: ``[B, A]``. w_mean, w_std, w_pre: >= 0.

    Returns:
        ``[]`` scalar.
    """
    _same_shape("policy_regularizer", mean=mean, log_std=log_std, pre_tanh=pre_tanh)
    for name, w in (("w_mean", w_mean), ("w_std", w_std), ("w_pre", w_pre)):
        if not w >= 0.0:
            raise ValueError(f"policy_regularizer: {name} must be >= 0, got {w}")
    reg = w_mean * mean.square().mean() + w_std * log_std.square().mean()
    if w_pre == 0.0:
        return reg  # oyster's default: skip the term rather than multiply a graph by 0
    return reg + w_pre * pre_tanh.square().sum(dim=-1).mean()


def soft_q_target(
    reward: Tensor,
    terminated: Tensor,
    next_q1: Tensor,
    next_q2: Tensor,
    next_log_pi: Tensor,
    gamma: float,
    alpha: float | Tensor = 1.0,
    reward_scale: float = 1.0,
) -> Tensor:
    """Twin-Q soft Bellman target of SAC 2018b (eqs. 3 and 5), as in MIER's softlearning SAC.

    ``y = s * r + (1 - d) * gamma * (min(Q̄1(s', a'), Q̄2(s', a')) - alpha * log pi(a' | s'))``
    with a' ~ pi(. | s') and Q̄ the target Q nets (computed by the caller under ``no_grad``).

    Args:
        reward: ``[B, 1]``. terminated: ``[B, 1]`` bool or 0/1.
        next_q1, next_q2, next_log_pi: ``[B, 1]``.
        gamma: discount in [0, 1]. alpha: temperature (detached if a tensor). reward_scale: > 0.

    Returns:
        ``[B, 1]`` y.
    """
    _same_shape("soft_q_target", reward=reward, terminated=terminated, next_q1=next_q1, next_q2=next_q2,
                next_log_pi=next_log_pi)
    _check_gamma_scale("soft_q_target", gamma, reward_scale)
    next_v = torch.minimum(next_q1, next_q2) - _const(alpha) * next_log_pi
    return reward_scale * reward + (1.0 - terminated.to(reward.dtype)) * gamma * next_v


def temperature_loss(log_alpha: Tensor, log_pi: Tensor, target_entropy: float) -> Tensor:
    """Temperature loss of SAC 2018b §5 (eq. 18), in log-alpha as softlearning and torchrl write it.

    ``-mean(log_alpha * stopgrad(log pi + H̄))``: alpha grows while the policy's entropy
    ``-log pi`` is below the target H̄ (MIER: -1 for every env). Parameterising by log alpha keeps
    alpha positive; the paper's ``alpha`` form has the same fixed point.

    Args:
        log_alpha: ``[]`` (or ``[1]``) the trained parameter.
        log_pi: ``[B, 1]`` log-probabilities of fresh policy actions (detached here).
        target_entropy: H̄.

    Returns:
        ``[]`` scalar.
    """
    if log_alpha.numel() != 1:
        raise ValueError(f"temperature_loss: log_alpha must hold one value, got shape {list(log_alpha.shape)}")
    if not math.isfinite(target_entropy):
        raise ValueError(f"temperature_loss: target_entropy must be finite, got {target_entropy}")
    return -(log_alpha.reshape(()) * (log_pi.detach() + target_entropy)).mean()
