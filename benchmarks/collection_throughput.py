"""Collection throughput: env steps/s of metarl's collection against raw gymnasium stepping.

For each config's task family, three loops over the same env (``family.make_env``):

- ``raw``: gymnasium ``env.step`` with uniform random actions, reset when an episode ends
  (the ceiling: the simulator and gymnasium's wrappers only);
- ``collector_random``: metarl's collection path (TorchRL env + transforms + Collector, task
  schedule, history window) with the cold start's random actions: the framework's cost;
- ``collector_policy``: the same with the config's GRU actor in the loop, as in meta-training.

The three are measured in rounds, interleaved, and the median of each is kept, so a shared
machine's load affects them alike; the ratios are the result, the absolute rates depend on the load.

    python benchmarks/collection_throughput.py [--configs cheetah_fb ant_fb point_robot] [--frames 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout

from benchmarks.common import build_module, provenance, save_figure, write_results  # noqa: E402

LOOPS = ("raw", "collector_random", "collector_policy")


def raw_rate(family: Any, frames: int, seed: int) -> float:
    env = family.make_env(family.train_tasks[0])
    env.reset(seed=seed)
    env.action_space.seed(seed)
    t0 = time.perf_counter()
    for _ in range(frames):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    rate = frames / (time.perf_counter() - t0)
    env.close()
    return rate


def collector_rate(module: Any, frames: int, mode: str) -> float:
    t0 = time.perf_counter()
    batch = module.rollouts.collect(frames, mode)
    elapsed = time.perf_counter() - t0
    assert batch.shape[0] == frames, f"collected {batch.shape[0]} frames, asked for {frames}"
    return frames / elapsed


def measure(config: str, frames: int, rounds: int) -> dict[str, Any]:
    module = build_module(config)
    family = module.family
    for mode in ("random", "explore"):  # warm-up: builds the collectors, first-call overheads
        collector_rate(module, frames, mode)
    raw_rate(family, 200, 0)
    rates: dict[str, list[float]] = {name: [] for name in LOOPS}
    for r in range(rounds):
        rates["raw"].append(raw_rate(family, frames, r))
        rates["collector_random"].append(collector_rate(module, frames, "random"))
        rates["collector_policy"].append(collector_rate(module, frames, "explore"))
    med = {name: statistics.median(v) for name, v in rates.items()}
    return {
        "config": config, "family": family.name, "obs_dim": family.obs_dim, "act_dim": family.act_dim,
        "history_len": module.history_len, "actor_hidden": list(module.hparams["actor"]["init_args"]["hidden_sizes"])
        if isinstance(module.hparams.get("actor"), dict) else None,
        "frames_per_measurement": frames, "rounds": rounds,
        "steps_per_s": {k: round(v, 1) for k, v in med.items()},
        "steps_per_s_all_rounds": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        # Each round's loops ran back to back under about the same load: the ratio per round, then
        # its median, is steadier than the ratio of medians on a shared machine.
        "ratio_collector_policy_to_raw": statistics.median(
            p / r for p, r in zip(rates["collector_policy"], rates["raw"], strict=True)),
        "ratio_collector_random_to_raw": statistics.median(
            c / r for c, r in zip(rates["collector_random"], rates["raw"], strict=True)),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = {"raw": "raw gymnasium, random actions", "collector_random": "metarl collector, random actions",
              "collector_policy": "metarl collector, GRU policy"}
    fig, ax = plt.subplots(figsize=(8.5, 5))
    width = 0.8 / len(LOOPS)
    for i, loop in enumerate(LOOPS):
        xs = [j + (i - 1) * width for j in range(len(rows))]
        ys = [r["steps_per_s"][loop] for r in rows]
        bars = ax.bar(xs, ys, width, label=labels[loop])
        for bar, r in zip(bars, rows, strict=True):
            ratio = 1.0 if loop == "raw" else r[f"ratio_{loop}_to_raw"]
            top = (bar.get_x() + bar.get_width() / 2, bar.get_height())
            ax.annotate(f"{bar.get_height():.0f}\n({ratio:.2f}x)", top, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), [f"{r['config']}\n({r['family']})" for r in rows])
    ax.set_ylabel("env steps / s (median of rounds)")
    ax.set_yscale("log")
    ax.set_ylim(top=max(r["steps_per_s"]["raw"] for r in rows) * 3)
    ax.set_title("Collection throughput (in brackets: ratio to raw gymnasium, median over rounds)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["cheetah_fb", "ant_fb", "point_robot"])
    parser.add_argument("--frames", type=int, default=2000, help="env steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the policy's forward pass)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "collection_throughput.json")
    args = parser.parse_args()
    if args.frames < 1 or args.rounds < 1 or args.threads < 1:
        parser.error(f"--frames, --rounds and --threads must be >= 1, got {args.frames}, {args.rounds}, {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for config in args.configs:
        row = measure(config, args.frames, args.rounds)
        s = row["steps_per_s"]
        print(f"{config:12s} raw {s['raw']:8.0f}  collector(random) {s['collector_random']:7.0f}  "
              f"collector(policy) {s['collector_policy']:7.0f} steps/s  "
              f"policy/raw {row['ratio_collector_policy_to_raw']:.3f}", flush=True)
        rows.append(row)
    result = {"benchmark": "collection_throughput", "rows": rows, **provenance()}
    write_results(result, args.out, plot)


if __name__ == "__main__":
    main()
