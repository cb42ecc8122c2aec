"""Adaptation cost: wall-clock seconds per eval task of MQL's evaluation (the validation loop's unit).

One eval task costs: ``eval.episodes`` deterministic episodes with the meta-trained policy, the
adaptation (logistic classifier of eq. 11, ``new_data_updates`` eq.-18 updates on the new episode,
``old_data_updates`` eq.-19 updates on ``old_data_batch`` meta-training samples), then
``eval.episodes`` episodes with the adapted policy: ``metarl.methods.mql.evaluate_task``.

The module is the config's (Ant-FB by default), either fresh with its replay filled by the
config's cold start (random actions, as meta-training starts) or loaded from ``--ckpt``. The cost
hardly depends on the weights, except through episode lengths (an Ant that falls ends its episode
early), so the JSON records the episode count and time. The parts (episodes, classifier, updates)
are timed inside the same ``evaluate_task`` calls. Seconds depend on the machine's load; the cost
in meta-training updates (timed just before each task, in the same process) much less.

    python benchmarks/adaptation_cost.py [--config ant_fb] [--ckpt runs/.../last.ckpt] [--repeats 2] [-- FIT_ARGS]

Arguments after ``--`` go to the config as in ``python -m metarl fit`` (e.g. ``--config debug.yaml``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout

from benchmarks.common import build_module, provenance, save_figure, write_results  # noqa: E402


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def load_module(config: str, ckpt: Path | None, fill_steps: int | None, overrides: list[str]) -> Any:
    if ckpt is not None:
        from metarl.methods.mql import MQLMetaTrain

        return MQLMetaTrain.load_from_checkpoint(str(ckpt), map_location="cpu")
    module = build_module(config, *overrides)
    target = module.collect_cfg.cold_start_steps if fill_steps is None else fill_steps
    # Meta-training's own cold start (random actions, short episodes cycling through the tasks)
    # fills the replay the adaptation samples from.
    while module.env_steps < target:
        module._collect()
    return module


@contextlib.contextmanager
def part_timers(module: Any) -> Iterator[dict[str, float]]:
    """Seconds spent in the parts of ``evaluate_task`` while it runs: its episodes, the adaptation
    and, inside it, the classifier fit. The wrapped calls behave exactly as before."""
    from metarl.methods.mql import MQLAdapt

    acc = {"episodes": 0.0, "adaptation": 0.0, "classifier_fit": 0.0, "n_episodes": 0}

    def wrap(fn: Any, key: str) -> Any:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[key] += time.perf_counter() - t0
                if key == "episodes":
                    acc["n_episodes"] += 1

        return timed_call

    rollouts = module.eval_rollouts
    saved = (MQLAdapt.adapt, MQLAdapt.fit_classifier)
    rollouts.run_episode = wrap(rollouts.run_episode, "episodes")
    MQLAdapt.adapt = wrap(saved[0], "adaptation")  # type: ignore[method-assign]
    MQLAdapt.fit_classifier = wrap(saved[1], "classifier_fit")  # type: ignore[method-assign]
    try:
        yield acc
    finally:
        del rollouts.run_episode  # back to the class's method
        MQLAdapt.adapt, MQLAdapt.fit_classifier = saved  # type: ignore[method-assign]


def update_seconds(module: Any, n: int = 20) -> float:
    """Seconds per meta-training TD3 update (the config's batch, its optimizers), on a copy of the
    nets so the module is unchanged: the same-run reference that makes the cost comparable across
    loads ("one eval task costs as much as N meta-training updates")."""
    import torch

    from metarl.methods.mql import MQLAdapt

    copy = MQLAdapt(module, seed=0)
    critic_opt, actor_opt = copy.make_optimizers()
    gen = torch.Generator().manual_seed(0)
    with torch.enable_grad():
        for i in range(n + 2):  # two warm-up updates (one with the actor step)
            if i == 2:
                t0 = time.perf_counter()
            batch = module.replay.sample(module.batch_size, gen)
            copy.td3_update(batch, i, critic_opt, actor_opt, module.td3, torch.randn(batch.shape[0], copy.act_dim))
    return (time.perf_counter() - t0) / n


def measure(module: Any, repeats: int) -> dict[str, Any]:
    from metarl.methods.mql import evaluate_task

    n_tasks = len(module.family.eval_tasks)
    k = n_tasks if module.eval_cfg.num_tasks is None else min(module.eval_cfg.num_tasks, n_tasks)
    per_task = []
    for rep in range(repeats):
        for task in range(k):
            update_s = update_seconds(module)  # just before, under the same load
            with part_timers(module) as parts:
                result, seconds = timed(evaluate_task, module, task)
            per_task.append({
                "task": task, "pass": rep + 1, "seconds": seconds, "meta_update_s": update_s,
                "meta_updates_equivalent": seconds / update_s,
                "episodes_s": parts["episodes"], "n_episodes": parts["n_episodes"],
                "classifier_fit_s": parts["classifier_fit"],
                "td3_updates_s": parts["adaptation"] - parts["classifier_fit"],
                "other_s": seconds - parts["episodes"] - parts["adaptation"],
                "return_pre_adapt": result.return_pre, "return_post_adapt": result.return_post,
            })
    totals = [t["seconds"] for t in per_task]
    cfg, a = module.eval_cfg, module.adapt_cfg
    return {
        "seconds_per_eval_task": {"median": statistics.median(totals), "mean": statistics.fmean(totals),
                                  "min": min(totals), "max": max(totals), "n": len(totals)},
        "parts_seconds_median": {key: statistics.median(t[key] for t in per_task)
                                 for key in ("episodes_s", "classifier_fit_s", "td3_updates_s", "other_s")},
        "meta_updates_equivalent_median": statistics.median(t["meta_updates_equivalent"] for t in per_task),
        "tasks": per_task,
        "settings": {"eval_episodes": cfg.episodes, "eval_tasks": k, "new_data_updates": a.new_data_updates,
                     "old_data_updates": a.old_data_updates, "old_data_batch": a.old_data_batch,
                     "history_len": module.history_len, "replay_transitions": len(module.replay),
                     "env_steps": module.env_steps},
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["settings"]
    parts = [("episodes_s", f"{2 * s['eval_episodes']} eval episodes"), ("classifier_fit_s", "classifier fit (eq. 11)"),
             ("td3_updates_s", f"{s['new_data_updates']} + {s['old_data_updates']} TD3 updates (eqs. 18-19)"),
             ("other_s", "other")]
    tasks = result["tasks"]
    fig, ax = plt.subplots(figsize=(11, 1.9 + 0.45 * len(tasks)))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, t in enumerate(tasks):
        left = 0.0
        for j, (key, label) in enumerate(parts):
            ax.barh([i], [t[key]], left=left, color=colors[j], label=label if i == 0 else None)
            left += t[key]
        ax.annotate(f"{t['seconds']:.1f} s", (left, i), xytext=(4, 0), textcoords="offset points", va="center",
                    fontsize=8)
    ax.set_yticks(range(len(tasks)), [f"eval task {t['task']}, pass {t['pass']}" for t in tasks])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    med = result["seconds_per_eval_task"]["median"]
    ax.set_title(f"Adaptation cost per eval task, {result['config']}.yaml: median {med:.1f} s = "
                 f"{result['meta_updates_equivalent_median']:.0f} meta-training updates "
                 f"(old-data batch {s['old_data_batch']}, H={s['history_len']})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, path, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ant_fb")
    parser.add_argument("--ckpt", type=Path, default=None, help="a meta-trained checkpoint (default: fresh)")
    parser.add_argument("--fill-steps", type=int, default=None, help="cold-start env steps (default: the config's)")
    parser.add_argument("--repeats", type=int, default=2, help="passes over the eval tasks")
    # One thread by default: on a shared machine, torch's default (all cores) oversubscribes them and
    # the timing measures the contention (10x slower here), not metarl.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default, all cores)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "adaptation_cost.json")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.repeats < 1 or args.threads < 0:
        parser.error(f"--repeats must be >= 1 and --threads >= 0, got {args.repeats} and {args.threads}")
    if args.ckpt is not None and not args.ckpt.is_file():
        parser.error(f"--ckpt {args.ckpt} is not a file")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    module, fill_s = timed(load_module, args.config, args.ckpt, args.fill_steps, extra)
    print(f"module ready ({module.env_steps} env steps in the replay) in {fill_s:.0f} s", flush=True)
    result = {"benchmark": "adaptation_cost", "config": args.config.removesuffix(".yaml"),
              "checkpoint": None if args.ckpt is None else str(args.ckpt), "fit_overrides": extra,
              "setup_seconds": fill_s, **measure(module, args.repeats),
              **provenance()}
    p = result["parts_seconds_median"]
    print(f"{result['seconds_per_eval_task']['median']:.2f} s per eval task, median of "
          f"{result['seconds_per_eval_task']['n']} (episodes {p['episodes_s']:.2f} s, classifier "
          f"{p['classifier_fit_s']:.2f} s, updates {p['td3_updates_s']:.2f} s, other {p['other_s']:.2f} s) = "
          f"{result['meta_updates_equivalent_median']:.0f} meta-training updates")
    write_results(result, args.out, plot)


if __name__ == "__main__":
    main()
