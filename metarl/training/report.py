"""The meta-test report: a per-task table, the mean with a 95% CI, and the same as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from metarl.training.evaluation import TaskResult, ci95, summarize, t_ci95


def format_table(summary: dict[str, Any]) -> str:
    lines = [f"{'task':>6} {'pre-adapt':>12} {'post-adapt':>12}"]
    for row in summary["tasks"]:
        lines.append(f"{row['task']:>6} {row['return_pre_adapt']:>12.2f} {row['return_post_adapt']:>12.2f}")
    for key in ("return_pre_adapt", "return_post_adapt"):
        s = summary[key]
        lines.append(f"{key}: {s['mean']:.2f}  95% CI [{s['ci95_low']:.2f}, {s['ci95_high']:.2f}]  (n={s['n_tasks']})")
    return "\n".join(lines)


PROTOCOL = ("eval", "adapt")  # the settings a meta-test applies (training/resume.py RESUMABLE)


def _free_path(out_dir: str) -> str:
    """``meta_test.json``, or ``meta_test_<n>.json`` with the first n >= 2 not taken."""
    path, n = os.path.join(out_dir, "meta_test.json"), 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(out_dir, f"meta_test_{n}.json")
    return path


def _plain(value: Any) -> Any:
    """JSON for the settings' dataclasses and the like."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def report_test(module: Any, results: list[TaskResult]) -> dict[str, Any]:
    """Print the table and write ``meta_test.json`` next to the checkpoint (or in the log dir);
    ``meta_test_2.json``, ... when an earlier test's report is there."""
    summary = summarize(results)
    _write(module, summary, format_table(summary))
    return summary


def across_seeds(per_seed: dict[int, dict[str, Any]], results: list[list[TaskResult]]) -> dict[str, Any]:
    """A multi-seed meta-test's summary: each seed's (as a single-seed test), the mean over seeds of
    their mean returns with a 95% Student-t interval over seeds (the seed is the unit of replication),
    and the pooled (seed, task) pairs with the normal interval of a single-seed report."""
    out: dict[str, Any] = {"seeds": list(per_seed), "per_seed": {str(k): v for k, v in per_seed.items()}}
    for key in ("return_pre_adapt", "return_post_adapt"):
        t = t_ci95([s[key]["mean"] for s in per_seed.values()])
        out[key] = {"mean": t["mean"], "ci95_low": t["ci95_low"], "ci95_high": t["ci95_high"], "n_seeds": t["n"],
                    "interval": "Student t over the seeds' means"}
    out["pooled"] = {
        "return_pre_adapt": ci95([r.return_pre for rs in results for r in rs]),
        "return_post_adapt": ci95([r.return_post for rs in results for r in rs]),
    }
    return out


def format_seeds_table(summary: dict[str, Any]) -> str:
    lines = [f"{'seed':>6} {'pre-adapt':>12} {'post-adapt':>12}   (mean over {summary['n_tasks']} eval tasks)"]
    for seed, s in summary["per_seed"].items():
        lines.append(f"{seed:>6} {s['return_pre_adapt']['mean']:>12.2f} {s['return_post_adapt']['mean']:>12.2f}")
    for key in ("return_pre_adapt", "return_post_adapt"):
        s = summary[key]
        lines.append(f"{key}: {s['mean']:.2f}  95% CI [{s['ci95_low']:.2f}, {s['ci95_high']:.2f}]  "
                     f"(over {s['n_seeds']} seeds, Student t)")
    return "\n".join(lines)


def report_test_seeds(module: Any, results: list[list[TaskResult]]) -> dict[str, Any]:
    """The multi-seed meta-test: per seed and across seeds, printed and in ``meta_test.json``."""
    per_seed = {seed: summarize(rs) for seed, rs in zip(module.seeds, results, strict=True)}
    summary = across_seeds(per_seed, results)
    summary["n_tasks"] = len(results[0])
    _write(module, summary, format_seeds_table(summary))
    return summary


def _write(module: Any, summary: dict[str, Any], table: str) -> None:
    summary.update({"method": module.method_name, "family": module.family.name, "env_steps": module.env_steps})
    trainer = module._trainer
    ckpt = getattr(trainer, "ckpt_path", None) if trainer is not None else None
    if ckpt:
        out_dir = os.path.dirname(os.path.abspath(ckpt))
    elif trainer is not None and trainer.log_dir:
        out_dir = trainer.log_dir
    else:
        out_dir = os.getcwd()
    os.makedirs(out_dir, exist_ok=True)
    summary["checkpoint"] = ckpt
    # The protocol that made these numbers: several tests of one checkpoint (say, two adaptation
    # settings) are told apart by it, and none overwrites another's file.
    summary["settings"] = {k: module.hparams[k] for k in PROTOCOL if k in module.hparams}
    summary["family_options"] = dict(module.family.options)  # which eval tasks (e.g. point-robot-ood's eval_split)
    path = _free_path(out_dir)
    with open(path, "x") as f:
        json.dump(summary, f, indent=2, default=_plain)
    print(table)
    print(f"meta-test results written to {path}")
