"""Adaptation settings compared on the same meta-trained MQL checkpoints (issue #16).

Adaptation acts only at meta-test, so every protocol runs ``python -m metarl test`` on the **same**
checkpoints, with the same seed, and only the ``adapt`` / ``eval`` settings differ:

* ``paper``    the paper's eqs. 18-19: lambda = 1 - ESS, the 1/2 of the proximal term, the proximal
               term in eq. 18 and eq. 19;
* ``released`` the released code: lambda = 0.1 fixed, no 1/2, the proximal term in eq. 19 only (its
               update counts are the shipped configs' defaults already);
* ``none``     no adaptation (TD3-context, paper section 4.3): the meta-trained actor with its context.

Each test writes its own ``meta_test*.json`` next to the checkpoint (with the settings it used); this
script reads them back and reports, per protocol, the mean over (seed, task) pairs with a 95% t-interval,
and each protocol's paired difference to ``none`` (same seed, same task).

    python benchmarks/adaptation_study.py --config cheetah_fb --runs runs/bench/cfb_released/cheetah_fb \\
        --out benchmarks/results/adaptation_study_cheetah_fb.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import meta_test_records, provenance, run_test, seed_checkpoints, t_interval  # noqa: E402

A = "--model.init_args.adapt."
PROTOCOLS: dict[str, list[str]] = {
    "paper": [f"{A}lambda_mode=ess", f"{A}prox_half=true", f"{A}prox_on_new_data=true"],
    "released": [f"{A}lambda_mode=fixed", f"{A}fixed_lambda=0.1", f"{A}prox_half=false", f"{A}prox_on_new_data=false"],
    "none": ["--model.init_args.eval.adapt=false"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the config the checkpoints were trained with")
    parser.add_argument("--runs", type=Path, required=True,
                        help="a learning.py runs folder: seedK/.../last.ckpt or (--one-process) seeds0-1-2/...")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    parser.add_argument("--test-seed", type=int, default=0, help="the meta-test's seed, the same for every protocol")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    tests: dict[str, dict[str, Any]] = {}
    for folder, ckpt in seed_checkpoints(args.runs):  # a multi-seed checkpoint: one test for all its seeds
        for protocol in args.protocols:
            report_path, wall = run_test(args.config, ckpt, args.test_seed, PROTOCOLS[protocol], args.threads)
            report = json.loads(report_path.read_text())
            for seed, record in meta_test_records(report_path, ckpt, wall, folder).items():
                tests.setdefault(seed, {})[protocol] = record
            print(f"{folder} {protocol}: post {report['return_post_adapt']['mean']:.1f} "
                  f"pre {report['return_pre_adapt']['mean']:.1f} ({wall:.0f} s)", flush=True)

    summary: dict[str, Any] = {}
    for protocol in args.protocols:
        values = [v for s in tests.values() for v in s[protocol]["tasks"].values()]
        row: dict[str, Any] = {"return": t_interval(values)}
        if protocol != "none" and "none" in args.protocols:
            diffs = [by[protocol]["tasks"][k] - by["none"]["tasks"][k]
                     for by in tests.values() for k in by[protocol]["tasks"]]
            row["minus_none"] = t_interval(diffs)
        summary[protocol] = row
    result = {"benchmark": "adaptation_study", "config": args.config, "runs": str(args.runs),
              "protocols": {k: PROTOCOLS[k] for k in args.protocols}, "test_seed": args.test_seed,
              "summary": summary, "tests": tests, **provenance()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for protocol, row in summary.items():
        r = row["return"]
        text = f"{protocol}: {r['mean']:.1f} [{r['ci95_low']:.1f}, {r['ci95_high']:.1f}] (n={r['n']})"
        if "minus_none" in row:
            d = row["minus_none"]
            text += f"; minus none {d['mean']:+.1f} [{d['ci95_low']:+.1f}, {d['ci95_high']:+.1f}]"
        print(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
