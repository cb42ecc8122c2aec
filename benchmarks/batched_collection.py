"""Batched on-policy collection: env steps/s of metarl's batched collector against raw gymnasium
vector stepping of the same task envs (issue #13: the batched collection must reach >= 0.5x the raw
rate, measured in one run).

For each family and env count n, over the same n task envs (env i runs train task i mod #tasks):

- ``raw``: a plain loop over a ``gymnasium.vector.SyncVectorEnv`` of ``family.make_env(task)``
  (autoreset disabled, as metarl's), ``vec.step(vec.action_space.sample())``, resetting the envs
  whose episode ended through ``reset_mask``: the simulator and gymnasium only;
- ``collector_random``: ``metarl.data.rollouts.BatchedRollouts`` (``make_batched_env`` +
  ``make_batched_collector``) with uniform random actions: one batch of ``[n, horizon]``, task ids
  tagged; the framework's cost;
- ``collector_policy``: the same with a 64x64 tanh Gaussian MLP in the loop (MAML-PG's policy size).

Loops are built once per (family, n) and measured in interleaved rounds; the ratio per round, then its
median, is the result (a shared machine's load hits the loops of one round alike). Both wall-clock and
process CPU time are recorded (the CPU-time ratio is the one the load disturbs least), with the load
average before and after.

    python benchmarks/batched_collection.py [--families point-robot cheetah-vel] [--n-envs 1 16 64 256]
        [--frames 1500] [--min-steps 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout

from benchmarks.common import provenance, save_figure, write_results  # noqa: E402

LOOPS = ("raw", "collector_random", "collector_policy")


def _tasks(family: Any, n: int) -> list[Any]:
    return [family.train_tasks[i % len(family.train_tasks)] for i in range(n)]


class RawLoop:
    """The ceiling: gymnasium alone, on a SyncVectorEnv of the same task envs, built once."""

    def __init__(self, family: Any, n: int, horizon: int, seed: int) -> None:
        from gymnasium.vector import AutoresetMode, SyncVectorEnv

        self.vec = SyncVectorEnv([lambda t=t: family.make_env(t) for t in _tasks(family, n)],
                                 autoreset_mode=AutoresetMode.DISABLED)
        self.vec.reset(seed=seed)
        self.vec.action_space.seed(seed)
        self.horizon, self.frames = horizon, n * horizon
        self.run()  # warm-up

    def run(self) -> None:
        vec = self.vec
        for _ in range(self.horizon):
            _, _, terminated, truncated, _ = vec.step(vec.action_space.sample())
            done = np.logical_or(terminated, truncated)
            if done.any():
                vec.reset(options={"reset_mask": done})

    def rate(self) -> tuple[float, float]:
        return _timed(self.run, self.frames)

    def close(self) -> None:
        self.vec.close()


def _timed(fn: Any, frames: int) -> tuple[float, float]:
    """(wall-clock, process-CPU-time) steps/s of one call: CPU time is what a shared machine's load
    disturbs least (other processes' time is not counted), wall-clock is what a user waits."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return frames / (time.perf_counter() - w0), frames / max(time.process_time() - c0, 1e-9)


def gaussian_mlp_policy(obs_dim: int, act_dim: int) -> Any:
    """A 64x64 tanh Gaussian MLP (MAML-PG's policy), sampling a = clip(mean + 0.1 N(0, 1), -1, 1)."""
    import torch
    from tensordict.nn import TensorDictModule
    from torch import nn

    class Act(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mean = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                      nn.Linear(64, act_dim))

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            mean = self.mean(obs)
            return (mean + 0.1 * torch.randn_like(mean)).clamp(-1.0, 1.0)

    return TensorDictModule(Act(), in_keys=["observation"], out_keys=["action"])


class BatchedLoop:
    """metarl's batched collection (``BatchedRollouts``) over n envs, built once (building resets the
    envs and runs the policy)."""

    def __init__(self, family: Any, n: int, horizon: int, policy: Any, seed: int) -> None:
        from metarl.data.rollouts import BatchedRollouts

        self.rollouts = BatchedRollouts(family, _tasks(family, n), horizon, seed, policy)
        self.frames = n * horizon
        self.run()  # warm-up: first-call overheads

    def run(self) -> None:
        import torch

        with torch.no_grad():
            data = self.rollouts.collect()
        assert data.numel() == self.frames, f"collected {data.numel()} frames, expected {self.frames}"

    def rate(self) -> tuple[float, float]:
        return _timed(self.run, self.frames)

    def close(self) -> None:
        self.rollouts.close()


def measure(name: str, n: int, frames: int, min_steps: int, rounds: int) -> dict[str, Any]:
    from metarl.envs import make_task_family

    family = make_task_family(name)
    horizon = max(min_steps, frames // n)
    loops = {
        "raw": RawLoop(family, n, horizon, seed=0),
        "collector_random": BatchedLoop(family, n, horizon, None, seed=0),
        "collector_policy": BatchedLoop(family, n, horizon, gaussian_mlp_policy(family.obs_dim, family.act_dim), 1),
    }
    wall: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    cpu: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    for _ in range(rounds):
        for loop in LOOPS:
            w, c = loops[loop].rate()
            wall[loop].append(w)
            cpu[loop].append(c)
    for runner in loops.values():
        runner.close()

    def ratio(rates: dict[str, list[float]], loop: str) -> float:
        return round(statistics.median(c / r for c, r in zip(rates[loop], rates["raw"], strict=True)), 3)

    return {
        "family": name, "n_envs": n, "horizon": horizon, "frames_per_measurement": n * horizon, "rounds": rounds,
        "obs_dim": family.obs_dim, "act_dim": family.act_dim, "episode_steps": family.max_episode_steps,
        "steps_per_s": {k: round(statistics.median(v), 1) for k, v in wall.items()},
        "steps_per_s_all_rounds": {k: [round(x, 1) for x in v] for k, v in wall.items()},
        "ratio_collector_random_to_raw": ratio(wall, "collector_random"),
        "ratio_collector_policy_to_raw": ratio(wall, "collector_policy"),
        "cpu_steps_per_s": {k: round(statistics.median(v), 1) for k, v in cpu.items()},
        "cpu_ratio_collector_random_to_raw": ratio(cpu, "collector_random"),
        "cpu_ratio_collector_policy_to_raw": ratio(cpu, "collector_policy"),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(r["family"] for r in result["rows"]))
    fig, axes = plt.subplots(1, len(families), figsize=(5.5 * len(families), 4.5), squeeze=False)
    labels = {"raw": "raw gymnasium SyncVectorEnv", "collector_random": "metarl batched collector, random",
              "collector_policy": "metarl batched collector, 64x64 MLP"}
    for ax, fam in zip(axes[0], families, strict=True):
        rows = [r for r in result["rows"] if r["family"] == fam]
        ns = [r["n_envs"] for r in rows]
        for loop in LOOPS:
            ax.plot(ns, [r["steps_per_s"][loop] for r in rows], marker="o", label=labels[loop])
        for r in rows:
            at = (r["n_envs"], r["steps_per_s"]["collector_random"])
            ax.annotate(f"{r['ratio_collector_random_to_raw']:.2f}x", at, textcoords="offset points", xytext=(4, -12),
                        fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("envs stepped together")
        ax.set_ylabel("env steps / s (median of rounds)")
        ax.set_title(fam, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Batched on-policy collection vs raw gymnasium (load avg "
                 f"{result['load_avg_before']} -> {result['load_avg_after']})", fontsize=9)
    save_figure(fig, path, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["point-robot", "cheetah-vel"])
    parser.add_argument("--n-envs", nargs="+", type=int, default=[1, 16, 64, 256])
    parser.add_argument("--frames", type=int, default=1500, help="env steps per measurement (all envs together)")
    parser.add_argument("--min-steps", type=int, default=50, help="vector steps per measurement at least")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the policy's forward pass)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "batched_collection.json")
    args = parser.parse_args()
    if min(args.frames, args.min_steps, args.rounds, args.threads, *args.n_envs) < 1:
        parser.error("--frames, --min-steps, --rounds, --threads and every --n-envs must be >= 1")
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    rows = []
    for fam in args.families:
        for n in args.n_envs:
            row = measure(fam, n, args.frames, args.min_steps, args.rounds)
            s = row["steps_per_s"]
            print(f"{fam:12s} n={n:3d}  raw {s['raw']:8.0f}  collector(random) {s['collector_random']:8.0f}  "
                  f"collector(policy) {s['collector_policy']:8.0f} steps/s  random/raw "
                  f"{row['ratio_collector_random_to_raw']:.3f} (cpu {row['cpu_ratio_collector_random_to_raw']:.3f})  "
                  f"policy/raw {row['ratio_collector_policy_to_raw']:.3f} "
                  f"(cpu {row['cpu_ratio_collector_policy_to_raw']:.3f})", flush=True)
            rows.append(row)
    result = {"benchmark": "batched_collection", "rows": rows, "wall_s": round(time.perf_counter() - t0, 1),
              "load_avg_before": load_before, "load_avg_after": [round(x, 2) for x in os.getloadavg()],
              **provenance()}
    write_results(result, args.out, plot)


if __name__ == "__main__":
    main()
