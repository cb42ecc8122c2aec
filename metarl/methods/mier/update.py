"""One MIER gradient step (Mendonca et al. 2020, Algorithm 1; mier_public ``mier.py``
``run_meta_training_step`` and ``softlearning_sac.py``), from explicit parts.

For the meta-batch of train tasks i (fixed for the iteration)::

    D_adapt^i ~ pre-adaptation buffer of task i;  D_eval^i ~ replay of task i    (n_a rows each)
    model:  φ_K^i = K context steps (eq. 3) from φ₀ on D_adapt^i;
            θ, φ₀ ← Adam on mean_i L(θ, φ_K^i; D_eval^i) (eq. 4), second order, outer clip per group
    SAC:    one SAC-v2 step on the union of the D_eval^i, each row's s and s' paired with its task's
            φ_K^i from the model BEFORE the step (mier_public fetches it in the same ``sess.run``);
            φ is a constant input (no SAC gradient reaches the model)

SAC-v2 (softlearning): twin Q with ½ MSE each against y = s·r + γ(1 − d)(min Q̄(s', a') − α log π(a'|s')),
a' ~ π(s'); π by the reparameterised loss; log α by the temperature loss with target H̄. As in one
softlearning ``sess.run``, all three gradients are taken at the pre-step parameters, then the target
Qs move by Polyak averaging.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from metarl import keys
from metarl.algorithms.mier import adapt_context, clip_grad_groups_, model_targets, post_adaptation_loss
from metarl.algorithms.sac import policy_loss, soft_q_target, temperature_loss, twin_q_loss
from metarl.algorithms.td3 import soft_update_
from metarl.methods.mier.settings import SACv2Settings
from metarl.nets import ContextualGaussianModel, TanhGaussianActor, TwinCritic


class SACNets(Protocol):
    actor: TanhGaussianActor
    critic: TwinCritic
    critic_target: TwinCritic
    log_alpha: nn.Parameter


class ModelStep(NamedTuple):
    loss_pre: Tensor  # [] mean L(θ, φ₀; D_eval) before the step (detached)
    loss_post: Tensor  # [] mean L(θ, φ_K; D_eval), the trained objective (detached)
    context: Tensor  # [T, C] φ_K of the pre-step model (detached)


class SACStep(NamedTuple):
    loss_critic: Tensor
    loss_actor: Tensor
    loss_alpha: Tensor
    alpha: Tensor


def model_data(data: TensorDictBase) -> tuple[Tensor, Tensor, Tensor]:
    """(s, a, y = [r, Δs]) of transitions ``[..., N]``."""
    obs = data[keys.OBS]
    return obs, data[keys.ACTION], model_targets(obs, data[keys.REWARD], data[keys.NEXT_OBS])


def context0_rows(model: ContextualGaussianModel, n: int) -> Tensor:
    return model.context0.expand(n, model.context_dim)


def identify(model: ContextualGaussianModel, data: TensorDictBase, steps: int | None = None,
             lr: float | list[float] | None = None) -> Tensor:
    """Model identification (eq. 3): φ_K ``[T, C]`` from φ₀ on each task row of ``data`` ``[T, N]``
    (the model's own ``context_steps`` / ``context_lr`` unless given); detached."""
    obs, action, target = model_data(data)
    loss = model.context_loss(obs, action, target)
    params = {k: v.detach() for k, v in model.named_parameters()}
    steps = model.context_steps if steps is None else steps
    with torch.enable_grad():
        context = adapt_context(loss, params, context0_rows(model, obs.shape[0]).detach(), steps,
                                model.context_lr if lr is None else lr, model.context_clip, first_order=True)
    return context.detach()


def model_meta_step(model: ContextualGaussianModel, adapt: TensorDictBase, evaluate: TensorDictBase,
                    opt: torch.optim.Optimizer, backward: Callable[[Tensor], None]) -> ModelStep:
    """One outer step of eq. 4 on ``adapt`` / ``evaluate`` ``[T, n]`` (row i: task i's D_adapt / D_eval)."""
    adapt_loss = model.context_loss(*model_data(adapt))
    eval_loss = model.context_loss(*model_data(evaluate))
    params = dict(model.named_parameters())
    c0 = context0_rows(model, adapt.shape[0])
    with torch.no_grad():
        loss_pre = eval_loss(params, c0).mean()
    loss, context = post_adaptation_loss(adapt_loss, eval_loss, params, c0, model.context_steps, model.context_lr,
                                         model.context_clip)
    loss = loss.mean()
    opt.zero_grad()
    backward(loss)
    clip_grad_groups_(model.clip_groups(), model.outer_clip)
    opt.step()
    return ModelStep(loss_pre, loss.detach(), context.detach())


def sac_step(nets: SACNets, batch: TensorDictBase, context: Tensor, eps: Tensor, next_eps: Tensor,
             opts: list[torch.optim.Optimizer], cfg: SACv2Settings, backward: Callable[[Tensor], None]) -> SACStep:
    """One SAC-v2 step on ``batch`` ``[B]`` with ``context`` ``[B, C]`` per row; ``eps``, ``next_eps``
    ``[B, A]`` the N(0, 1) draws of a ~ π(s) and a' ~ π(s'); ``opts`` = [critic, actor, alpha]."""
    critic_opt, actor_opt, alpha_opt = opts
    obs, action, next_obs = batch[keys.OBS], batch[keys.ACTION], batch[keys.NEXT_OBS]
    alpha = nets.log_alpha.exp().detach()
    with torch.no_grad():
        nxt = nets.actor(next_obs, context, next_eps)
        tq1, tq2 = nets.critic_target(next_obs, nxt.action, context)
        target = soft_q_target(batch[keys.REWARD], batch[keys.TERMINATED], tq1, tq2, nxt.log_prob, cfg.gamma,
                               alpha, cfg.reward_scale)
    pi = nets.actor(obs, context, eps)
    nets.critic.requires_grad_(False)
    try:
        q1_pi, q2_pi = nets.critic(obs, pi.action, context)
    finally:
        nets.critic.requires_grad_(True)
    loss_pi = policy_loss(pi.log_prob, torch.min(q1_pi, q2_pi), alpha)
    loss_alpha = temperature_loss(nets.log_alpha, pi.log_prob, cfg.target_entropy)
    q1, q2 = nets.critic(obs, action, context)
    loss_q = 0.5 * twin_q_loss(q1, q2, target)  # softlearning: ½ MSE per Q
    for opt in opts:
        opt.zero_grad()
    backward(loss_pi + loss_alpha + loss_q)  # disjoint parameters: each loss reaches its own only
    critic_opt.step()
    actor_opt.step()
    alpha_opt.step()
    soft_update_(list(nets.critic_target.parameters()), list(nets.critic.parameters()), cfg.tau)
    return SACStep(loss_q.detach(), loss_pi.detach(), loss_alpha.detach(), alpha)
