"""The plots of ``benchmarks/learning.py``: every seed's eval returns over env steps, with the
reference run and the fixed policies' returns for scale, and the first seed's own run plots."""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import stamp


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(result["runs"]):
        evals = run["evals"]
        if not evals:
            continue
        c = colors[i % len(colors)]
        xs = [e["env_steps"] for e in evals]
        ax.plot(xs, [e.get("return_post_adapt") for e in evals], "-o", color=c, ms=4,
                label=f"seed {run['seed']}: after adaptation")
        ax.plot(xs, [e.get("return_pre_adapt") for e in evals], "--", color=c, alpha=0.6,
                label=f"seed {run['seed']}: before adaptation")
    by_step: dict[int, list[float]] = {}
    for run in result["runs"]:
        for e in run["evals"]:
            if "return_post_adapt" in e:
                by_step.setdefault(e["env_steps"], []).append(e["return_post_adapt"])
    mean = sorted((x, statistics.fmean(v)) for x, v in by_step.items() if len(v) > 1)
    if mean:
        ax.plot(*zip(*mean, strict=True), "-", color="black", lw=2.5, alpha=0.6,
                label="mean over seeds, after adaptation")
    ref = result.get("reference")
    if ref:
        xs, ys = zip(*ref["points"], strict=True)
        reach = max((r["env_steps_reached"] for r in result["runs"]), default=0)
        keep = [(x, y) for x, y in zip(xs, ys, strict=True) if x <= max(reach, 50_000)]
        ax.plot(*zip(*keep, strict=True), "k:s", ms=5, label=ref["label"])
    for (name, value), style in zip((result.get("baselines") or {}).items(), ("-.", "--", ":"), strict=False):
        ax.axhline(value, color="black", ls=style, lw=1, alpha=0.7, label=f"{name}: {value:.1f}")
    for target in result["targets"]:
        ax.axvline(target, color="grey", lw=0.8, alpha=0.4)
    ax.set_xlabel("env steps (meta-training)")
    ax.set_ylabel("eval return (mean over eval tasks)")
    ax.set_title(f"Learning: {result['config']}.yaml, {len(result['runs'])} seed(s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the curves stay visible
    # The runs' code, which may be older than the code that gathered their logs.
    commits = sorted({f"{r.get('commit_short', '?')}{'+dirty' if r.get('dirty') else ''}" for r in result["runs"]})
    caption = f"runs at metarl {', '.join(commits)}; gathered by {stamp(result)}"
    fig.text(0.99, 0.01, caption, ha="right", va="bottom", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def copy_run_plots(runs: list[dict[str, Any]], out: Path) -> None:
    """The first seed's own plots (``python -m metarl plot``: returns, lambda / beta / ESS, losses)
    next to the JSON, for BENCHMARKS.md. A resumed run's last part stands for it."""
    from metarl.plot import plot_run

    for run in runs:
        if run["metrics_csv"]:
            folder = run.get("run_folder", f"seed{run['seed']}")  # seedK, or seeds0-1-2 (one process)
            label = f"{out.stem.removeprefix('learning_')} {folder.replace('seed', 'seed ', 1)}"
            for png in plot_run(Path(run["metrics_csv"][-1]), label):
                shutil.copyfile(png, out.with_name(f"{out.stem}_{folder}_{png.name}"))
            return
