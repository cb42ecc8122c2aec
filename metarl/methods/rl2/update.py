"""RL²'s outer update on a batch of trials (methods-reference §4.1 steps 4-6): advantages over the
whole trial, then PPO epochs or one TRPO step on the re-unrolled recurrent policy.

Advantages follow garage's ``RL2``: the N episodes of a trial are one path, so returns and GAE cross
inner-episode boundaries (the trial's last step is its only end), with the linear feature baseline
(ProMP ``linear_baseline.py``) fitted on the batch's trial returns at the trial step t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from torch import Tensor
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from metarl import keys
from metarl.algorithms.onpolicy import (
    clipped_surrogate,
    discounted_returns,
    episode_advantages,
    gaussian_kl,
    likelihood_ratio_surrogate,
    linear_feature_baseline_fit,
    linear_feature_baseline_predict,
    normalize_advantages,
)
from metarl.algorithms.trpo import backtracking_line_search, trpo_direction
from metarl.methods.rl2.settings import OuterSettings
from metarl.nets.recurrent_policy import RecurrentGaussianPolicy


@dataclass
class OuterStats:
    """What an outer update reports: the surrogate loss before and after, the mean KL(old || new), the
    policy's entropy, the fraction of clipped ratios (PPO) and the accepted step fraction (TRPO)."""

    loss_before: float
    loss_after: float
    kl: float
    entropy: float
    clip_fraction: float
    step_fraction: float
    updates: int


def trial_advantages(data: TensorDictBase, gamma: float, lmbda: float, normalize: bool) -> Tensor:
    """GAE over each ``[T]`` row of trials (``done`` only at a trial's end) with the linear baseline
    fitted on this batch's discounted trial returns; normalised over the batch when ``normalize``."""
    reward, done = data[keys.REWARD], data[keys.DONE]
    obs, step = data[keys.OBS], data[keys.STEP_COUNT].squeeze(-1)
    returns = discounted_returns(reward, done, gamma)
    coeffs = linear_feature_baseline_fit(obs, step, returns)
    value = linear_feature_baseline_predict(coeffs, obs, step)
    adv, _ = episode_advantages(reward, value, done, gamma, lmbda)
    return normalize_advantages(adv) if normalize else adv


def _kl(old_mean: Tensor, old_log_std: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    return gaussian_kl(old_mean, old_log_std, mean, log_std).mean()


def ppo_update(
    policy: RecurrentGaussianPolicy, optimizer: torch.optim.Optimizer, data: TensorDictBase, adv: Tensor,
    cfg: OuterSettings, generator: torch.Generator, backward: Callable[[Tensor], None],
) -> OuterStats:
    """``cfg.epochs`` passes over the trials, each in ``cfg.minibatches`` minibatches of whole trials
    (rows, shuffled with ``generator``), minimising PPO's clipped surrogate (Schulman et al. 2017,
    eq. 7) minus ``entropy_coef`` times the entropy; the recurrent policy is re-unrolled per minibatch."""
    with torch.no_grad():
        old_mean, old_log_std = policy.unroll(data)
        old_mean, old_log_std = old_mean.detach(), old_log_std.detach().clone()
        old_logp = policy.log_prob(old_mean, data[keys.ACTION])
        loss_before = float(clipped_surrogate(old_logp, old_logp, adv, cfg.clip_eps))
    rows = data.shape[0]
    updates = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(rows, generator=generator)
        for idx in order.chunk(min(cfg.minibatches, rows)):
            mean, _ = policy.unroll(data[idx])
            logp = policy.log_prob(mean, data[idx][keys.ACTION])
            loss = clipped_surrogate(logp, old_logp[idx], adv[idx], cfg.clip_eps)
            if cfg.entropy_coef:
                loss = loss - cfg.entropy_coef * policy.entropy()
            optimizer.zero_grad(set_to_none=True)
            backward(loss)
            optimizer.step()
            updates += 1
    with torch.no_grad():
        mean, log_std = policy.unroll(data)
        logp = policy.log_prob(mean, data[keys.ACTION])
        ratio = torch.exp(logp - old_logp)
        return OuterStats(
            loss_before, float(clipped_surrogate(logp, old_logp, adv, cfg.clip_eps)),
            float(_kl(old_mean, old_log_std, mean, log_std)), float(policy.entropy().detach()),
            float(((ratio - 1.0).abs() > cfg.clip_eps).float().mean()), 1.0, updates)


def trpo_update(policy: RecurrentGaussianPolicy, data: TensorDictBase, adv: Tensor, cfg: OuterSettings) -> OuterStats:
    """One TRPO step (Schulman et al. 2015, §6 and appendix C; ``metarl.algorithms.trpo``): minimise the
    likelihood-ratio surrogate subject to mean KL(pi_old || pi) <= ``max_kl``, the Fisher-vector products
    by double backward through the re-unrolled GRU."""
    params = list(policy.parameters())
    with torch.no_grad():
        old_mean, old_log_std = policy.unroll(data)
        old_mean, old_log_std = old_mean.detach(), old_log_std.detach().clone()
        old_logp = policy.log_prob(old_mean, data[keys.ACTION])
    mean, log_std = policy.unroll(data)
    loss = likelihood_ratio_surrogate(policy.log_prob(mean, data[keys.ACTION]), old_logp, adv)
    kl = _kl(old_mean, old_log_std, mean, log_std)
    step = trpo_direction(loss, kl, params, cfg.max_kl, cfg.cg_damping, cfg.cg_iters)
    old_flat = parameters_to_vector(params).detach()

    def evaluate(flat: Tensor) -> tuple[Tensor, Tensor]:
        vector_to_parameters(flat, params)
        m, s = policy.unroll(data)
        return (likelihood_ratio_surrogate(policy.log_prob(m, data[keys.ACTION]), old_logp, adv),
                _kl(old_mean, old_log_std, m, s))

    result = backtracking_line_search(evaluate, old_flat, step, loss, cfg.max_kl, cfg.backtrack_ratio,
                                      cfg.max_backtracks)
    with torch.no_grad():
        vector_to_parameters(result.params, params)
        after, kl_after = evaluate(result.params)
    return OuterStats(float(loss.detach()), float(after), float(kl_after), float(policy.entropy().detach()), 0.0,
                      result.step_fraction, 1)
