"""Every method of metarl on the point-robot OOD split, in and out of distribution (issue #12).

``point-robot-ood`` trains on goals with x in [-1, 0] and evaluates on goals with x in [0.5, 1]. Each
method's ``*_point_robot_ood`` config is meta-trained for 3 seeds by ``benchmarks/learning.py``; this
script then meta-tests each seed's final checkpoint (``python -m metarl test``, every eval task, the
config's protocol, one test seed for all) twice: out of distribution (the family as trained) and in
distribution (``eval.family_overrides`` ``{"eval_split": "in"}``: held-out goals from the training
range, the train tasks unchanged). MIER's checkpoints are tested with ``adapt.relabel=false`` (MIER-wR:
model identification only) and ``adapt.relabel=true`` (MIER: identification, then experience
relabeling and SAC on the relabeled data); both on the same checkpoints, so their difference on the OOD
tasks is paired per (seed, task). MIER's extrapolation runs ``--mier-epochs`` epochs of continued SAC
(default 2, i.e. 4,000 SAC updates; the config's mier_public value 10 costs 12-13 min per eval task on 2
busy cores: docs/fidelity.md, "Extrapolation on a CPU"). It reports, per method and split, the mean
return after and before adaptation over (seed, task) pairs with a 95% Student-t interval, and
MIER − MIER-wR with its interval, as JSON and as a markdown table (``OUT`` with ``.md``), the MIER
paper's comparison (section 6.2).

The runs (one runs folder ``RUNS``; ``RUNS/<config>/seedK``), with budgets sized for a 2-core CPU from
the point-robot runs in BENCHMARKS.md (their wall times there, 3 seeds, one torch thread each, on a
shared machine):

    RUNS=runs/bench/ood
    # MQL: the config's 20k (3 seeds in parallel: 13 min)
    python benchmarks/learning.py --config point_robot_ood --seeds 0 1 2 --env-steps 20000 --parallel 3 \\
        --runs-dir $RUNS
    # PEARL: 50k with BENCHMARKS.md's CPU-sized nets and batches (about 16 min per seed beside 2-3 other processes)
    python benchmarks/learning.py --config pearl_point_robot_ood --seeds 0 1 2 --env-steps 50000 --parallel 3 \\
        --runs-dir $RUNS -- --model.init_args.meta_batch=8 --model.init_args.batch_size=128 \\
        --model.init_args.updates_per_iter=400 '--model.init_args.actor.init_args.hidden_sizes=[128,128,128]' \\
        '--model.init_args.critic.init_args.hidden_sizes=[128,128,128]' \\
        '--model.init_args.value.init_args.hidden_sizes=[128,128,128]'
    # MIER-wR and MIER (one set of runs): the config's 100k (seed 0: 86 min, beside another run)
    python benchmarks/learning.py --config mier_point_robot_ood --seeds 0 1 2 --env-steps 100000 --runs-dir $RUNS
    # RL²: 3.84M, where point-robot RL² adapted (535 s per seed at 16dd344, beside 1-3 other processes)
    python benchmarks/learning.py --config rl2_point_robot_ood --seeds 0 1 2 --env-steps 3840000 --runs-dir $RUNS
    # MAML-PG: 1.6M, flat from 1M on the point robot (one after another: 19-26 min each)
    python benchmarks/learning.py --config maml_point_robot_ood --seeds 0 1 2 --env-steps 1600000 --runs-dir $RUNS
    # GrBAL: the config's 50k (40-51 min per seed beside 1-3 other processes)
    python benchmarks/learning.py --config maml_model_point_robot_ood --seeds 0 1 2 --env-steps 50000 \\
        --runs-dir $RUNS
    python benchmarks/ood_comparison.py --runs-dir $RUNS --out benchmarks/results/ood_comparison.json

``learning.py --one-process`` trains a method's seeds in one ``fit --seeds 0,1,2`` process instead
(``RUNS/<config>/seeds0-1-2``, one checkpoint holding every seed); this script tests such a checkpoint
once per row and split, for all its seeds. It suits the runs above started with ``--parallel 3`` (3
point-robot MQL seeds: x1.26 faster than 3 processes, BENCHMARKS.md "Seeds in one process"); for those
run one after another it is not measured, and its seeds are resumed and budget-checked together.

Each finished test is recorded in ``OUT.done.json`` (with its checkpoint's size and mtime and its
arguments), so a stopped comparison run again with the same arguments goes on where it stopped;
``--fresh`` sets that file aside and tests everything again. A seed whose run has not reached the
budget its ``bench_run.json`` names (still running, or stopped part-way) is left out with a line saying
so (``--allow-unfinished`` tests it). A method whose folder is missing is left
out (``--runs KEY=FOLDER`` names one folder per method instead).
Arguments after ``--`` go to every test (``-- --config debug.yaml``: a seconds-long smoke check of debug
runs). The test takes each checkpoint's model as trained and only the protocol (``eval``, ``adapt``) from
the config, so fit-time overrides (PEARL's nets above) need not be repeated.
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
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import point_robot  # noqa: E402
from benchmarks.common import (  # noqa: E402
    meta_test_records,
    provenance,
    run_test,
    seed_checkpoints,
    seed_names,
    t_interval,
)
from metarl.envs.point import OOD_TRAIN_X  # noqa: E402

#: Method key -> its point-robot-ood config.
CONFIGS = {"mql": "point_robot_ood", "pearl": "pearl_point_robot_ood", "mier": "mier_point_robot_ood",
           "rl2": "rl2_point_robot_ood", "maml": "maml_point_robot_ood", "grbal": "maml_model_point_robot_ood"}
A = "--model.init_args.adapt."
RELABEL = f"{A}relabel="
#: The table's rows: (label, method key, the protocol's overrides). MIER's checkpoints give two rows.
ROWS: list[tuple[str, str, list[str]]] = [
    ("MQL", "mql", []), ("PEARL", "pearl", []), ("MIER-wR", "mier", [f"{RELABEL}false"]),
    ("MIER", "mier", [f"{RELABEL}true"]), ("RL²", "rl2", []), ("MAML-PG", "maml", []), ("GrBAL", "grbal", []),
]
#: Split -> the overrides that select its eval tasks (the family's own eval tasks are the OOD ones).
SPLITS = {"in": ['--model.init_args.eval.family_overrides={"eval_split": "in"}'], "ood": []}
PAIRED = ("MIER", "MIER-wR")  # their difference per (seed, task), on the same checkpoints and tasks


def baselines() -> dict[str, dict[str, float]]:
    """Split -> fixed policies' returns on its eval tasks, for scale (benchmarks/baselines.py); the
    task-blind one heads for the training goals' centre, as a policy that ignores the task would learn."""
    centre = (sum(OOD_TRAIN_X) / 2, 0.0)
    return {split: point_robot(family="point-robot-ood", centre=centre, eval_split=split) for split in SPLITS}


