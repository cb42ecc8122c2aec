"""Replay memory per stored transition at Ant-FB sizes, for several GRU history lengths H.

The histories are gathered at sample time, never stored, so the bytes per transition must not
depend on H (the script asserts it). For scale it also prints what storing both windows per
transition would cost, the checkpoint size per transition, and the sample time of a batch.

    python benchmarks/replay_memory.py [--transitions 20000] [--out benchmarks/results/replay_memory.json]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a script from a checkout without installing metarl

from benchmarks.common import provenance, save_figure, write_results  # noqa: E402
from metarl import keys  # noqa: E402
from metarl.data.replay import MultiTaskReplay  # noqa: E402

OBS_DIM, ACT_DIM, N_TASKS, EPISODE_LEN, BATCH = 27, 8, 2, 200, 256  # Ant-FB: 2 tasks, 200-step episodes
HISTORY_LENS = (10, 20, 40)


def episode(task: int, ep: int, gen: torch.Generator) -> TensorDict:
    n, flags = EPISODE_LEN, torch.zeros(EPISODE_LEN, 1, dtype=torch.bool)
    return TensorDict(
        {
            keys.OBS: torch.randn(n, OBS_DIM, generator=gen), keys.ACTION: torch.rand(n, ACT_DIM, generator=gen),
            keys.TASK_ID: torch.full((n,), task), keys.STEP_COUNT: torch.arange(n), keys.EPISODE: torch.full((n,), ep),
            "next": {"observation": torch.randn(n, OBS_DIM, generator=gen), "reward": torch.randn(n, 1, generator=gen),
                     "terminated": flags, "truncated": flags, "done": flags},
        },
        batch_size=[n],
    )


def measure(history_len: int, transitions: int) -> dict[str, float]:
    cap = transitions // N_TASKS
    replay = MultiTaskReplay(N_TASKS, cap, OBS_DIM, ACT_DIM, history_len)
    gen = torch.Generator().manual_seed(0)
    for ep in range(transitions // EPISODE_LEN):
        replay.extend(episode(ep % N_TASKS, ep, gen))
    buf = io.BytesIO()
    torch.save(replay.state_dict(), buf)
    sample_gen = torch.Generator().manual_seed(1)
    replay.sample(BATCH, sample_gen)  # warm-up
    t0 = time.perf_counter()
    reps = 100
    for _ in range(reps):
        replay.sample(BATCH, sample_gen)
    sample_ms = (time.perf_counter() - t0) / reps * 1e3
    feature_dim = ACT_DIM + 1 + OBS_DIM
    return {
        "history_len": history_len,
        "stored_transitions": len(replay),
        "bytes_per_transition": replay.bytes_per_transition(),
        "storage_mb": replay.bytes_per_transition() * N_TASKS * cap / 2**20,
        "checkpoint_bytes_per_transition": buf.tell() / len(replay),
        # What a buffer that stored both windows (float32) would add per transition:
        "stored_history_bytes_per_transition": 2 * history_len * feature_dim * 4,
        f"sample_{BATCH}_ms": sample_ms,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    hs = [r["history_len"] for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.plot(hs, [r["bytes_per_transition"] for r in rows], "-o", label="metarl replay storage (measured)")
    ax.plot(hs, [r["checkpoint_bytes_per_transition"] for r in rows], "--s",
            label="metarl replay in a checkpoint (measured)")
    ax.plot(hs, [r["bytes_per_transition"] + r["stored_history_bytes_per_transition"] for r in rows], ":^",
            color="grey", label="if both GRU windows were stored (computed)")
    for r in rows:
        ax.annotate(f"{r['bytes_per_transition']:.0f} B", (r["history_len"], r["bytes_per_transition"]),
                    textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(hs)
    ax.set_xlabel("GRU history length H")
    ax.set_ylabel("bytes per stored transition (log scale)")
    ax.set_title(f"Replay memory per transition against H (Ant-FB sizes, {result['transitions']} transitions)",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "replay_memory.json")
    args = parser.parse_args()
    if args.transitions < N_TASKS * EPISODE_LEN:
        parser.error(f"--transitions must be >= {N_TASKS * EPISODE_LEN}, got {args.transitions}")
    torch.set_num_threads(1)  # a stable sample timing; memory does not depend on it
    rows = [measure(h, args.transitions) for h in HISTORY_LENS]
    for r in rows:
        print(
            f"H={r['history_len']:3d}  {r['bytes_per_transition']:.1f} B/transition in storage "
            f"({r['storage_mb']:.2f} MB for {r['stored_transitions']})  "
            f"checkpoint {r['checkpoint_bytes_per_transition']:.1f} B/transition  "
            f"[stored windows would add {r['stored_history_bytes_per_transition']} B]  "
            f"sample({BATCH}) {r[f'sample_{BATCH}_ms']:.2f} ms"
        )
    sizes = {r["bytes_per_transition"] for r in rows}
    assert len(sizes) == 1, f"replay bytes per transition grow with H: {sizes}"
    result = {
        "benchmark": "replay_memory",
        "obs_dim": OBS_DIM, "act_dim": ACT_DIM, "n_tasks": N_TASKS, "transitions": args.transitions,
        "bytes_per_transition_independent_of_history_len": True,
        "rows": rows,
        **provenance(),
    }
    write_results(result, args.out, plot)


if __name__ == "__main__":
    main()
