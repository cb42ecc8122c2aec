"""PEARL's side of the meta-test protocol (see ``adapt.py``): ``eval.episodes`` runs (oyster
``num_evals``) per eval task, each a sequence of trajectories with prior z, then posterior z."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from metarl import keys
from metarl.methods.pearl.adapt import PEARLAdapt
from metarl.training.evaluation import TaskResult

if TYPE_CHECKING:
    from metarl.methods.pearl.meta_train import PEARLMetaTrain


def run_protocol(module: PEARLMetaTrain, adapter: PEARLAdapt, task_index: int, adapt: bool) -> list[float]:
    """One run on eval task ``task_index``: the return of each trajectory. ``adapt=False`` keeps the
    prior for every trajectory (the return without adaptation)."""
    policy = module.eval_rollouts.policy
    adapter.reset()
    policy.reset_belief()
    policy.sample_z()
    returns: list[float] = []
    while adapter.n_transitions < adapter.cfg.num_steps_per_eval:
        trajectory = module.eval_rollouts.run_episode(task_index)
        returns.append(float(trajectory[keys.REWARD].sum()))
        adapter.observe(trajectory)
        if adapt and len(returns) >= adapter.cfg.num_exp_traj_eval:
            policy.set_belief(*adapter.posterior())
        policy.sample_z()
    return returns


def evaluate_task(module: PEARLMetaTrain, task_index: int, adapt: bool | None = None) -> TaskResult:
    """Pre-adaptation return = the first trajectory's (prior z), post-adaptation = the last one's,
    each averaged over the runs; ``eval/return_episode_<k>`` for every trajectory k."""
    adapt = module.eval_cfg.adapt if adapt is None else adapt
    adapter = PEARLAdapt(module)
    runs = [run_protocol(module, adapter, task_index, adapt) for _ in range(module.eval_cfg.episodes)]
    n = min(len(r) for r in runs)  # equal unless trajectories terminate early
    per_traj = [statistics.fmean(r[k] for r in runs) for k in range(n)]
    mu, var = adapter.posterior()  # of the last run's whole context
    metrics = {f"eval/return_episode_{k + 1}": value for k, value in enumerate(per_traj)}
    metrics.update({"adapt/z_mean_abs": float(mu.abs().mean()), "adapt/z_var_mean": float(var.mean())})
    pre = statistics.fmean(r[0] for r in runs)
    post = statistics.fmean(r[-1] for r in runs)
    return TaskResult(task_index, pre, post, runs, metrics)
