"""Seed-batched update (issue #15): N seeds' TD3+GRU updates as one, against one seed's GEMM floor.

At the Ant-FB config's sizes (``configs/ant_fb.yaml``: batch, history length, GRU hidden size,
300-300 actor and twin critics, policy delay), in one run, per round and interleaved (the order rotates
each round, so a shared machine's load hits all alike):

- ``single``: metarl's single-seed update (``MQLMetaTrain.td3_update`` with ``make_optimizers()``,
  the module ``python -m metarl fit --config ant_fb.yaml`` builds), one seed;
- ``batched_N``: ``SeedBatchedTD3Nets.td3_update`` over N seeds' stacked nets (each seed's nets built
  by the CLI with ``--model.init_args.seed=k``), for each N of ``--seeds``; its time per update is
  divided by N (per-seed time);
- ``floor``: the GEMM floor of ONE seed's update (``benchmarks/gemm_floor.py``: every matrix multiply
  of ``single``'s update recorded once with its shapes, then each shape timed alone and summed). It is
  re-timed in every round, so each round's ratio is paired.

The results are per-round ratios: batched per-seed time / floor, batched per-seed time / single, and
their medians and ranges. The batched update's own GEMMs (per seed) are recorded too, to tell apart
time lost to non-GEMM work from batched GEMMs that run slower than the single-seed ones. Replay
sampling is excluded (pre-drawn random batches with a replay sample's keys and shapes).

    python benchmarks/seed_batched_update.py [--rounds 9] [--updates 40] [--threads 1 2] [--seeds 1 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from tensordict import TensorDict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout

from benchmarks.common import build_module, provenance  # noqa: E402
from benchmarks.gemm_floor import gemm_floor, record_gemms, time_gemm  # noqa: E402
from benchmarks.update_throughput import CONFIG, make_batches, sizes_of  # noqa: E402
from metarl.methods.mql.seed_batched import SeedBatchedTD3Nets  # noqa: E402

N_BATCHES = 4


class Stacked(SeedBatchedTD3Nets, pl.LightningModule):
    def __init__(self, modules: list[Any]) -> None:
        super().__init__()
        self.stack_nets(modules)


class Loop:
    """One update loop: ``update(i)`` runs update i on its pre-drawn batches."""

    def __init__(self, nets: Any, batches: list[TensorDict], per_update_seeds: int) -> None:
        self.nets, self.batches, self.n = nets, batches, per_update_seeds
        self.critic_opt, self.actor_opt = nets.make_optimizers()
        self.td3 = nets.td3

    def update(self, i: int) -> None:
        b = self.batches[i % len(self.batches)]
        self.nets.td3_update(b, i, self.critic_opt, self.actor_opt, self.td3, b["noise"])


def build_seeds(n: int) -> list[Any]:
    argv, sys.argv = sys.argv, sys.argv[:1]  # the CLI parses only the overrides, not this script's flags
    try:
        return [build_module(CONFIG, f"--model.init_args.seed={k}", "--model.init_args.collect.replay_size=10000")
                for k in range(n)]
    finally:
        sys.argv = argv


def stacked_batches(sizes: dict[str, Any], n: int) -> list[TensorDict]:
    """Seed k's batches are drawn from their own generator; stacked on a leading seed dimension."""
    per_seed = [make_batches(sizes, N_BATCHES, seed=10 + k) for k in range(n)]
    return [torch.stack([per_seed[k][j] for k in range(n)]) for j in range(N_BATCHES)]


def timed_updates(loop: Loop, start: int, n: int) -> float:
    """Seconds per update (all seeds of the loop)."""
    t0 = time.perf_counter()
    for i in range(start, start + n):
        loop.update(i)
    return (time.perf_counter() - t0) / n


def record(loop: Loop, n_updates: int) -> Counter:
    def step() -> None:
        for i in range(n_updates):
            loop.update(i)
    return record_gemms(step, n_updates)


def floor_seconds(calls: Counter, n_updates: int, repeats: int) -> float:
    """Seconds per update in GEMMs alone (one timing of every recorded shape)."""
    return sum(time_gemm(name, shapes, repeats) * count for (name, shapes), count in calls.items()) / n_updates


