"""MAML-PG's math on collected episodes (methods-reference §5.1 steps 3-8): per-task advantages, the
inner step phi_i(theta), and the outer MAML-TRPO step through it.

A task's batch is a dict ``{"obs": [K, T, D], "act": [K, T, A], "adv": [K, T, 1]}`` (its K episodes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor
from torch.nn.utils import parameters_to_vector

from metarl import keys
from metarl.algorithms.maml import inner_update
from metarl.algorithms.onpolicy import (
    clipped_surrogate,
    discounted_returns,
    episode_advantages,
    gaussian_kl,
    likelihood_ratio_surrogate,
    linear_feature_baseline_fit,
    linear_feature_baseline_predict,
    lvc_surrogate,
    normalize_advantages,
    vpg_surrogate,
)
from metarl.algorithms.trpo import backtracking_line_search, trpo_direction, unflatten_like
from metarl.methods.maml.settings import MAMLSettings
from metarl.nets.gaussian_mlp import GaussianMLPPolicy, gaussian_log_prob

Batch = dict[str, Tensor]


def task_batches(data: TensorDictBase, n_tasks: int, gamma: float, lmbda: float,
                 device: torch.device | str = "cpu") -> list[Batch]:
    """Cut ``[M K, T]`` episodes into M tasks' batches, each with advantages from a linear baseline fitted
    on that task's returns (ProMP), GAE(lmbda), normalised per task (ProMP); computed where the data is
    (the baseline's least squares wants the CPU), returned on ``device``."""
    out = []
    for part in data.chunk(n_tasks):
        obs, step = part[keys.OBS], part[keys.STEP_COUNT].squeeze(-1)
        reward, done = part[keys.REWARD], part[keys.DONE]
        coeffs = linear_feature_baseline_fit(obs, step, discounted_returns(reward, done, gamma))
        adv, _ = episode_advantages(reward, linear_feature_baseline_predict(coeffs, obs, step), done, gamma, lmbda)
        batch = {"obs": obs, "act": part[keys.ACTION], "adv": normalize_advantages(adv)}
        out.append({k: v.to(device) for k, v in batch.items()})
    return out


def inner_loss_fn(objective: str) -> Callable[[Callable[..., Any], Batch], Tensor]:
    """The inner loss ``loss(model, batch)``: ProMP's LVC or the log-likelihood (VPG) surrogate."""
    surrogate = lvc_surrogate if objective == "lvc" else vpg_surrogate

    def loss(model: Callable[..., Any], batch: Batch) -> Tensor:
        mean, log_std = model(batch["obs"])
        return surrogate(gaussian_log_prob(mean, log_std, batch["act"]), batch["adv"])

    return loss


def adapted_params(policy: GaussianMLPPolicy, theta: dict[str, Tensor], batches: list[Batch],
                   cfg: MAMLSettings) -> list[dict[str, Tensor]]:
    """phi_i = theta - alpha grad L_i^in(theta) per task (MAML eq. 1), differentiable w.r.t. theta unless
    first order."""
    loss = inner_loss_fn(cfg.inner_objective)
    return [inner_update(policy, theta, loss, b, cfg.inner_lr, cfg.first_order) for b in batches]


@dataclass
class OuterStats:
    loss_before: float
    loss_after: float
    kl_after: float
    step_fraction: float


def post_update_dists(policy: GaussianMLPPolicy, params: dict[str, Tensor], pre: list[Batch], post: list[Batch],
                      cfg: MAMLSettings) -> list[tuple[Tensor, Tensor]]:
    """(mean, log_std) of pi_phi_i(params) on task i's post-update observations, phi_i from ``params``."""
    phis = adapted_params(policy, params, pre, cfg)
    return [torch.func.functional_call(policy, phi, (b["obs"],)) for phi, b in zip(phis, post, strict=True)]


def old_policies(policy: GaussianMLPPolicy, theta: dict[str, Tensor], pre: list[Batch], post: list[Batch],
                 cfg: MAMLSettings) -> list[tuple[Tensor, Tensor, Tensor]]:
    """The sampling policies pi_phi_i_old of the post-update data: (mean, log_std, log-prob), detached."""
    with torch.no_grad():  # torch.func's inner gradient ignores it; nothing else needs a graph
        return [(m.detach(), s.detach(), gaussian_log_prob(m, s, b["act"]).detach())
                for (m, s), b in zip(post_update_dists(policy, theta, pre, post, cfg), post, strict=True)]


def post_update_loss(policy: GaussianMLPPolicy, params: dict[str, Tensor], pre: list[Batch], post: list[Batch],
                     olds: list[tuple[Tensor, Tensor, Tensor]], cfg: MAMLSettings,
                     clip_eps: float | None) -> tuple[Tensor, Tensor]:
    """The outer loss over tasks on the post-update data, ``(1/M) sum_i`` of the likelihood-ratio surrogate
    (TRPO; ``clip_eps`` None) or PPO's clipped one, and the mean KL(pi_phi_i_old || pi_phi_i(params))."""
    losses, kls = [], []
    dists = post_update_dists(policy, params, pre, post, cfg)
    for (mean, log_std), (old_mean, old_log_std, old_logp), b in zip(dists, olds, post, strict=True):
        logp = gaussian_log_prob(mean, log_std, b["act"])
        losses.append(likelihood_ratio_surrogate(logp, old_logp, b["adv"]) if clip_eps is None
                      else clipped_surrogate(logp, old_logp, b["adv"], clip_eps))
        kls.append(gaussian_kl(old_mean, old_log_std, mean, log_std).mean())
    return torch.stack(losses).mean(), torch.stack(kls).mean()


def outer_ppo_step(policy: GaussianMLPPolicy, optimizer: torch.optim.Optimizer, pre: list[Batch], post: list[Batch],
                   cfg: MAMLSettings, backward: Callable[[Tensor], None]) -> OuterStats:
    """MAML-PPO (garage ``MAMLPPO``): ``ppo_steps`` Adam steps on PPO's clipped surrogate of the
    post-update data, with ratio pi_phi_i(theta) / pi_phi_i_old and phi_i recomputed from theta."""
    theta = dict(policy.named_parameters())
    olds = old_policies(policy, theta, pre, post, cfg)
    loss_before = float("nan")
    for i in range(cfg.ppo_steps):
        loss, _ = post_update_loss(policy, dict(policy.named_parameters()), pre, post, olds, cfg, cfg.ppo_clip)
        if i == 0:
            loss_before = float(loss.detach())
        optimizer.zero_grad(set_to_none=True)
        backward(loss)
        optimizer.step()
    with torch.no_grad():  # torch.func's inner gradient ignores it
        loss, kl = post_update_loss(policy, dict(policy.named_parameters()), pre, post, olds, cfg, cfg.ppo_clip)
    return OuterStats(loss_before, float(loss.detach()), float(kl.detach()), 1.0)


def outer_trpo_step(policy: GaussianMLPPolicy, pre: list[Batch], post: list[Batch], cfg: MAMLSettings) -> OuterStats:
    """MAML-TRPO (methods-reference §5.1 step 8): minimise ``(1/M) sum_i -mean(pi_phi_i(theta) /
    pi_phi_i_old A)`` on the post-update data subject to ``(1/M) sum_i mean KL(pi_phi_i_old ||
    pi_phi_i(theta)) <= max_kl``, with phi_i recomputed from theta so that both differentiate through
    the inner step (garage #2245)."""
    theta = dict(policy.named_parameters())
    names = list(theta)
    olds = old_policies(policy, theta, pre, post, cfg)

    def objective(params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return post_update_loss(policy, params, pre, post, olds, cfg, None)

    loss, kl = objective(theta)
    params = [theta[n] for n in names]
    step = trpo_direction(loss, kl, params, cfg.max_kl, cfg.cg_damping, cfg.cg_iters)
    old_flat = parameters_to_vector(params).detach()

    def evaluate(flat: Tensor) -> tuple[Tensor, Tensor]:
        candidate = unflatten_like(flat, {n: theta[n] for n in names})
        with torch.enable_grad():  # the inner step needs its gradient (detached here by no_grad outside it)
            cand_loss, cand_kl = objective({n: c.detach().requires_grad_(True) for n, c in candidate.items()})
        return cand_loss.detach(), cand_kl.detach()

    result = backtracking_line_search(evaluate, old_flat, step, loss, cfg.max_kl, cfg.backtrack_ratio,
                                      cfg.max_backtracks)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(result.params, params)
    return OuterStats(float(loss.detach()), result.loss, result.kl, result.step_fraction)
