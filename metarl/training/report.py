"""The meta-test report: a per-task table, the mean with a 95% CI, and the same as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from metarl.training.evaluation import TaskResult, summarize


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
    print(format_table(summary))
    print(f"meta-test results written to {path}")
    return summary
