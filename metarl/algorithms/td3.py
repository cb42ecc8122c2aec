"""TD3 (Fujimoto et al., 2018), the off-policy learner MQL builds on (MQL eqs. 7, 15, 18, 19).

Every function is pure except ``soft_update_``, whose trailing underscore says it writes in place.
Shapes are checked up front because a ``[B]`` tensor meeting a ``[B, 1]`` tensor broadcasts to
``[B, B]`` without an error and silently trains on the wrong loss.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["actor_loss", "critic_loss", "smooth_target_action", "soft_update_", "td3_target"]


def _same_shape(fn: str, **tensors: Tensor | None) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items() if t is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{fn}: inputs must share one shape, got {shapes}")


def td3_target(
    reward: Tensor,
    terminated: Tensor,
    next_q1: Tensor,
    next_q2: Tensor,
    gamma: float,
) -> Tensor:
    """Clipped double-Q TD target: MQL eq. 7's bootstrap with TD3's min over two critics (§3.1).

    ``y = r + gamma * (1 - terminated) * min(Q1'(o', a'), Q2'(o', a'))``

    Only a true termination stops the bootstrap; a time-limit truncation is not terminal and
    bootstraps (the released code stores done = 0 on the 200th step for the same reason).

    Args:
        reward: ``[B, 1]`` r_t.
        terminated: ``[B, 1]`` bool (or 0/1 float), true termination at o_{t+1}.
        next_q1, next_q2: ``[B, 1]`` target-critic values at (o', smoothed a').
        gamma: discount in [0, 1].

    Returns:
        ``[B, 1]`` y. No grad mode is imposed: callers pass values computed under ``no_grad``.
    """
    _same_shape("td3_target", reward=reward, terminated=terminated, next_q1=next_q1, next_q2=next_q2)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"td3_target: gamma must be in [0, 1], got {gamma}")
    not_terminal = 1.0 - terminated.to(reward.dtype)
    return reward + gamma * not_terminal * torch.minimum(next_q1, next_q2)


def smooth_target_action(
    next_action: Tensor,
    noise: Tensor,
    noise_clip: float,
    max_action: float = 1.0,
) -> Tensor:
    """TD3 target policy smoothing: ``clip(a' + clip(eps, -c, c), -max_action, max_action)``.

    The noise is an argument (already scaled by ``policy_noise``) so that this function draws no
    random numbers and a resumed run reproduces the same targets from the same generator.

    Args:
        next_action: ``[B, A]`` pi'(o', z') from the target actor.
        noise: ``[B, A]`` eps ~ N(0, policy_noise^2).
        noise_clip: c >= 0 (TD3 and the released code: 0.5).
        max_action: bound of the action box (1 under the released code's NormalizedBoxEnv).

    Returns:
        ``[B, A]`` smoothed target action.
    """
    _same_shape("smooth_target_action", next_action=next_action, noise=noise)
    if not noise_clip >= 0.0:
        raise ValueError(f"smooth_target_action: noise_clip must be >= 0, got {noise_clip}")
    if not max_action > 0.0:
        raise ValueError(f"smooth_target_action: max_action must be > 0, got {max_action}")
    return (next_action + noise.clamp(-noise_clip, noise_clip)).clamp(-max_action, max_action)


def critic_loss(
    q1: Tensor,
    q2: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
) -> Tensor:
    """Twin-critic TD loss, MQL eq. 15 (weight = 1) and eq. 19 (weight = beta).

    ``mean_i w_i * ((Q1_i - y_i)^2 + (Q2_i - y_i)^2)``; unweighted, this equals
    ``MSE(Q1, y) + MSE(Q2, y)`` as in TD3.

    The target and the weight are constants of the objective, so both are detached here: no
    gradient may reach the target networks, nor (through beta) the encoder that made the features.

    Args:
        q1, q2: ``[B, 1]`` online critic values at (o, a).
        target: ``[B, 1]`` y from ``td3_target``.
        weight: ``[B, 1]`` per-sample weight (beta of eq. 12 in eq. 19), or None for all ones.

    Returns:
        ``[]`` scalar loss; with leading dimensions (seeds as a batch dimension: ``[N, B, 1]``
        inputs) one loss per leading index, ``[N]``, each the mean over its own ``B`` samples.
    """
    _same_shape("critic_loss", q1=q1, q2=q2, target=target, weight=weight)
    y = target.detach()
    per_sample = (q1 - y).square() + (q2 - y).square()
    if weight is not None:
        per_sample = weight.detach() * per_sample
    return per_sample.mean(dim=(-2, -1))


def actor_loss(q1_pi: Tensor, weight: Tensor | None = None) -> Tensor:
    """Deterministic policy-gradient loss of TD3, eqs. 6 and 15 (weight = 1) and eq. 19 (beta).

    ``-mean_i w_i * Q1(o_i, pi(o_i))``. The weight is detached for the same reason as in
    ``critic_loss``.

    Args:
        q1_pi: ``[B, 1]`` first critic head at the actor's action.
        weight: ``[B, 1]`` per-sample weight, or None for all ones.

    Returns:
        ``[]`` scalar loss; ``[N]`` for ``[N, B, 1]`` inputs (one per seed, as ``critic_loss``).
    """
    _same_shape("actor_loss", q1_pi=q1_pi, weight=weight)
    if weight is None:
        return -q1_pi.mean(dim=(-2, -1))
    return -(weight.detach() * q1_pi).mean(dim=(-2, -1))


def soft_update_(target: Iterable[Tensor], source: Iterable[Tensor], tau: float) -> None:
    """Polyak averaging of target networks, in place: ``theta' <- tau * theta + (1 - tau) * theta'``.

    ``tau = 0`` leaves the target unchanged and ``tau = 1`` copies the source exactly (``lerp``
    evaluates ``end - (end - start) * (1 - w)`` for ``w >= 0.5``). TD3 and the released code use
    tau = 0.005 (``ptau``).

    Args:
        target: target-network tensors (e.g. ``critic_target.parameters()``), overwritten.
        source: online-network tensors, same order and shapes; read only.
        tau: interpolation weight in [0, 1].
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"soft_update_: tau must be in [0, 1], got {tau}")
    tgt, src = list(target), list(source)
    if len(tgt) != len(src):
        raise ValueError(f"soft_update_: {len(tgt)} target tensors but {len(src)} source tensors")
    for i, (t, s) in enumerate(zip(tgt, src, strict=True)):
        if t.shape != s.shape:
            raise ValueError(
                f"soft_update_: tensor {i} has target shape {tuple(t.shape)} but source shape {tuple(s.shape)}"
            )
    if not tgt:
        return
    with torch.no_grad():
        # One fused multi-tensor kernel instead of a launch per parameter.
        torch._foreach_lerp_(tgt, src, tau)
