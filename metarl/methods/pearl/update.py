"""One PEARL gradient step (Rakelly et al. 2019, Algorithm 1 lines 6-14; oyster ``sac.py`` ``_take_step``).

For a meta-batch of train tasks drawn with replacement::

    context c_i ~ encoder buffer E_i;  RL batch b_i ~ replay B_i
    q(z | c_i) = product of the per-transition Gaussians (eq. 2);  z_i ~ q(z | c_i) (reparameterised)
    encoder + Q:  kl_lambda * sum_i KL(q(z | c_i) || N(0, I)) + L_Q(z)        (eqs. 3, 5; the encoder
                  learns from these two terms only)
    V:            L_V on z detached, against min_j Q_j(s, a~pi, z) - log pi   (eq. 7, alpha = 1)
    target V:     Polyak averaging
    policy:       L_pi on z detached, through the (frozen) Q nets              (eq. 8, plus oyster's
                  mean / log-std regularisers)

The update order and what each loss reaches are oyster's; the math is in ``metarl.algorithms``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from tensordict import TensorDictBase
from torch import Tensor

from metarl import keys
from metarl.algorithms.pearl import kl_to_standard_normal, reparam_sample
from metarl.algorithms.sac import policy_loss, policy_regularizer, q_target, twin_q_loss, value_loss, value_target
from metarl.algorithms.td3 import soft_update_
from metarl.methods.pearl.settings import SACSettings
from metarl.nets import ProbContextEncoder, TanhGaussianActor, TwinCritic, ValueNet


class PEARLNets(Protocol):
    """The nets one step updates (PEARLMetaTrain has them)."""

    encoder: ProbContextEncoder
    actor: TanhGaussianActor
    critic: TwinCritic
    value: ValueNet
    value_target: ValueNet


@dataclass
class StepLosses:
    """Detached losses and posterior statistics of one step (summed on the device by the caller)."""

    loss_critic: Tensor
    loss_value: Tensor
    loss_actor: Tensor
    kl: Tensor
    z_mean_abs: Tensor
    z_var_mean: Tensor


def pearl_step(
    nets: PEARLNets,
    batch: TensorDictBase,
    context: TensorDictBase,
    z_eps: Tensor,
    action_eps: Tensor,
    opts: list[Any],
    sac: SACSettings,
    kl_lambda: float,
    backward: Callable[[Tensor], None],
) -> StepLosses:
    """One gradient step of every PEARL net.

    ``context`` [T, Bc] holds task i's encoder-buffer transitions in row i; ``batch`` [T * B] its RL
    transitions, task-major; ``z_eps`` [T, latent] and ``action_eps`` [T * B, act_dim] are the N(0, 1)
    draws; ``opts`` = [encoder, critic, value, actor] optimizers.
    """
    enc_opt, critic_opt, value_opt, actor_opt = opts
    mu, var = nets.encoder.posterior(ProbContextEncoder.context_from(context, nets.encoder.use_next_obs))
    z = reparam_sample(mu, var, z_eps)
    z_rows = z.repeat_interleave(batch.shape[0] // z.shape[0], dim=0)  # task i's z on each of its RL rows
    obs, action, next_obs = batch[keys.OBS], batch[keys.ACTION], batch[keys.NEXT_OBS]

    # Encoder and Q: the only losses that reach the encoder.
    kl = kl_to_standard_normal(mu, var)
    q1, q2 = nets.critic(obs, action, z_rows)
    with torch.no_grad():
        next_v = nets.value_target(next_obs, z_rows)
        target = q_target(batch[keys.REWARD], batch[keys.TERMINATED], next_v, sac.gamma, sac.reward_scale)
    loss_q = twin_q_loss(q1, q2, target)
    enc_opt.zero_grad()
    critic_opt.zero_grad()
    backward(kl_lambda * kl + loss_q)
    critic_opt.step()
    enc_opt.step()

    # Value, target value, policy: on z detached, with the just-updated Q nets held fixed.
    z_bar = z_rows.detach()
    pi = nets.actor(obs, z_bar, action_eps)
    nets.critic.requires_grad_(False)
    try:
        q1_new, q2_new = nets.critic(obs, pi.action, z_bar)
        min_q = torch.min(q1_new, q2_new)
        loss_v = value_loss(nets.value(obs, z_bar), value_target(min_q, pi.log_prob))
        value_opt.zero_grad()
        backward(loss_v)
        value_opt.step()
        soft_update_(list(nets.value_target.parameters()), list(nets.value.parameters()), sac.tau)
        loss_pi = policy_loss(pi.log_prob, min_q) + policy_regularizer(
            pi.mean, pi.log_std, pi.pre_tanh, sac.policy_mean_reg, sac.policy_std_reg, sac.policy_pre_activation_reg,
        )
        actor_opt.zero_grad()
        backward(loss_pi)
        actor_opt.step()
    finally:
        nets.critic.requires_grad_(True)
    return StepLosses(loss_q.detach(), loss_v.detach(), loss_pi.detach(), kl.detach(),
                      mu.detach().abs().mean(), var.detach().mean())
