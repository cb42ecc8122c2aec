"""What every benchmark records next to its numbers: the machine, the commit, the command, the date.

A benchmark's JSON says where and from what code it was measured, so a number in BENCHMARKS.md can
be traced and rerun (DESIGN.md, quality bar).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> dict[str, Any]:
    """The commit (full and short) and whether the code had uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "commit_short": git("rev-parse", "--short", "HEAD"),
                # Results files do not change what is measured; any other uncommitted change does.
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"))}
    except (OSError, subprocess.CalledProcessError) as err:  # e.g. before the first commit
        msg = err.stderr.strip() if isinstance(err, subprocess.CalledProcessError) else str(err)
        return {"commit": None, "commit_error": msg}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import tensordict
    import torch
    import torchrl

    # The load average matters here: the benchmark machine may be shared, and a loaded machine
    # slows everything down (ratios measured in the same run are less affected than absolutes).
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "platform": platform.platform(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
        "load_avg_1_5_15min": None if load is None else [round(x, 2) for x in load],
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "torchrl": torchrl.__version__, "tensordict": tensordict.__version__,
    }


def script_command() -> str:
    """The command line that ran this script, relative to the repository root when inside it."""
    path = Path(sys.argv[0]).resolve()
    script = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else sys.argv[0]
    return shlex.join(["python", script, *sys.argv[1:]])


