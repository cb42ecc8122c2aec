"""The meta-test protocol's record, shared by every method: per eval task, the return before and after
adaptation (what "before" and "after" mean is the method's: MQL's theta_meta and eqs. 18-19, PEARL's
prior z and posterior z, ...), the method's own adaptation metrics, and their summary with a 95% CI.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class TaskResult:
    """One eval task's outcome. ``metrics`` are the method's scalars under their logged names
    (``adapt/lambda``, ``pearl/kl``, ...), ``histograms`` its per-sample tensors (``adapt/beta``),
    ``stats`` the method's own record of the adaptation (None when it did not adapt)."""

    task_index: int
    return_pre: float
    return_post: float
    stats: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, Tensor] = field(default_factory=dict)

    def scalar_metrics(self) -> dict[str, float]:
        return {"eval/return_pre_adapt": self.return_pre, "eval/return_post_adapt": self.return_post, **self.metrics}

    def log_extras(self, module: Any) -> None:
        """The histograms, for loggers that draw them (W&B)."""
        if not self.histograms:
            return
        for logger in module.loggers:
            if type(logger).__name__ != "WandbLogger":
                continue
            import wandb

            logger.experiment.log({**{k: wandb.Histogram(v.numpy()) for k, v in self.histograms.items()},
                                   "eval/env_steps": module.env_steps})


def ci95(values: list[float]) -> dict[str, float]:
    """Mean with a 95% confidence interval (normal approximation)."""
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "n_tasks": len(values)}


def summarize(results: list[TaskResult]) -> dict[str, Any]:
    """Per-task rows (the method's metrics under their short names) and the means with a 95% CI."""
    return {
        "tasks": [
            {"task": r.task_index, "return_pre_adapt": r.return_pre, "return_post_adapt": r.return_post,
             **{name.rsplit("/", 1)[-1]: value for name, value in r.metrics.items()}}
            for r in results
        ],
        "return_pre_adapt": ci95([r.return_pre for r in results]),
        "return_post_adapt": ci95([r.return_post for r in results]),
    }
