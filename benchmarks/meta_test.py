"""Meta-test every seed's final checkpoint of a learning run and report what adaptation buys.

For a ``benchmarks/learning.py`` runs folder (``RUNS/<config>/seedK/.../last.ckpt``), run
``python -m metarl test`` on each seed's final checkpoint with the config's own protocol (all eval
tasks; the same test seed for every checkpoint) and report, over the (seed, task) pairs, the return
after adaptation, before it, and their difference paired per (seed, task): e.g. issue #12's check that
MAML-with-a-model's adapted return beats the same model unadapted. The interval over the seeds'
means (n = seeds) is reported beside it: the pairs of one seed share a checkpoint::

    python benchmarks/meta_test.py --config maml_model_point_robot_rotated --runs-dir runs/bench/rotated \\
        --out benchmarks/results/meta_test_maml_model_point_robot_rotated.json [-- extra test arguments]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import meta_test_records, provenance, run_test, seed_checkpoints, t_interval


def summarize(tests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """seedK -> a meta-test's record (benchmarks.common.meta_test_records) -> the after, before and
    after − before returns over (seed, task) pairs, after − before per seed and over the seeds' means."""
    diffs = {s: [r["tasks"][t] - r["tasks_pre"][t] for t in r["tasks"] if t in r["tasks_pre"]]
             for s, r in tests.items()}
    return {
        "return_post_adapt": t_interval([v for r in tests.values() for v in r["tasks"].values()]),
        "return_pre_adapt": t_interval([v for r in tests.values() for v in r["tasks_pre"].values()]),
        "post_minus_pre": t_interval([d for ds in diffs.values() for d in ds]),
        "post_minus_pre_over_seeds": t_interval([statistics.fmean(ds) for ds in diffs.values() if ds]),
        "post_minus_pre_per_seed": {s: statistics.fmean(ds) for s, ds in diffs.items() if ds},
        "pairs_post_above_pre": sum(d > 0 for ds in diffs.values() for d in ds),
        "seeds": sorted(tests), "env_steps": sorted({r["env_steps"] for r in tests.values()}),
    }


def _ci(s: dict[str, float]) -> str:
    return f"{s['mean']:+.2f} [{s['ci95_low']:+.2f}, {s['ci95_high']:+.2f}] (n = {s['n']})"


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the runs' shipped config name, e.g. point_robot")
    parser.add_argument("--runs-dir", type=Path, required=True, help="learning.py's --runs-dir: RUNS/<config>/seedK")
    parser.add_argument("--test-seed", type=int, default=0, help="the meta-test's seed, the same for every checkpoint")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--allow-unfinished", action="store_true",
                        help="also test seeds whose run has not reached its budget (still running, or stopped)")
    parser.add_argument("--out", type=Path, required=True, help="JSON path")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    config = args.config.removesuffix(".yaml")
    tests: dict[str, dict[str, Any]] = {}
    for folder, ckpt in seed_checkpoints(args.runs_dir / config, args.allow_unfinished):
        report, wall = run_test(config, ckpt, args.test_seed, ["--trainer.logger=false", *extra], args.threads)
        for name, record in meta_test_records(report, ckpt, wall, folder).items():
            tests[name] = record
            print(f"{name}: after {statistics.fmean(record['tasks'].values()):.2f}, before "
                  f"{statistics.fmean(record['tasks_pre'].values()):.2f} over {len(record['tasks'])} tasks "
                  f"({wall:.0f} s)", flush=True)
    if not tests:
        sys.exit("meta_test: no finished seed to test")
    summary = summarize(tests)
    print(f"{config}: after {_ci(summary['return_post_adapt'])}, before {_ci(summary['return_pre_adapt'])}; "
          f"after − before, paired per (seed, task): {_ci(summary['post_minus_pre'])}, over the seeds' means "
          f"{_ci(summary['post_minus_pre_over_seeds'])}")
    result = {"benchmark": "meta_test", "config": config, "runs_dir": str(args.runs_dir), "test_seed": args.test_seed,
              "test_args": extra, "summary": summary, "tests": tests, **provenance()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
