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


#: Two-sided 95% quantiles of Student's t, t_{0.975, df}, for df = 1..30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: the table for df <= 30, the Cornish-Fisher expansion (error < 1e-3) above."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def t_ci95(values: list[float]) -> dict[str, float]:
    """Mean with a 95% Student-t confidence interval: the right interval for a few seeds (n = 3: the
    half-width is 4.30 standard errors, not the normal 1.96). NaN half-width for one value."""
    mean = statistics.fmean(values)
    n = len(values)
    half = t_quantile_975(n - 1) * statistics.stdev(values) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "half_width": half, "n": n}


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
