"""Learning: meta-train a config for several seeds and report the eval return at stated env steps.

Each seed is one ``python -m metarl fit --config CONFIG`` run in its own folder
(``RUNS_DIR/CONFIG/seedK``); the eval returns (before and after adaptation, mean over the eval
tasks) are read back from the run's ``metrics.csv`` (the CSVLogger every config enables), so the
numbers are those the trainer itself logged. Writes ``learning_CONFIG.json`` and ``.png``.

    python benchmarks/learning.py --config point_robot --seeds 0 1 2
    python benchmarks/learning.py --config cheetah_fb --seeds 0 1 2 --env-steps 50000 --parallel 3
    python benchmarks/learning.py --config cheetah_fb --seeds 0 1 2 --env-steps 50000 --gather-only  # runs in progress
    python benchmarks/learning.py --config ant_fb --env-steps 1000000 -- --trainer.accelerator=gpu  # extra fit args

``--resume`` continues each seed from its ``last.ckpt``. A run that stops early is reported with
the env steps it reached: the JSON never claims a budget that was not run.

``--one-process`` trains all the seeds in ONE ``fit --seeds 0,1,2`` process (README, "Many seeds in one
process") in ``RUNS_DIR/CONFIG/seeds0-1-2``: seed k is the single-seed run of seed k, logged under
``seed<k>/...`` in the one ``metrics.csv`` (read back per seed here, into the same JSON), with one
checkpoint holding every seed (benchmarks/common.py and ood_comparison.py test it once for all). Use it
when the seeds would run side by side anyway on a few cores (3 point-robot seeds: x1.26 faster than 3
processes; BENCHMARKS.md, "Seeds in one process"); separate processes when a seed must be resumed,
stopped or extended on its own, or when the seeds run one after another (``--parallel 1``) with many
threads each. ``--parallel`` does not apply to it; ``--threads`` is the one process's.

    python benchmarks/learning.py --config point_robot --seeds 0 1 2 --one-process
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout; metarl itself must be importable too

from benchmarks.baselines import BASELINES  # noqa: E402
from benchmarks.common import git_commit, provenance, t_interval  # noqa: E402
from benchmarks.learning_plots import copy_run_plots, plot  # noqa: E402
from metarl.plot import read_metrics  # noqa: E402

PRE, POST = "eval/return_pre_adapt", "eval/return_post_adapt"
# Third-party run of the released MQL code on cheetah-dir (= Cheetah-FB), one seed, post-adaptation
# eval return (reference notes §6, log_dir/cheetah-dir_mql_dummy/eval.csv at commit 134714a).
REFERENCE = {
    "cheetah_fb": {"label": "released MQL code, 1 seed", "points": [
        (0, -0.2), (10_000, -3.6), (20_000, 134.0), (50_000, 320.0), (100_000, 493.0),
        (150_000, 693.0), (200_000, 832.0)]},
}


def fit_command(config: str, seeds: list[int], env_steps: int | None, extra: list[str],
                ckpt: Path | None) -> list[str]:
    """One seed: ``--model.init_args.seed``; several (one process): ``--seeds``, which builds seed k with
    ``model.init_args.seed=k`` itself (metarl/training/seed_args.py). The methods seed their nets and
    generators from that seed, not from ``seed_everything``; the first seed's is passed for the global
    generators until then (and a resume must repeat it: metarl/training/resume.py)."""
    cmd = [sys.executable, "-m", "metarl", "fit", "--config", f"{config}.yaml", f"--seed_everything={seeds[0]}",
           f"--model.init_args.seed={seeds[0]}" if len(seeds) == 1 else f"--seeds={','.join(map(str, seeds))}"]
    cmd += extra  # before the budget: an overlay after ``--`` (debug.yaml has a budget) must not undo --env-steps
    if env_steps is not None:
        cmd.append(f"--model.init_args.total_env_steps={env_steps}")
    if ckpt is not None:
        cmd += ["--ckpt_path", str(ckpt)]
    return cmd


def last_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted(run_dir.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    return ckpts[-1] if ckpts else None


def launch(run_dir: Path, cmd: list[str], threads: int) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    # One intra-op thread per run: several seeds share the cores instead of oversubscribing them.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "WANDB_MODE": os.environ.get("WANDB_MODE", "disabled"), "PYTHONWARNINGS": "ignore",
           # The run imports this checkout's metarl even where it is not pip-installed.
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    shown = shlex.join(["python", *cmd[1:]])
    info = {"command": shown, "cwd": str(run_dir), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "threads": threads, **git_commit()}  # the code the run imported, which may differ at gather time
    info_path = run_dir / "bench_run.json"
    if info_path.exists():  # a resumed run: keep the earlier starts (their commits may differ)
        previous = json.loads(info_path.read_text())
        info["previous_starts"] = [*previous.pop("previous_starts", []), previous]
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    log = (run_dir / "fit.log").open("a")
    print(f"[{run_dir}] {shown}", flush=True)
    proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.start_time = time.perf_counter()  # type: ignore[attr-defined]
    return proc


def run_all(jobs: list[tuple[Path, list[str]]], parallel: int, threads: int) -> None:
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < parallel:
            run_dir, cmd = pending.pop(0)
            running.append((run_dir, launch(run_dir, cmd, threads)))
        time.sleep(5)
        for run_dir, proc in list(running):
            if proc.poll() is None:
                continue
            running.remove((run_dir, proc))
            info = json.loads((run_dir / "bench_run.json").read_text())
            info.update(returncode=proc.returncode, wall_s=round(time.perf_counter() - proc.start_time, 1),
                        ended_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            (run_dir / "bench_run.json").write_text(json.dumps(info, indent=2) + "\n")
            print(f"[{run_dir}] exit {proc.returncode} after {info['wall_s']} s", flush=True)


def gather_run(run_dir: Path, targets: list[int], seed: int, one_process: bool = False) -> dict[str, Any]:
    """The evals seed ``seed``'s run logged, across resumes (CSVLogger writes one version folder per
    start); of a run of several seeds in one process (``one_process``), its ``seed<k>/eval/...`` keys."""
    prefix = f"seed{seed}/" if one_process else ""
    series: dict[str, list[tuple[float, float]]] = {}
    csvs = sorted(run_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    for path in csvs:
        for key, points in read_metrics(path).items():
            series.setdefault(key, []).extend(points)
    by_step: dict[int, dict[str, float]] = {}
    for key, name in ((PRE, "return_pre_adapt"), (POST, "return_post_adapt")):
        for steps, value in series.get(prefix + key, []):
            by_step.setdefault(int(steps), {})[name] = value  # a resumed run's repeat overrides
    evals = [{"env_steps": s, **v} for s, v in sorted(by_step.items())]
    # Every point is stamped with the env-step count of its row, so the largest is how far it got.
    reached = int(max((s for points in series.values() for s, _ in points), default=0))
    info_path = run_dir / "bench_run.json"
    out: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {"cwd": str(run_dir)}
    out.update(seed=seed, run_folder=run_dir.name, metrics_csv=[str(p) for p in csvs], env_steps_reached=reached,
               evals=evals, at={})
    for target in targets:
        # The first eval at or after the target: the trainer evaluates at the end of the eval
        # period, which may overshoot the nominal step by one collection iteration.
        hit = next((e for e in evals if e["env_steps"] >= target), None)
        out["at"][str(target)] = hit
    return out


def _ci95(values: list[float]) -> list[float] | None:
    """A 95% Student-t interval over the seeds; None for one seed."""
    if len(values) < 2:
        return None
    ci = t_interval(values)
    return [ci["ci95_low"], ci["ci95_high"]]


def summarize(runs: list[dict[str, Any]], targets: list[int]) -> dict[str, Any]:
    """Per target: each seed's first evaluation at or after it; after and before adaptation over the
    seeds (mean, std, 95% t-interval) and their paired difference."""
    summary = {}
    for target in targets:
        hits = [r["at"][str(target)] for r in runs if r["at"].get(str(target))]
        row: dict[str, Any] = {"n_seeds": len(hits), "env_steps": [h["env_steps"] for h in hits]}
        for name in ("return_post_adapt", "return_pre_adapt"):
            vals = [h[name] for h in hits if name in h]
            if vals:
                row[name] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                             "min": min(vals), "max": max(vals), "values": vals, "ci95": _ci95(vals)}
        # What adaptation buys, paired per seed (the same checkpoint's evaluation both ways).
        gains = [h["return_post_adapt"] - h["return_pre_adapt"] for h in hits
                 if "return_post_adapt" in h and "return_pre_adapt" in h]
        if gains:
            row["post_minus_pre"] = {"mean": statistics.fmean(gains), "values": gains, "ci95": _ci95(gains)}
        summary[str(target)] = row
    return summary


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a shipped config name, e.g. point_robot or cheetah_fb")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--env-steps", type=int, default=None, help="meta-training budget (default: the config's)")
    parser.add_argument("--at", type=int, nargs="*", default=None,
                        help="env steps to report (default: the budget; an eval must fall there)")
    parser.add_argument("--parallel", type=int, default=1, help="seeds run at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench" / "learning")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (the PNG goes next to it)")
    parser.add_argument("--gather-only", action="store_true", help="read the runs' logs; start nothing")
    parser.add_argument("--resume", action="store_true", help="continue each seed from its last.ckpt")
    parser.add_argument("--one-process", action="store_true",
                        help="all the seeds in one fit --seeds process, in RUNS_DIR/CONFIG/seeds<a>-<b>-...")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    config = Path(args.config).name.removesuffix(".yaml")
    if args.parallel < 1 or args.threads < 1:
        parser.error(f"--parallel and --threads must be >= 1, got {args.parallel} and {args.threads}")
    targets = args.at if args.at is not None else ([args.env_steps] if args.env_steps else [])
    out = args.out or ROOT / "benchmarks" / "results" / f"learning_{config}.json"
    if args.one_process and (len(args.seeds) < 2 or len(set(args.seeds)) != len(args.seeds)):
        parser.error(f"--one-process takes two or more distinct --seeds, got {args.seeds}")
    # Run folder -> the seeds it trains: one each, or all in one (--one-process).
    folders = {f"seeds{'-'.join(map(str, args.seeds))}": args.seeds} if args.one_process else {
        f"seed{seed}": [seed] for seed in args.seeds}
    run_dirs = {(args.runs_dir / config / name).resolve(): seeds for name, seeds in folders.items()}

    t0 = time.perf_counter()
    if not args.gather_only:
        jobs = []
        for run_dir, seeds in run_dirs.items():
            ckpt = last_checkpoint(run_dir) if args.resume else None
            if run_dir.exists() and ckpt is None:
                # A fresh run: old logs would mix into the numbers, and are moved aside, never deleted.
                aside = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%dT%H%M%S')}")
                run_dir.rename(aside)
                print(f"[{run_dir}] no last.ckpt to resume: the old folder is now {aside}", flush=True)
            jobs.append((run_dir, fit_command(config, seeds, args.env_steps, extra, ckpt)))
        run_all(jobs, args.parallel, args.threads)

    runs = []
    for run_dir, seed in ((d, k) for d, seeds in run_dirs.items() for k in seeds):
        run = gather_run(run_dir, targets, seed, args.one_process)
        budget = args.env_steps
        run["finished"] = bool(budget and run["env_steps_reached"] >= budget and run.get("returncode") == 0)
        runs.append(run)
    result = {
        "benchmark": "learning", "config": config, "seeds": args.seeds, "one_process": args.one_process,
        "env_steps_budget": args.env_steps,
        "targets": targets, "fit_overrides": extra, "summary": summarize(runs, targets), "runs": runs,
        "reference": REFERENCE.get(config),
        "baselines": BASELINES[config]() if config in BASELINES else None,
        # The runs' own wall times are in runs[*].wall_s; this is this invocation's (gathering only: seconds).
        "benchmark_wall_s": round(time.perf_counter() - t0, 1), "gather_only": args.gather_only,
        **provenance(),
    }
    # The command that reruns the runs themselves (this one may only have gathered their logs).
    result["rerun_command"] = result["command"].replace(" --gather-only", "")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    copy_run_plots(runs, out)
    for target, row in result["summary"].items():
        post = row.get("return_post_adapt")
        text = f"{post['mean']:.1f} ± {post['std']:.1f} (n={row['n_seeds']})" if post else "no eval reached"
        gain = row.get("post_minus_pre")
        if gain and gain["ci95"]:
            text += f"; after − before {gain['mean']:+.2f}, 95% CI [{gain['ci95'][0]:+.2f}, {gain['ci95'][1]:+.2f}]"
        print(f"{config} @ {target} env steps: return after adaptation {text}")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