def provenance() -> dict[str, Any]:
    return {
        "machine": machine(), **git_commit(), "command": script_command(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def stamp(data: dict[str, Any]) -> str:
    """A one-line caption for plots: the commit and the date."""
    dirty = "+dirty" if data.get("dirty") else ""
    return f"metarl {data.get('commit_short') or '?'}{dirty}, {data.get('date_utc', '')[:10]}, " \
           f"{data.get('machine', {}).get('cpu_count', '?')} CPU cores"


def build_module(config: str, *overrides: str) -> Any:
    """The MetaTrainModule of ``python -m metarl fit --config CONFIG OVERRIDES``, built through the
    CLI (as tests/conftest.py does) so it has exactly the config's nets and settings."""
    os.environ.setdefault("WANDB_MODE", "disabled")
    from metarl.cli import TRAINER_DEFAULTS, MetaRLCLI
    from metarl.config_files import resolve_argv
    from metarl.training.module import MetaTrainModule

    args = ["--config", f"{config.removesuffix('.yaml')}.yaml", "--trainer.logger=false", *overrides]
    cli = MetaRLCLI(MetaTrainModule, subclass_mode_model=True, trainer_defaults=TRAINER_DEFAULTS,
                    parser_kwargs={"parser_mode": "omegaconf+"}, save_config_callback=None,
                    args=resolve_argv(args), run=False)
    return cli.model


def save_figure(fig: Any, path: Path, result: dict[str, Any]) -> None:
    """Stamp a benchmark's figure with its provenance, save it as PNG and close it."""
    import matplotlib.pyplot as plt

    fig.text(0.99, 0.01, stamp(result), ha="right", va="bottom", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(result: dict[str, Any], out: Path, plot: Callable[[dict[str, Any], Path], None]) -> None:
    """Write a benchmark's JSON to ``out`` and its PNG next to it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


# ----------------------------------------------------------------------------- meta-tests of saved runs
WRITTEN = re.compile(r"meta-test results written to (\S+)")


def t_interval(values: list[float]) -> dict[str, float]:
    """Mean with a 95% Student-t interval (n small: seeds x tasks)."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    n = len(values)
    half = t.ppf(0.975, n - 1) * statistics.stdev(values) / n**0.5 if n > 1 else float("nan")
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


#: A ``benchmarks/learning.py --one-process`` folder: seeds 0, 1 and 2 trained in one ``fit --seeds 0,1,2``.
MULTI_SEED = re.compile(r"seeds(\d+(?:-\d+)+)")


def seed_names(folder: str) -> list[str]:
    """The seeds a runs folder holds, as ``seedK``: ``seed3`` -> ``["seed3"]``, ``seeds0-1-2`` (one
    process, one checkpoint for all) -> ``["seed0", "seed1", "seed2"]``."""
    multi = MULTI_SEED.fullmatch(folder)
    return [f"seed{k}" for k in multi.group(1).split("-")] if multi else [folder]


def seed_checkpoints(runs: Path, allow_unfinished: bool = False) -> list[tuple[str, Path]]:
    """``(folder name, newest last.ckpt)`` of each seed folder of a ``benchmarks/learning.py`` runs folder
    (``RUNS/CONFIG/seedK/.../last.ckpt``, or ``RUNS/CONFIG/seeds0-1-2/...`` for seeds trained in one
    process, whose one checkpoint holds them all: :func:`seed_names`; folders set aside by ``--resume``,
    ``seedK.old-*``, are not seeds), in seed order; exits with a message when one has no checkpoint, or
    when a seed is in two folders. A folder whose run is short of its budget (:func:`unfinished`) is left
    out with a line saying so, unless ``allow_unfinished``."""
    seeds = sorted((p for p in runs.glob("seed*") if re.fullmatch(r"seed\d+", p.name) or MULTI_SEED.fullmatch(p.name)),
                   key=lambda p: [int(k.removeprefix("seed")) for k in seed_names(p.name)])
    if not seeds:
        sys.exit(f"{Path(sys.argv[0]).stem}: no seed* folders in {runs}")
    names = [n for p in seeds for n in seed_names(p.name)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        sys.exit(f"{Path(sys.argv[0]).stem}: {', '.join(twice)} in two folders of {runs}: set one aside")
    found = []
    for seed_dir in seeds:
        ckpts = sorted(seed_dir.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
        if not ckpts:
            sys.exit(f"{Path(sys.argv[0]).stem}: no last.ckpt below {seed_dir}")
        why = None if allow_unfinished else unfinished(ckpts[-1])
        if why:
            print(f"{seed_dir.name}: left out, {why}", flush=True)
            continue
        found.append((seed_dir.name, ckpts[-1]))
    return found


def unfinished(ckpt: Path) -> str | None:
    """Why a ``benchmarks/learning.py`` run's checkpoint is not its final one (None when it is, or
    when the run has no ``bench_run.json`` to say its budget): a comparison of final checkpoints must
    not test a run that is still going or was stopped part-way."""
    import torch

    info_path = next((p / "bench_run.json" for p in ckpt.parents if (p / "bench_run.json").is_file()), None)
    budget = re.search(r"total_env_steps=(\d+)", json.loads(info_path.read_text())["command"]) if info_path else None
    if budget is None:
        return None
    from metarl.training.checkpoint_state import evaluation_pending

    # mmap: only the counters are read, not a replay of hundreds of MB.
    saved = torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)
    steps = saved["metarl"]["counters"]["env_steps"]
    if steps < int(budget.group(1)):
        return f"{ckpt} is at {steps:,} of its run's {int(budget.group(1)):,} env steps"
    if evaluation_pending(saved):  # taken right before the final evaluation, which has not run
        return f"{ckpt} was taken before the run's final evaluation, which has not run yet (resume it)"
    return None


def run_test(config: str, ckpt: Path, seed: int, overrides: list[str], threads: int) -> tuple[Path, float]:
    """``python -m metarl test`` of one checkpoint with the config's protocol plus ``overrides``;
    the report it wrote (``meta_test*.json`` next to the checkpoint, never overwritten) and the wall time."""
    cmd = [sys.executable, "-m", "metarl", "test", "--config", f"{config.removesuffix('.yaml')}.yaml",
           f"--ckpt_path={ckpt}", f"--seed_everything={seed}", "--trainer.logger=false", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "WANDB_MODE": os.environ.get("WANDB_MODE", "disabled")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    found = WRITTEN.search(proc.stdout)
    if proc.returncode != 0 or not found:
        sys.exit(f"{Path(sys.argv[0]).stem}: {shlex.join(cmd)} failed (exit {proc.returncode}): "
                 f"{proc.stderr.strip()[-400:]}")
    return Path(found.group(1)), wall


def meta_test_records(report_path: Path, ckpt: Path, wall: float, folder: str) -> dict[str, dict[str, Any]]:
    """``seedK`` -> what a comparison keeps of the test of a ``folder``'s checkpoint (:func:`seed_names`):
    one seed's, or each seed's of a multi-seed checkpoint's test (its report's ``per_seed``), which then
    share the test: each gets its wall time over the seeds (``wall_s``, so that sums stay the time spent)
    and the whole (``test_wall_s``, ``tested_with``)."""
    report = json.loads(report_path.read_text())
    per_seed = report.get("per_seed")
    if per_seed is None:
        return {folder: _record(report, report["tasks"], report_path, ckpt, wall)}
    names = [f"seed{k}" for k in per_seed]
    if names != seed_names(folder):
        sys.exit(f"{Path(sys.argv[0]).stem}: {report_path} holds {', '.join(names)}, but its folder is {folder}")
    shared = {"test_wall_s": round(wall, 1), "tested_with": names}
    return {f"seed{k}": {**_record(report, s["tasks"], report_path, ckpt, wall / len(names)), **shared}
            for k, s in per_seed.items()}


def _record(report: dict[str, Any], rows: list[dict[str, Any]], report_path: Path, ckpt: Path,
            wall: float) -> dict[str, Any]:
    """One seed's test: the report's file, the protocol it ran, and the per-task returns after
    (``tasks``) and before (``tasks_pre``) adaptation, keyed by task."""
    return {"report": str(report_path), "checkpoint": str(ckpt), "env_steps": report["env_steps"],
            "wall_s": round(wall, 1), "settings": report["settings"],
            "family_options": report.get("family_options"),
            "tasks": {str(row["task"]): row["return_post_adapt"] for row in rows},
            "tasks_pre": {str(row["task"]): row["return_pre_adapt"] for row in rows}}