def method_folders(runs_dir: Path | None, named: list[str]) -> dict[str, Path]:
    """Method key -> its learning.py runs folder: ``RUNS_DIR/<config>`` where it exists, then ``--runs``."""
    folders = {k: runs_dir / c for k, c in CONFIGS.items() if runs_dir and (runs_dir / c).is_dir()}
    for item in named:
        key, sep, folder = item.partition("=")
        if not sep or key not in CONFIGS:
            sys.exit(f"ood_comparison: --runs takes KEY=FOLDER with KEY one of {', '.join(CONFIGS)}, got {item!r}")
        folders[key] = Path(folder)
    return folders


def mier_protocol(epochs: int) -> list[str]:
    """MIER's extrapolation overrides for the comparison: ``epochs`` of continued SAC (x 1000 steps x 2
    repeats). The config's 10 (mier_public's) cost 12-13 min per eval task on 2 busy cores, 4 h per seed;
    docs/fidelity.md ("Extrapolation on a CPU") records the CPU-sized default."""
    return [f"{A}epochs={epochs}"]


def done_key(label: str, split: str, seed_name: str, ckpt: Path, args: list[str]) -> str:
    """What makes a finished test reusable: the row, split, seed, the checkpoint as it is now (path,
    size, mtime: a resumed run's new last.ckpt is another test) and every argument."""
    stat = ckpt.stat()
    return json.dumps([label, split, seed_name, str(ckpt), stat.st_size, stat.st_mtime_ns, args])


def load_done(path: Path) -> dict[str, dict[str, Any]]:
    return json.loads(path.read_text()) if path.is_file() else {}


