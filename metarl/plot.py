"""``python -m metarl plot RUN_DIR [RUN_DIR ...]``: PNG learning curves from a run's local CSV logs.

Reads every ``metrics.csv`` below each RUN_DIR (Lightning's CSVLogger, which every shipped config
enables next to W&B), so no W&B server is needed. Writes, next to each ``metrics.csv``:

- ``returns.png``: eval return before and after adaptation (mean over the eval tasks) and the
  training return, against env steps;
- ``adaptation.png``: lambda, ESS, mean beta and the classifier's accuracy at each evaluation;
- ``training.png``: critic and actor losses and the env-step and update rates.

A resumed run appends to the same ``metrics.csv``, so it is drawn as one curve; where a run was
killed after its last checkpoint and resumed from it, the rows the killed attempt logged past that
checkpoint are replaced by the resumed run's (the stitch: every env step is drawn once, with the
values of the run that continued). A series with few points is drawn with markers.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STEP = "train/env_steps"
EVAL_STEP = "eval/env_steps"
Series = dict[str, list[tuple[float, float]]]

# (metric, legend label, line style); a panel with no data is left out.
RETURNS = [("eval/return_post_adapt", "eval, after adaptation", "-o"),
           ("eval/return_pre_adapt", "eval, before adaptation", "--s")]
# (title, [(metric, legend label, line style)], y limits, y label) per panel.
ADAPT_PANELS = [
    ("λ (proximal weight) and ESS", [("adapt/lambda", "λ, mean over the adaptation's minibatches", "-o"),
                                     ("adapt/ess", "ESS of the last eq.-19 minibatch", "-s")], (0.0, 1.05), ""),
    ("Mean propensity weight β", [("adapt/beta_mean", "mean β (last eq.-19 minibatch)", "-o")], None, "β"),
    ("Propensity classifier (eq. 11)", [("adapt/classifier_acc", "train accuracy", "-o")], (0.0, 1.05),
     "accuracy"),
]
TRAIN_PANELS = [
    ("TD3 losses", [("train/loss_critic", "critic", "-"), ("train/loss_actor", "actor", "-")], None, "loss"),
    ("Collection speed", [("time/env_steps_per_s", "env steps / s", "-")], None, "env steps / s"),
    ("Update speed", [("time/updates_per_s", "updates / s", "-")], None, "updates / s"),
]


class MetricsError(ValueError):
    """A file that is not a readable metrics.csv."""


def read_metrics(path: Path) -> Series:
    """metric -> [(env_steps, value)], carrying the last seen env-step count forward to later rows.

    A training row whose env steps are fewer than the previous training row's starts a resumed
    attempt: the points the earlier attempt logged at or after that env step are dropped."""
    try:
        return _read_metrics(path)
    except (UnicodeDecodeError, csv.Error) as err:
        raise MetricsError(f"{path} is not a CSV file ({type(err).__name__})") from err


def _read_metrics(path: Path) -> Series:
    series: Series = {}
    env_steps = 0.0
    last_train = -math.inf
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or STEP not in reader.fieldnames:
            raise MetricsError(f"{path} is not a metarl metrics.csv (it has no {STEP} column)")
        for row in reader:
            if row.get(STEP):
                env_steps = float(row[STEP])
                if env_steps <= last_train:  # a resumed attempt: it supersedes what came after its start
                    for key in series:
                        series[key] = [(x, v) for x, v in series[key] if x < env_steps]
                last_train = env_steps
            # Eval rows carry their own count (the validation loop runs between training steps).
            if row.get(EVAL_STEP):
                env_steps = float(row[EVAL_STEP])
            for key, value in row.items():
                if key in (STEP, EVAL_STEP, "step", "epoch") or value in ("", None):
                    continue
                try:
                    v = float(value)
                except ValueError:
                    continue
                if math.isfinite(v):
                    series.setdefault(key, []).append((env_steps, v))
    return series


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (noisy per-iteration returns become a readable trend)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _draw(ax: Any, series: Series, lines: list[tuple[str, str, str]]) -> bool:
    drawn = False
    for name, label, style in lines:
        if name not in series:
            continue
        xs, ys = zip(*series[name], strict=True)
        ax.plot(xs, ys, _style(style, len(xs)), label=label, ms=4)
        drawn = True
    return drawn


def _style(style: str, n: int) -> str:
    """Markers on short series (a single point has no line to show it), none on long ones."""
    if n > 60:
        return style.rstrip("os")
    return style if any(m in style for m in "os^vD") or n > 3 else style + "o"


def _finish(ax: Any, title: str, ylabel: str, ylim: tuple[float, float] | None = None) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("env steps (meta-training)")
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _returns(plt: Any, series: Series, label: str, out: Path) -> bool:
    fig, ax = plt.subplots(figsize=(8, 4.8))
    drawn = False
    if "train/return" in series:
        xs, ys = zip(*series["train/return"], strict=True)
        ax.plot(xs, ys, _style("-", len(xs)), color="grey", alpha=0.25 if len(xs) > 3 else 0.8, lw=0.8, ms=4,
                label="training episodes (with exploration noise)")
        window = max(1, len(ys) // 40)
        if window > 1:
            ax.plot(xs, smooth(ys, window), color="grey", lw=1.5, label=f"training, moving mean of {window}")
        drawn = True
    drawn = _draw(ax, series, RETURNS) or drawn
    if not drawn:
        plt.close(fig)
        return False
    _finish(ax, f"Returns: {label}", "episode return")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True


def _panels(plt: Any, series: Series, panels: list[Any], title: str, out: Path) -> bool:
    present = [p for p in panels if any(name in series for name, _, _ in p[1])]
    if not present:
        return False
    fig, axes = plt.subplots(1, len(present), figsize=(5 * len(present), 4.2), squeeze=False)
    for ax, (panel_title, lines, ylim, ylabel) in zip(axes[0], present, strict=True):
        _draw(ax, series, lines)
        _finish(ax, panel_title, ylabel, ylim)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True


def plot_run(csv_path: Path, label: str | None = None) -> list[Path]:
    """Write the PNGs of one ``metrics.csv`` next to it; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_metrics(csv_path)
    label = label or str(csv_path.parent)
    out_dir = csv_path.parent
    written = []
    if _returns(plt, series, label, out_dir / "returns.png"):
        written.append(out_dir / "returns.png")
    if _panels(plt, series, ADAPT_PANELS, f"Adaptation at each evaluation: {label}", out_dir / "adaptation.png"):
        written.append(out_dir / "adaptation.png")
    if _panels(plt, series, TRAIN_PANELS, f"Meta-training: {label}", out_dir / "training.png"):
        written.append(out_dir / "training.png")
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m metarl plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders (or metrics.csv files)")
    args = parser.parse_args(argv)
    found = False
    for run_dir in args.run_dirs:
        if not str(run_dir).strip() or not run_dir.exists():
            print(f"metarl plot: error: {run_dir} does not exist", file=sys.stderr)
            return 2
        if run_dir.is_file() and run_dir.suffix != ".csv":
            print(f"metarl plot: error: {run_dir} is a file, not a run folder or a metrics.csv", file=sys.stderr)
            return 2
        csvs = [run_dir] if run_dir.is_file() else sorted(run_dir.rglob("metrics.csv"))
        for csv_path in csvs:
            found = True
            # The run as the user named it, down to the logger's version folder.
            base = (run_dir if run_dir.is_dir() else csv_path.parent).resolve().parent
            try:
                written = plot_run(csv_path, str(csv_path.parent.resolve().relative_to(base)))
            except (MetricsError, OSError) as err:
                print(f"metarl plot: error: {err}", file=sys.stderr)
                return 2
            for png in written:
                print(png)
    if not found:
        print("metarl plot: error: no metrics.csv below " + ", ".join(map(str, args.run_dirs)), file=sys.stderr)
        return 2
    return 0
