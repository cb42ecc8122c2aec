"""``python -m metarl plot RUN_DIR [RUN_DIR ...]``: PNG learning curves from a run's local CSV logs.

Reads every ``metrics.csv`` below each RUN_DIR (Lightning's CSVLogger, which every shipped config
enables next to W&B), so no W&B server is needed. Writes, per run folder:

- ``returns.png``: eval return before and after adaptation, and the training return, against env steps;
- ``adaptation.png``: lambda, ESS, mean beta and classifier accuracy against env steps.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

STEP = "train/env_steps"


def read_metrics(path: Path) -> dict[str, list[tuple[float, float]]]:
    """metric -> [(env_steps, value)], carrying the last seen env-step count forward to eval rows."""
    series: dict[str, list[tuple[float, float]]] = {}
    env_steps = 0.0
    with path.open() as f:
        for row in csv.DictReader(f):
            if row.get(STEP):
                env_steps = float(row[STEP])
            for key, value in row.items():
                if key in (STEP, "step", "epoch") or value in ("", None):
                    continue
                try:
                    v = float(value)
                except ValueError:
                    continue
                if math.isfinite(v):
                    series.setdefault(key, []).append((env_steps, v))
    return series


def _panel(ax, series, names, title) -> bool:
    drawn = False
    for name in names:
        if name in series:
            xs, ys = zip(*series[name], strict=True)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, label=name)
            drawn = True
    ax.set_title(title)
    ax.set_xlabel("env steps")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    return drawn


def plot_run(csv_path: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_metrics(csv_path)
    out_dir = csv_path.parent
    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if _panel(ax, series, ["eval/return_pre_adapt", "eval/return_post_adapt", "train/return"], "Returns"):
        ax.set_ylabel("episode return")
        fig.tight_layout()
        fig.savefig(out_dir / "returns.png", dpi=120)
        written.append(out_dir / "returns.png")
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    a = _panel(axes[0], series, ["adapt/lambda", "adapt/ess"], "lambda = 1 - ESS")
    b = _panel(axes[1], series, ["adapt/beta_mean", "adapt/classifier_acc"], "beta and the classifier")
    if a or b:
        fig.tight_layout()
        fig.savefig(out_dir / "adaptation.png", dpi=120)
        written.append(out_dir / "adaptation.png")
    plt.close(fig)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m metarl plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    found = False
    for run_dir in args.run_dirs:
        if not run_dir.exists():
            print(f"metarl plot: error: {run_dir} does not exist", file=sys.stderr)
            return 2
        for csv_path in sorted(run_dir.rglob("metrics.csv")):
            found = True
            for png in plot_run(csv_path):
                print(png)
    if not found:
        print("metarl plot: error: no metrics.csv below " + ", ".join(map(str, args.run_dirs)), file=sys.stderr)
        return 2
    return 0