def save_done(path: Path, done: dict[str, dict[str, Any]]) -> None:
    """Written after every test (temporary file, then rename), so a stopped comparison goes on later."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(done, indent=1) + "\n")
    tmp.replace(path)


Tests = dict[str, dict[str, dict[str, Any]]]  # row label -> split -> seedK -> a meta-test's record


def run_tests(folders: dict[str, Path], relabel_in: bool, seed: int, threads: int, extra: list[str],
              mier_epochs: int, done_path: Path, allow_unfinished: bool = False) -> Tests:
    """row label -> split -> seedK -> the meta-test's record (benchmarks.common.meta_test_records).
    Tests already in ``done_path`` with the same checkpoint and arguments are read back, not rerun; a
    seed whose run has not reached its budget is left out unless ``allow_unfinished``. A checkpoint of
    several seeds (``seeds0-1-2``) is tested once per row and split, and fills each seed's entry."""
    tests: dict[str, dict[str, dict[str, Any]]] = {}
    done = load_done(done_path)
    for label, key, overrides in ROWS:
        if key not in folders:
            continue
        protocol = mier_protocol(mier_epochs) if label == "MIER" else []
        for folder, ckpt in seed_checkpoints(folders[key], allow_unfinished):
            for split, split_overrides in SPLITS.items():
                if label == "MIER" and split == "in" and not relabel_in:
                    continue  # relabeling is MIER's step for OOD tasks; in distribution MIER-wR's row stands
                # The extra arguments first, so that the protocol's own settings win.
                args = [*extra, "--trainer.logger=false", *protocol, *overrides, *split_overrides]
                # A multi-seed checkpoint (learning.py --one-process) is tested once for all its seeds.
                keys = {name: done_key(label, split, name, ckpt, args) for name in seed_names(folder)}
                if all(k in done for k in keys.values()):
                    for name, k in keys.items():
                        print(f"{label} {split} {name}: done before ({done[k]['report']})", flush=True)
                        tests.setdefault(label, {}).setdefault(split, {})[name] = done[k]
                    continue
                report, wall = run_test(CONFIGS[key], ckpt, seed, args, threads)
                for name, record in meta_test_records(report, ckpt, wall, folder).items():
                    if (record["family_options"] or {}).get("eval_split") != split:
                        sys.exit(f"ood_comparison: {report} is on eval_split {record['family_options']}, not {split}")
                    tests.setdefault(label, {}).setdefault(split, {})[name] = record
                    done[keys[name]] = record
                    post = sum(record["tasks"].values()) / len(record["tasks"])
                    print(f"{label} {split} {name}: post {post:.2f} over {len(record['tasks'])} tasks "
                          f"({wall:.0f} s)", flush=True)
                save_done(done_path, done)
    return tests


