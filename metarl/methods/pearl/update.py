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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from metarl import keys
from metarl.algorithms.pearl import kl_to_standard_normal, reparam_sample
from metarl.algorithms.sac import policy_loss, policy_regularizer, q_target, twin_q_loss, value_loss, value_target
from metarl.algorithms.td3 import soft_update_
from metarl.nets import ProbContextEncoder
from metarl.training.module import backward

if TYPE_CHECKING:
    from metarl.methods.pearl.meta_train import PEARLMetaTrain


@dataclass
class StepLosses:
    """Detached losses and posterior statistics of one step (summed on the device by the caller)."""

    loss_critic: Tensor
    loss_value: Tensor
    loss_actor: Tensor
    kl: Tensor
    z_mean_abs: Tensor
    z_var_mean: Tensor


def pearl_step(m: PEARLMetaTrain, opts: list[Any]) -> StepLosses:
    """One gradient step of every PEARL net; ``opts`` = [encoder, critic, value, actor] optimizers."""
    enc_opt, critic_opt, value_opt, actor_opt = opts
    n_train = len(m.family.train_tasks)
    tasks = torch.randint(n_train, (m.meta_batch,), generator=m.sample_gen)
    context = m.enc_replay.sample_per_task(tasks, m.embedding_batch_size, m.sample_gen).to(m.device)
    batch = m.replay.sample_per_task(tasks, m.batch_size, m.sample_gen).to(m.device).reshape(-1)

    mu, var = m.encoder.posterior(ProbContextEncoder.context_from(context, m.encoder.use_next_obs))
    z = reparam_sample(mu, var, torch.randn(mu.shape, generator=m.noise_gen).to(m.device))
    z_rows = z.repeat_interleave(m.batch_size, dim=0)  # task i's z on each of its RL rows
    obs, action, next_obs = batch[keys.OBS], batch[keys.ACTION], batch[keys.NEXT_OBS]

    # Encoder and Q: the only losses that reach the encoder.
    kl = kl_to_standard_normal(mu, var)
    q1, q2 = m.critic(obs, action, z_rows)
    with torch.no_grad():
        next_v = m.value_target(next_obs, z_rows)
        target = q_target(batch[keys.REWARD], batch[keys.TERMINATED], next_v, m.sac.gamma, m.sac.reward_scale)
    loss_q = twin_q_loss(q1, q2, target)
    enc_opt.zero_grad()
    critic_opt.zero_grad()
    backward(m, m.kl_lambda * kl + loss_q)
    critic_opt.step()
    enc_opt.step()

    # Value, target value, policy: on z detached, with the just-updated Q nets held fixed.
    z_bar = z_rows.detach()
    eps = torch.randn(obs.shape[0], m.family.act_dim, generator=m.noise_gen).to(m.device)
    pi = m.actor(obs, z_bar, eps)
    m.critic.requires_grad_(False)
    try:
        q1_new, q2_new = m.critic(obs, pi.action, z_bar)
        min_q = torch.min(q1_new, q2_new)
        loss_v = value_loss(m.value(obs, z_bar), value_target(min_q, pi.log_prob))
        value_opt.zero_grad()
        backward(m, loss_v)
        value_opt.step()
        soft_update_(list(m.value_target.parameters()), list(m.value.parameters()), m.sac.tau)
        loss_pi = policy_loss(pi.log_prob, min_q) + policy_regularizer(
            pi.mean, pi.log_std, pi.pre_tanh, m.sac.policy_mean_reg, m.sac.policy_std_reg,
            m.sac.policy_pre_activation_reg,
        )
        actor_opt.zero_grad()
        backward(m, loss_pi)
        actor_opt.step()
    finally:
        m.critic.requires_grad_(True)
    return StepLosses(loss_q.detach(), loss_v.detach(), loss_pi.detach(), kl.detach(),
                      mu.detach().abs().mean(), var.detach().mean())