def summary(xs: list[float]) -> dict[str, Any]:
    return {"rounds": xs, "median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def measure(loops: dict[str, Loop], calls: Counter, cycle: int, rounds: int, updates: int, warmup: int,
            repeats: int) -> dict[str, Any]:
    names = list(loops)
    for name in names:
        timed_updates(loops[name], 0, warmup)
    per_seed_ms: dict[str, list[float]] = {name: [] for name in names}
    floor_ms: list[float] = []
    step = warmup
    for r in range(rounds):
        order = [*names, "floor"]
        order = order[r % len(order):] + order[:r % len(order)]
        for name in order:
            if name == "floor":
                floor_ms.append(floor_seconds(calls, cycle, repeats) * 1e3)
            else:
                per_seed_ms[name].append(timed_updates(loops[name], step, updates) / loops[name].n * 1e3)
        step += updates
        print(f"  round {r + 1}/{rounds}: floor {floor_ms[-1]:.2f} ms  "
              + "  ".join(f"{n} {per_seed_ms[n][-1]:.2f}" for n in names) + " ms/seed", flush=True)
    out: dict[str, Any] = {"per_seed_ms": {n: summary(v) for n, v in per_seed_ms.items()},
                           "floor_ms": summary(floor_ms)}
    out["ratio_to_floor"] = {n: summary([a / f for a, f in zip(v, floor_ms, strict=True)])
                             for n, v in per_seed_ms.items()}
    out["ratio_to_single"] = {n: summary([a / s for a, s in zip(v, per_seed_ms["single"], strict=True)])
                              for n, v in per_seed_ms.items() if n != "single"}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--updates", type=int, default=40, help="updates per loop per round")
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20, help="timings per GEMM shape per round")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4], help="N of the batched loops")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "seed_batched_update.json")
    args = parser.parse_args()
    if min(args.rounds, args.updates, args.repeats, *args.threads, *args.seeds) < 1:
        parser.error("--rounds, --updates, --repeats, --threads and --seeds must be >= 1")
    load_before = [round(x, 2) for x in os.getloadavg()]
    modules = build_seeds(max(args.seeds))
    sizes = sizes_of(modules[0])
    cycle = sizes["policy_freq"]
    single_batches = make_batches(sizes, N_BATCHES, seed=10)
    loops: dict[str, Loop] = {"single": Loop(modules[0], single_batches, 1)}
    for n in args.seeds:
        stacked = Stacked(modules[:n])
        stacked.td3 = modules[0].td3
        loops[f"batched_{n}"] = Loop(stacked, stacked_batches(sizes, n), n)
    default_threads = torch.get_num_threads()
    by_threads: dict[str, Any] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"torch threads {threads}:", flush=True)
        calls = record(loops["single"], cycle)
        res = measure(loops, calls, cycle, args.rounds, args.updates, args.warmup, args.repeats)
        res["single_floor_table"] = gemm_floor(lambda: [loops["single"].update(i) for i in range(cycle)], cycle,
                                               args.repeats)
        for n in args.seeds:
            loop = loops[f"batched_{n}"]
            table = gemm_floor(lambda loop=loop: [loop.update(i) for i in range(cycle)], cycle, args.repeats)
            res[f"batched_{n}_own_gemms_ms_per_seed"] = table["seconds_per_update"] * 1e3 / n
            res[f"batched_{n}_own_gemm_table"] = table
        by_threads[str(threads)] = res
    torch.set_num_threads(default_threads)
    result = {
        "benchmark": "seed_batched_update", "config": CONFIG, "sizes": sizes, "seeds": args.seeds,
        "rounds": args.rounds, "updates_per_round": args.updates, "warmup_updates": args.warmup,
        "gemm_repeats_per_round": args.repeats, "load_avg_1_5_15min_before": load_before,
        "replay_sampling": "excluded (pre-drawn random batches with a replay sample's keys and shapes)",
        "by_threads": by_threads, "gpu": "not measured: no GPU was lent to this task",
        "load_avg_1_5_15min_after": [round(x, 2) for x in os.getloadavg()], **provenance(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for threads, res in by_threads.items():
        print(f"torch threads {threads}: GEMM floor of one seed's update {res['floor_ms']['median']:.2f} ms "
              f"(rounds {res['floor_ms']['min']:.2f}-{res['floor_ms']['max']:.2f})")
        for name, r in res["per_seed_ms"].items():
            f = res["ratio_to_floor"][name]
            line = (f"  {name:12s} {r['median']:6.2f} ms per seed-update  x{f['median']:.2f} floor "
                    f"(rounds x{f['min']:.2f}-x{f['max']:.2f})")
            if name in res["ratio_to_single"]:
                s = res["ratio_to_single"][name]
                line += f"  x{s['median']:.2f} single (rounds x{s['min']:.2f}-x{s['max']:.2f})"
                line += f"  own GEMMs {res[f'{name}_own_gemms_ms_per_seed']:.2f} ms/seed"
            print(line)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
