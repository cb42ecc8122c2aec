"""Adaptation cost: wall-clock seconds per eval task of MQL's evaluation (the validation loop's unit).

One eval task costs: ``eval.episodes`` deterministic episodes with the meta-trained policy, the
adaptation (logistic classifier of eq. 11, ``new_data_updates`` eq.-18 updates on the new episode,
``old_data_updates`` eq.-19 updates on ``old_data_batch`` meta-training samples), then
``eval.episodes`` episodes with the adapted policy: ``metarl.training.evaluation.evaluate_task``.

The module is the config's (Ant-FB by default), either fresh with its replay filled by the
config's cold start (random actions, as meta-training starts) or loaded from ``--ckpt``. The cost
hardly depends on the weights, except through episode lengths (an Ant that falls ends its episode
early), so the JSON records them. The parts are timed separately, after the headline numbers.

    python benchmarks/adaptation_cost.py [--config ant_fb] [--ckpt runs/.../last.ckpt] [--repeats 1] [-- FIT_ARGS]

Arguments after ``--`` go to the config as in ``python -m metarl fit`` (e.g. ``--config debug.yaml``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout

from benchmarks.common import build_module, provenance, stamp  # noqa: E402


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def load_module(config: str, ckpt: Path | None, fill_steps: int | None, overrides: list[str]) -> Any:
    if ckpt is not None:
        from metarl.training.meta_train import MetaTrainModule

        return MetaTrainModule.load_from_checkpoint(str(ckpt), map_location="cpu")
    module = build_module(config, *overrides)
    target = module.collect_cfg.cold_start_steps if fill_steps is None else fill_steps
    # Meta-training's own cold start (random actions, short episodes cycling through the tasks)
    # fills the replay the adaptation samples from.
    while module.env_steps < target:
        module._collect()
    return module


def measure(module: Any, repeats: int) -> dict[str, Any]:
    import torch

    from metarl import keys
    from metarl.training.adapt import AdaptModule
    from metarl.training.evaluation import evaluate_task

    n_tasks = len(module.family.eval_tasks)
    k = n_tasks if module.eval_cfg.num_tasks is None else min(module.eval_cfg.num_tasks, n_tasks)
    totals, per_task = [], []
    for _ in range(repeats):
        for task in range(k):
            result, seconds = timed(evaluate_task, module, task)
            totals.append(seconds)
            per_task.append({"task": task, "seconds": seconds, "return_pre_adapt": result.return_pre,
                             "return_post_adapt": result.return_post})
    # The parts, on task 0: one deterministic episode, the whole adaptation, the classifier alone.
    module.eval_rollouts.policy.use(module.actor, module.actor_encoder)
    episode, episode_s = timed(module.eval_rollouts.run_episode, 0)
    adapter = AdaptModule(module, seed=0)
    with torch.enable_grad():
        _, adapt_s = timed(adapter.adapt, episode)
    from metarl.data.replay import MultiTaskReplay, episode_to_replay

    new = MultiTaskReplay(1, episode.shape[0], module.family.obs_dim, module.family.act_dim, module.history_len)
    new.extend(episode_to_replay(episode, 0, 0))
    _, classifier_s = timed(AdaptModule(module, seed=0).fit_classifier, new)
    cfg, a = module.eval_cfg, module.adapt_cfg
    return {
        "seconds_per_eval_task": {"mean": statistics.fmean(totals), "min": min(totals), "max": max(totals),
                                  "n": len(totals)},
        "tasks": per_task,
        "parts_seconds": {
            "one_episode": episode_s, "episodes_per_task": 2 * cfg.episodes,
            "adaptation_total": adapt_s, "classifier_fit": classifier_s,
            "td3_updates": adapt_s - classifier_s,
        },
        "episode_len": int(episode.shape[0]), "episode_return": float(episode[keys.REWARD].sum()),
        "settings": {"eval_episodes": cfg.episodes, "eval_tasks": k, "new_data_updates": a.new_data_updates,
                     "old_data_updates": a.old_data_updates, "old_data_batch": a.old_data_batch,
                     "history_len": module.history_len, "replay_transitions": len(module.replay),
                     "env_steps": module.env_steps},
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = result["parts_seconds"]
    names = [f"{parts['episodes_per_task']} eval episodes", "classifier fit (eq. 11)",
             "TD3 updates (eqs. 18-19)"]
    values = [parts["one_episode"] * parts["episodes_per_task"], parts["classifier_fit"], parts["td3_updates"]]
    s = result["settings"]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    left = 0.0
    for name, value in zip(names, values, strict=True):
        ax.barh([0], [value], left=left, label=f"{name}: {value:.1f} s")
        left += value
    total = result["seconds_per_eval_task"]["mean"]
    ax.barh([1], [total], color="grey", label=f"measured evaluate_task: {total:.1f} s (mean of "
            f"{result['seconds_per_eval_task']['n']})")
    ax.set_yticks([0, 1], ["parts (timed separately)", "one eval task"])
    ax.set_xlabel("seconds")
    ax.set_title(f"Adaptation cost per eval task: {result['config']}.yaml ({s['new_data_updates']} + "
                 f"{s['old_data_updates']} updates, old-data batch {s['old_data_batch']}, H={s['history_len']})",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2)
    fig.text(0.99, 0.01, stamp(result), ha="right", va="bottom", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ant_fb")
    parser.add_argument("--ckpt", type=Path, default=None, help="a meta-trained checkpoint (default: fresh)")
    parser.add_argument("--fill-steps", type=int, default=None, help="cold-start env steps (default: the config's)")
    parser.add_argument("--repeats", type=int, default=1, help="passes over the eval tasks")
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
    p = result["parts_seconds"]
    print(f"{result['seconds_per_eval_task']['mean']:.2f} s per eval task (episode {p['one_episode']:.2f} s, "
          f"classifier {p['classifier_fit']:.2f} s, updates {p['td3_updates']:.2f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
