"""Evaluation on held-out tasks: the return before and after MQL adaptation, per task.

The protocol follows the MQL reference (§3 of the reference notes): deterministic episodes with the
meta-trained policy (the first of them is the adaptation data D_new), adaptation from theta_meta,
then the same number of deterministic episodes with the adapted policy. Every task adapts from
theta_meta: the adapted copy is thrown away afterwards.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from metarl import keys
from metarl.training.adapt import AdaptModule, AdaptStats

if TYPE_CHECKING:
    from metarl.training.meta_train import MetaTrainModule


@dataclass
class TaskResult:
    task_index: int
    return_pre: float
    return_post: float
    stats: AdaptStats | None

    def scalar_metrics(self) -> dict[str, float]:
        out = {"eval/return_pre_adapt": self.return_pre, "eval/return_post_adapt": self.return_post}
        if self.stats is not None:
            out.update({
                "adapt/lambda": self.stats.lambda_,
                "adapt/ess": self.stats.ess,
                "adapt/beta_mean": float(self.stats.beta.mean()),
                "adapt/classifier_acc": self.stats.classifier_acc,
            })
        return out

    def log_extras(self, module: Any) -> None:
        """The beta histogram, for loggers that draw one (W&B)."""
        if self.stats is None:
            return
        for logger in module.loggers:
            if type(logger).__name__ != "WandbLogger":
                continue
            import wandb

            logger.experiment.log({"adapt/beta": wandb.Histogram(self.stats.beta.numpy()),
                            "eval/env_steps": module.env_steps})


def _mean_return(module: MetaTrainModule, task_index: int, n: int) -> tuple[float, list[Any]]:
    episodes = [module.eval_rollouts.run_episode(task_index) for _ in range(n)]
    return statistics.fmean(float(ep[keys.REWARD].sum()) for ep in episodes), episodes


def evaluate_task(module: MetaTrainModule, task_index: int, adapt: bool | None = None) -> TaskResult:
    """Return before and after adaptation on eval task ``task_index``; ``module`` is left unchanged."""
    cfg = module.eval_cfg
    adapt = cfg.adapt if adapt is None else adapt
    policy = module.eval_rollouts.policy
    policy.use(module.actor, module.actor_encoder)
    pre, episodes = _mean_return(module, task_index, cfg.episodes)
    if not adapt:
        return TaskResult(task_index, pre, pre, None)
    # A seed that depends only on where the run is, so a resumed run adapts identically.
    adapter = AdaptModule(module, seed=hash((module.seed, module.env_steps, task_index)) % (2**31))
    with torch.enable_grad():
        stats = adapter.adapt(episodes[0])
    policy.use(adapter.actor, adapter.actor_encoder)
    try:
        post, _ = _mean_return(module, task_index, cfg.episodes)
    finally:
        policy.use(module.actor, module.actor_encoder)
    return TaskResult(task_index, pre, post, stats)


def summarize(results: list[TaskResult]) -> dict[str, Any]:
    """Mean return over tasks with a 95% confidence interval (normal approximation)."""

    def ci(values: list[float]) -> dict[str, float]:
        mean = statistics.fmean(values)
        half = 1.96 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
        return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "n_tasks": len(values)}

    return {
        "tasks": [
            {"task": r.task_index, "return_pre_adapt": r.return_pre, "return_post_adapt": r.return_post,
             **({} if r.stats is None else {"lambda": r.stats.lambda_, "ess": r.stats.ess,
                                             "beta_mean": float(r.stats.beta.mean()),
                                             "classifier_acc": r.stats.classifier_acc})}
            for r in results
        ],
        "return_pre_adapt": ci([r.return_pre for r in results]),
        "return_post_adapt": ci([r.return_post for r in results]),
    }
