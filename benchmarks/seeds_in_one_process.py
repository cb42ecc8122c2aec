"""Many seeds in one process (issue #15): N seeds in one ``fit`` against N single-seed processes.

In one run, per round and interleaved (the order rotates each round, so a shared machine's load hits
all arms alike), the same config and budget:

- ``one_process``: ``python -m metarl fit --config CONFIG --seeds 0,1,2`` (seed by seed, in lockstep);
- ``one_process_batched``: the same with ``--model.init_args.batched_update=true`` (MQL: the seeds'
  TD3 updates as one stacked update);
- ``n_processes``: N ``python -m metarl fit --config CONFIG --model.init_args.seed=k`` started together.

Each arm's time is the wall time from the first start to the last exit (start-up included, as a user
sees it) and the CPU time of all its processes. Every process runs with ``OMP_NUM_THREADS=1``. The
results check that seed k of the one-process arm logged the same evaluation returns as process k.

    python benchmarks/seeds_in_one_process.py [--config point_robot] [--seeds 0 1 2] [--rounds 2]
        [--budget 4000] [OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, provenance, save_figure, write_results

ARMS = ("one_process", "one_process_batched", "n_processes")


def _fit(out: Path, config: str, budget: int, extra: list[str], overrides: list[str]) -> list[str]:
    logger = ('{"class_path": "pytorch_lightning.loggers.CSVLogger", '
              f'"init_args": {{"save_dir": "{out}", "name": "csv", "version": 0}}}}')
    return [sys.executable, "-m", "metarl", "fit", "--config", f"{config}.yaml",
            f"--model.init_args.total_env_steps={budget}", f"--trainer.logger={logger}",
            f"--checkpoint.dirpath={out / 'ckpt'}", "--trainer.enable_progress_bar=false", *overrides, *extra]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_arm(arm: str, work: Path, config: str, seeds: list[int], budget: int, overrides: list[str]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    seeds_arg = "--seeds=" + ",".join(map(str, seeds))
    if arm == "n_processes":
        commands = [(work / f"seed{k}", _fit(work / f"seed{k}", config, budget, [f"--model.init_args.seed={k}"],
                                             overrides)) for k in seeds]
    else:
        extra = [seeds_arg] + (["--model.init_args.batched_update=true"] if arm == "one_process_batched" else [])
        commands = [(work / arm, _fit(work / arm, config, budget, extra, overrides))]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _, cmd in commands]
    errors = [p.communicate()[1] for p in procs]
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    for p, err in zip(procs, errors, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"{arm} failed ({p.returncode}): {err[-2000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "folders": [str(out) for out, _ in commands]}


def eval_returns(folder: Path, prefix: str = "") -> list[float]:
    with open(folder / "csv" / "version_0" / "metrics.csv") as f:
        key = f"{prefix}eval/return_post_adapt"
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="point_robot")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--budget", type=int, default=4000)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "seeds_in_one_process.json")
    parser.add_argument("overrides", nargs="*", help="more --key=value overrides for every run")
    args = parser.parse_args()
    result: dict[str, Any] = {**provenance(), "config": args.config, "seeds": args.seeds, "budget": args.budget,
                              "overrides": args.overrides, "rounds": []}
    same = True
    for r in range(args.rounds):
        arms = args.arms[r % len(args.arms):] + args.arms[:r % len(args.arms)]
        row: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for arm in arms:
                row[arm] = run_arm(arm, Path(tmp) / arm, args.config, args.seeds, args.budget, args.overrides)
                print(f"round {r + 1}: {arm}: {row[arm]['wall_s']:.1f} s wall, {row[arm]['cpu_s']:.1f} s CPU",
                      flush=True)
            if "one_process" in row and "n_processes" in row:
                one = Path(row["one_process"]["folders"][0])
                for k, folder in zip(args.seeds, row["n_processes"]["folders"], strict=True):
                    same = same and eval_returns(one, f"seed{k}/") == eval_returns(Path(folder))
        for arm in row:
            row[arm].pop("folders")
        result["rounds"].append(row)
    result["identical_per_seed_eval_returns"] = same if "one_process" in args.arms else None
    base = "n_processes"
    result["summary"] = {}
    for arm in args.arms:
        for what in ("wall_s", "cpu_s"):
            values = [row[arm][what] for row in result["rounds"]]
            result["summary"][f"{arm}_{what}_median"] = statistics.median(values)
            if arm != base and base in args.arms:
                ratios = [row[base][what] / row[arm][what] for row in result["rounds"]]
                result["summary"][f"speedup_{arm}_vs_{base}_{what}"] = {
                    "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    print(result["summary"], "identical:", result["identical_per_seed_eval_returns"])
    write_results(result, args.out, plot)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(result["rounds"][0])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, what in enumerate(("wall_s", "cpu_s")):
        for j, arm in enumerate(arms):
            values = [row[arm][what] for row in result["rounds"]]
            ax.scatter([i * (len(arms) + 1) + j] * len(values), values, label=arm if i == 0 else None)
    ax.set_xticks([(len(arms) - 1) / 2, len(arms) + 1 + (len(arms) - 1) / 2], ["wall time", "CPU time"])
    ax.set_ylabel("seconds")
    ax.set_title(f"{len(result['seeds'])} seeds of {result['config']}, {result['budget']:,} env steps")
    ax.legend(fontsize=8)
    save_figure(fig, path, result)


if __name__ == "__main__":
    main()
