"""Two ``benchmarks/learning.py`` results of the same seeds compared per seed (issue #16).

Two readings of one experiment (e.g. Cheetah-FB with the released per-env values and with Table 1 as
printed) run on the same seeds, so each seed gives one paired difference A − B at each evaluation. This
script reads the two result JSONs back (no run), and reports per evaluation and per metric (return
after and before adaptation) both readings' means and the paired difference with a 95% Student-t
interval over the seeds the two share.

    python benchmarks/paired_learning.py \\
        --a released=benchmarks/results/learning_cheetah_fb_released.json \\
        --b printed=benchmarks/results/learning_cheetah_fb_table1_printed.json \\
        --out benchmarks/results/paired_cheetah_fb_released_vs_printed.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import provenance, t_interval  # noqa: E402

METRICS = ("return_post_adapt", "return_pre_adapt")


def labelled(arg: str) -> tuple[str, Path]:
    label, sep, path = arg.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, got {arg!r}")
    return label, Path(path)


def per_seed(result: dict[str, Any], target: str, metric: str) -> dict[int, float]:
    """Seed -> its value of ``metric`` at evaluation ``target``, for the seeds whose run reached it."""
    return {run["seed"]: run["at"][target][metric] for run in result["runs"]
            if run["at"].get(target) and metric in run["at"][target]}


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Evaluation -> metric -> both readings' per-seed values and A − B with its 95% interval."""
    rows: dict[str, Any] = {}
    for target in a["summary"]:
        if target not in b["summary"]:
            continue
        rows[target] = {}
        for metric in METRICS:
            va, vb = per_seed(a, target, metric), per_seed(b, target, metric)
            seeds = sorted(set(va) & set(vb))
            diff = [va[s] - vb[s] for s in seeds]
            rows[target][metric] = {
                "seeds": seeds, "a": [va[s] for s in seeds], "b": [vb[s] for s in seeds],
                "a_mean": t_interval([va[s] for s in seeds]), "b_mean": t_interval([vb[s] for s in seeds]),
                "a_minus_b": t_interval(diff), "a_minus_b_values": diff,
            }
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", type=labelled, required=True, help="LABEL=learning.json (the minuend)")
    parser.add_argument("--b", type=labelled, required=True, help="LABEL=learning.json")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    (label_a, path_a), (label_b, path_b) = args.a, args.b
    a, b = (json.loads(p.read_text()) for p in (path_a, path_b))
    result = {"benchmark": "paired_learning", "a": {"label": label_a, "path": str(path_a), "commit": a["commit"]},
              "b": {"label": label_b, "path": str(path_b), "commit": b["commit"]}, "rows": compare(a, b),
              **provenance()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for target, row in result["rows"].items():
        cells = []
        for metric, cell in row.items():
            d = cell["a_minus_b"]
            cells.append(f"{metric} {label_a} {cell['a_mean']['mean']:.1f} {label_b} {cell['b_mean']['mean']:.1f} "
                         f"diff {d['mean']:+.1f} [{d['ci95_low']:+.1f}, {d['ci95_high']:+.1f}]")
        print(f"{target:>7}: " + " | ".join(cells))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
