"""Cold-start collection: env steps/s of MQL's random-action cold start against raw gymnasium random
stepping of the same env (issue #15: at least 0.5x the raw rate, measured in one run).

For each config, over its task family and its own cold-start settings:

- ``raw``: a plain gymnasium loop over ``family.make_env(train task 0)``: ``env.step(env.action_space
  .sample())``, resetting when an episode ends or reaches the cold start's episode cap (as the released
  MQL code's cold-start loop does): the simulator and gymnasium only;
- ``metarl``: ``MQLMetaTrain._collect()`` of the config's module during its cold start: the batched
  collection (``metarl.data.cold_start``) and the write into the replay, one iteration per measurement;
- ``single_env``: the path it replaced: ``Rollouts.collect(frames, "random", episode_cap)`` plus the
  per-episode replay writes (``--single-env-frames`` steps per measurement).

Loops are built once and warmed up (the first cold-start iteration builds its envs: timed separately),
then measured in interleaved rounds; the ratio per round, then its median and range, is the result (a
shared machine's load hits the loops of one round alike). Wall-clock and process CPU time are both
recorded, with the load average before and after.

    python benchmarks/cold_start_collection.py [--configs cheetah_fb ant_fb point_robot] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout

from benchmarks.common import build_module, provenance, save_figure, write_results  # noqa: E402

LOOPS = ("raw", "metarl", "single_env")


def _timed(fn: Any) -> tuple[float, float, int]:
    w0, c0 = time.perf_counter(), time.process_time()
    frames = fn()
    return frames / (time.perf_counter() - w0), frames / max(time.process_time() - c0, 1e-9), frames


class Raw:
    def __init__(self, family: Any, cap: int) -> None:
        self.env, self.cap = family.make_env(family.train_tasks[0]), cap
        self.env.reset(seed=0)
        self.env.action_space.seed(0)

    def run(self, frames: int) -> int:
        env, t = self.env, 0
        env.reset()
        for _ in range(frames):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            t += 1
            if terminated or truncated or t == self.cap:
                env.reset()
                t = 0
        return frames


class ColdStart:
    """The module's own cold start, iteration by iteration; rewound to its first iteration when over
    (episode ids keep counting up, so the replay's write checks still hold)."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def run(self) -> int:
        m = self.module
        if m.env_steps >= m.collect_cfg.cold_start_steps:
            m.env_steps = 0
        before = m.env_steps
        m._collect()
        return m.env_steps - before


class SingleEnv:
    """The replaced path: one env through TorchRL's collector, episodes written one by one."""

    def __init__(self, module: Any, cap: int, frames: int) -> None:
        from metarl.data.replay import MultiTaskReplay

        self.module, self.cap, self.frames = module, cap, frames
        fam = module.family
        self.replay = MultiTaskReplay(len(fam.train_tasks), 200_000, fam.obs_dim, fam.act_dim, module.history_len)
        self.n_episodes = 0

    def run(self) -> int:
        from metarl import keys
        from metarl.data.replay import episode_to_replay
        from metarl.data.rollouts import split_episodes

        ro = self.module.rollouts
        ro.sampler.mode = "cycle"
        batch = ro.collect(self.frames, "random", episode_cap=self.cap)
        for ep in split_episodes(batch):
            self.replay.extend(episode_to_replay(ep, int(ep[keys.TASK_ID][0]), self.n_episodes))
            self.n_episodes += 1
        return batch.shape[0]


def measure(config: str, rounds: int, single_env_frames: int) -> dict[str, Any]:
    module = build_module(config)
    cfg, family = module.collect_cfg, module.family
    cap = module._cold_start_len()
    t0 = time.perf_counter()
    cold = ColdStart(module)
    first = cold.run()  # builds the batched envs
    build_s = time.perf_counter() - t0
    frames = module.iteration_env_steps(module.env_steps if module.env_steps < cfg.cold_start_steps else 0)
    raw, single = Raw(family, cap), SingleEnv(module, cap, single_env_frames)
    raw.run(200)
    single.run()
    runs = {"raw": lambda: raw.run(frames), "metarl": cold.run, "single_env": single.run}
    wall: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    cpu: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    steps: dict[str, list[int]] = {loop: [] for loop in LOOPS}
    for _ in range(rounds):
        for loop in LOOPS:
            w, c, n = _timed(runs[loop])
            wall[loop].append(w)
            cpu[loop].append(c)
            steps[loop].append(n)

    def ratios(rates: dict[str, list[float]], loop: str) -> list[float]:
        return [round(a / r, 3) for a, r in zip(rates[loop], rates["raw"], strict=True)]

    def summary(values: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}

    speedup = [round(a / b, 2) for a, b in zip(wall["metarl"], wall["single_env"], strict=True)]
    return {
        "config": config, "family": family.name, "obs_dim": family.obs_dim, "act_dim": family.act_dim,
        "train_tasks": len(family.train_tasks), "cold_start_steps": cfg.cold_start_steps,
        "cold_start_episode_len": cap, "cold_start_envs": cfg.cold_start_envs, "rounds": rounds,
        "first_iteration_s_with_env_build": round(build_s, 3), "first_iteration_steps": first,
        "steps_per_measurement": {k: v[-1] for k, v in steps.items()},
        "steps_per_s": {k: round(statistics.median(v), 1) for k, v in wall.items()},
        "steps_per_s_all_rounds": {k: [round(x, 1) for x in v] for k, v in wall.items()},
        "ratio_metarl_to_raw": summary(ratios(wall, "metarl")),
        "ratio_metarl_to_raw_all_rounds": ratios(wall, "metarl"),
        "ratio_single_env_to_raw": summary(ratios(wall, "single_env")),
        "speedup_metarl_over_single_env": summary(speedup),
        "cpu_steps_per_s": {k: round(statistics.median(v), 1) for k, v in cpu.items()},
        "cpu_ratio_metarl_to_raw": summary(ratios(cpu, "metarl")),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = {"raw": "raw gymnasium, random actions", "metarl": "metarl cold start (batched)",
              "single_env": "single-env collector (replaced)"}
    fig, ax = plt.subplots(figsize=(8.5, 5))
    width = 0.8 / len(LOOPS)
    for i, loop in enumerate(LOOPS):
        xs = [j + (i - 1) * width for j in range(len(rows))]
        bars = ax.bar(xs, [r["steps_per_s"][loop] for r in rows], width, label=labels[loop])
        for bar, r in zip(bars, rows, strict=True):
            ratio = 1.0 if loop == "raw" else r[f"ratio_{loop}_to_raw"]["median"]
            top = (bar.get_x() + bar.get_width() / 2, bar.get_height())
            ax.annotate(f"{bar.get_height():.0f}\n({ratio:.2f}x)", top, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), [f"{r['config']}\n({r['family']})" for r in rows])
    ax.set_ylabel("env steps / s (median of rounds)")
    ax.set_yscale("log")
    ax.set_ylim(top=max(max(r["steps_per_s"].values()) for r in rows) * 3)
    ax.set_title(f"Cold-start collection (ratio to raw, median of per-round ratios); load avg "
                 f"{result['load_avg_before']} -> {result['load_avg_after']}", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["cheetah_fb", "ant_fb", "point_robot"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--single-env-frames", type=int, default=1000, help="steps per single-env measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cold_start_collection.json")
    args = parser.parse_args()
    if args.rounds < 1 or args.single_env_frames < 1:
        parser.error("--rounds and --single-env-frames must be >= 1")
    import torch

    torch.set_num_threads(1)
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for config in args.configs:
        row = measure(config, args.rounds, args.single_env_frames)
        r = row["ratio_metarl_to_raw"]
        print(f"{config:12s} raw {row['steps_per_s']['raw']:8.0f}  metarl {row['steps_per_s']['metarl']:8.0f}  "
              f"single-env {row['steps_per_s']['single_env']:7.0f} steps/s  metarl/raw {r['median']:.2f} "
              f"({r['min']:.2f}-{r['max']:.2f})  speed-up {row['speedup_metarl_over_single_env']['median']:.1f}x",
              flush=True)
        rows.append(row)
    result = {"benchmark": "cold_start_collection", "rows": rows, "load_avg_before": load_before,
              "load_avg_after": [round(x, 2) for x in os.getloadavg()], **provenance()}
    write_results(result, args.out, plot)


if __name__ == "__main__":
    main()
