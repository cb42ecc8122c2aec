"""PEARL's side of the meta-test protocol (see ``adapt.py``): ``runs`` runs (oyster ``num_evals``) per
eval task, each a sequence of deterministic trajectories with prior z, then posterior z."""

from __future__ import annotations

import statistics

from metarl import keys
from metarl.data.rollouts import Rollouts
from metarl.methods.pearl.adapt import PEARLAdapt
from metarl.methods.pearl.policy import LatentPolicy
from metarl.training.evaluation import TaskResult


def run_protocol(rollouts: Rollouts, adapter: PEARLAdapt, task_index: int, adapt: bool) -> list[float]:
    """One run on eval task ``task_index`` (``rollouts`` acts with a LatentPolicy): the return of each
    trajectory. ``adapt=False`` keeps the prior for every trajectory (the return without adaptation)."""
    policy: LatentPolicy = rollouts.policy  # type: ignore[assignment]
    adapter.reset()
    policy.reset_belief()
    policy.sample_z()
    returns: list[float] = []
    while adapter.n_transitions < adapter.cfg.num_steps_per_eval:
        trajectory = rollouts.run_episode(task_index)
        returns.append(float(trajectory[keys.REWARD].sum()))
        adapter.observe(trajectory)
        if adapt and len(returns) >= adapter.cfg.num_exp_traj_eval:
            policy.set_belief(*adapter.posterior())
        policy.sample_z()
    return returns


def evaluate_task(rollouts: Rollouts, adapter: PEARLAdapt, task_index: int, runs: int, adapt: bool) -> TaskResult:
    """Pre-adaptation return = the first trajectory's (prior z), post-adaptation = the last one's,
    each averaged over the runs; ``eval/return_episode_<k>`` for every trajectory k."""
    returns = [run_protocol(rollouts, adapter, task_index, adapt) for _ in range(runs)]
    n = min(len(r) for r in returns)  # equal unless trajectories terminate early
    per_traj = [statistics.fmean(r[k] for r in returns) for k in range(n)]
    mu, var = adapter.posterior()  # of the last run's whole context
    metrics = {f"eval/return_episode_{k + 1}": value for k, value in enumerate(per_traj)}
    metrics.update({"adapt/z_mean_abs": float(mu.abs().mean()), "adapt/z_var_mean": float(var.mean())})
    pre = statistics.fmean(r[0] for r in returns)
    post = statistics.fmean(r[-1] for r in returns)
    return TaskResult(task_index, pre, post, returns, metrics)
