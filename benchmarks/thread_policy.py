"""1 vs 2 torch intra-op threads for metarl's TD3+GRU update, paired: what the default of the
``threads`` config key rests on (README "Speed", console.DEFAULT_THREADS).

Two sizes: the debug overlay's nets (hidden 16, batch 16) and the Ant-FB config's (300-300, GRU 15,
batch 256). Each round times ``--updates`` updates at 1 thread and at 2, in alternating order, on
the same pre-drawn batches; the load average of the machine is recorded before and after (the
question is what a run gets on a shared machine, so the script does not wait for an idle one).

    python benchmarks/thread_policy.py --rounds 6 --updates 40
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import build_module, provenance  # noqa: E402
from benchmarks.update_throughput import make_batches, sizes_of  # noqa: E402

SIZES = {
    "debug": ("ant_fb", ["--config", "debug.yaml"]),
    "ant_fb": ("ant_fb", []),
}


def build(config: str, extra: list[str]) -> Any:
    argv, sys.argv = sys.argv, sys.argv[:1]  # the CLI parses only the overrides, not this script's flags
    try:
        return build_module(config, *extra, "--model.init_args.collect.replay_size=10000")
    finally:
        sys.argv = argv


def rate(module: Any, opts: tuple[Any, Any], batches: list[Any], start: int, n: int, threads: int) -> float:
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    for i in range(start, start + n):
        b = batches[i % len(batches)]
        module.td3_update(b, i, opts[0], opts[1], module.td3, b["noise"])
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--updates", type=int, default=40, help="updates per thread count per round (real size)")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "thread_policy", "rounds": args.rounds,
                              "load_before": [round(x, 2) for x in os.getloadavg()]}
    for name, (config, extra) in SIZES.items():
        module = build(config, extra)
        sizes = sizes_of(module)
        batches = make_batches(sizes, 8, seed=1)
        opts = tuple(module.make_optimizers())
        n = args.updates * (10 if name == "debug" else 1)
        for t in (1, 2):
            rate(module, opts, batches, 0, max(5, n // 4), t)  # warm-up
        rates: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.rounds):
            for t in ((1, 2) if r % 2 == 0 else (2, 1)):
                rates[t].append(rate(module, opts, batches, 0, n, t))
        ratio = [b / a for a, b in zip(rates[1], rates[2], strict=True)]
        result[name] = {"sizes": {k: sizes[k] for k in ("batch_size", "hidden", "z_dim", "history_len")},
                        "updates_per_s_1_thread": statistics.median(rates[1]),
                        "updates_per_s_2_threads": statistics.median(rates[2]),
                        "ratio_2_over_1_median": statistics.median(ratio), "ratio_rounds": ratio,
                        "rounds_1": rates[1], "rounds_2": rates[2]}
        print(f"{name}: 1 thread {statistics.median(rates[1]):.1f}/s, 2 threads {statistics.median(rates[2]):.1f}/s, "
              f"2/1 = {statistics.median(ratio):.2f} (rounds {min(ratio):.2f}-{max(ratio):.2f})", flush=True)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    result.update(provenance())
    print(f"load average before {result['load_before']}, after {result['load_after']}")
    out = ROOT / "benchmarks" / "results" / "thread_policy.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