def summarize(tests: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per row and split: the returns after and before adaptation over (seed, task) pairs; then the
    paired MIER − MIER-wR difference on each split where both ran."""
    summary: dict[str, Any] = {}
    for label, by_split in tests.items():
        for split, by_seed in by_split.items():
            summary.setdefault(label, {})[split] = {
                "return_post_adapt": t_interval([v for r in by_seed.values() for v in r["tasks"].values()]),
                "return_pre_adapt": t_interval([v for r in by_seed.values() for v in r["tasks_pre"].values()]),
                # The pairs share each seed's checkpoint: the interval over seed means is the wider, honest one.
                "post_adapt_over_seeds": t_interval([statistics.fmean(r["tasks"].values()) for r in by_seed.values()]),
                # What adaptation buys, paired per (seed, task): the same checkpoint and task both ways.
                "post_minus_pre": t_interval([r["tasks"][t] - r["tasks_pre"][t] for r in by_seed.values()
                                              for t in r["tasks"] if t in r["tasks_pre"]]),
                "seeds": sorted(by_seed), "env_steps": sorted({r["env_steps"] for r in by_seed.values()}),
                "wall_s": round(sum(r["wall_s"] for r in by_seed.values()), 1)}
    a, b = PAIRED
    paired = {}
    for split in SPLITS:
        left, right = tests.get(a, {}).get(split, {}), tests.get(b, {}).get(split, {})
        by_seed = {s: [left[s]["tasks"][t] - right[s]["tasks"][t] for t in left[s]["tasks"] if t in right[s]["tasks"]]
                   for s in left if s in right}
        diffs = [d for seed_diffs in by_seed.values() for d in seed_diffs]
        if diffs:
            paired[split] = {"post_adapt_difference": t_interval(diffs), "over_seeds": t_interval(
                [statistics.fmean(d) for d in by_seed.values() if d])}
    return {"rows": summary, f"{a} - {b}": paired}


def _cell(s: dict[str, float] | None, sign: str = "") -> str:
    if s is None:
        return "—"
    return f"{s['mean']:{sign}.2f} [{s['ci95_low']:{sign}.2f}, {s['ci95_high']:{sign}.2f}]"


def markdown(result: dict[str, Any]) -> str:
    """The comparison as a markdown table, for BENCHMARKS.md."""
    lines = ["| method | config | env steps | in distribution: after | before | after − before | "
             "out of distribution: after | before | after − before |", "|---|---|---|---|---|---|---|---|---|"]
    rows = result["summary"]["rows"]
    for label, key, _ in ROWS:
        if label not in rows:
            continue
        cells = []
        for split in SPLITS:
            row = rows[label].get(split)
            cells += [_cell(row and row["return_post_adapt"]), _cell(row and row["return_pre_adapt"]),
                      _cell(row and row["post_minus_pre"], "+")]
        steps = sorted({s for row in rows[label].values() for s in row["env_steps"]})
        seeds = max(len(row["seeds"]) for row in rows[label].values())
        n = max(row["return_post_adapt"]["n"] for row in rows[label].values())
        runs = f"{', '.join(f'{s:,}' for s in steps)} ({seeds} seed{'s' if seeds != 1 else ''}, n = {n})"
        lines.append(f"| {label} | `{CONFIGS[key]}` | {runs} | {' | '.join(cells)} |")
    fixed = result.get("baselines") or {}
    for name in fixed.get("ood", {}):
        cells = [f"{fixed[split][name]:.2f} | — | —" for split in SPLITS]
        lines.append(f"| *{name}* | computed | — | {' | '.join(cells)} |")
    a, b = PAIRED
    for split, diff in result["summary"][f"{a} - {b}"].items():
        d = diff["post_adapt_difference"]
        s = diff["over_seeds"]
        lines.append(f"\n{a} − {b} after adaptation, {'out of' if split == 'ood' else 'in'} distribution, paired "
                     f"per (seed, task): **{_cell(d, '+')}** (n = {d['n']}); over the seeds' means "
                     f"{_cell(s, '+')} (n = {s['n']}).")
    lines.append("\nMean over (seed, task) pairs with a 95% Student-t interval; \"before\" is each method's "
                 "`return_pre_adapt`, \"after − before\" their difference paired per (seed, task). Rows in "
                 "italics: fixed policies on the same eval tasks, computed (benchmarks/baselines.py), for scale.")
    return "\n".join(lines) + "\n"


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=None, help="learning.py's --runs-dir: RUNS/<config>/seedK")
    parser.add_argument("--runs", nargs="*", default=[], metavar="KEY=FOLDER",
                        help=f"a method's runs folder (KEY: {', '.join(CONFIGS)})")
    parser.add_argument("--relabel-in", action="store_true",
                        help="also test MIER (relabeling) in distribution (by default only MIER-wR is)")
    parser.add_argument("--test-seed", type=int, default=0, help="the meta-test's seed, the same for every test")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mier-epochs", type=int, default=2,
                        help="MIER's extrapolation epochs (x 2,000 SAC updates); the config's 10 is 4 h per seed")
    parser.add_argument("--allow-unfinished", action="store_true",
                        help="also test seeds whose run has not reached its budget (still running, or stopped)")
    parser.add_argument("--fresh", action="store_true", help="rerun every test (default: reuse OUT.done.json's)")
    parser.add_argument("--out", type=Path, required=True, help="JSON path (the markdown table goes next to it)")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    folders = method_folders(args.runs_dir, args.runs)
    if not folders:
        parser.error("no runs: give --runs-dir (with RUNS/<config>/seedK folders) or --runs KEY=FOLDER")
    print("methods: " + ", ".join(f"{k} ({folders[k]})" for k in CONFIGS if k in folders), flush=True)

    done_path = args.out.with_suffix(".done.json")
    if args.fresh and done_path.is_file():
        done_path.rename(done_path.with_suffix(f".old-{int(time.time())}.json"))  # kept, never deleted
    tests = run_tests(folders, args.relabel_in, args.test_seed, args.threads, extra, args.mier_epochs, done_path,
                      args.allow_unfinished)
    result = {"benchmark": "ood_comparison", "family": "point-robot-ood",
              "runs": {k: str(v) for k, v in folders.items()}, "configs": {k: CONFIGS[k] for k in folders},
              "rows": {label: o for label, _, o in ROWS},
              "splits": SPLITS, "test_seed": args.test_seed, "test_args": extra,
              "mier_protocol": mier_protocol(args.mier_epochs),
              "summary": summarize(tests), "baselines": baselines(), "tests": tests, **provenance()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
