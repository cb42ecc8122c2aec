"""benchmarks/ood_comparison.py's arithmetic: per-split means over (seed, task) pairs and the paired
MIER − MIER-wR difference, on hand-made meta-test records (the end-to-end check runs real tests)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from benchmarks.ood_comparison import ROWS, SPLITS, baselines, markdown, method_folders, summarize


def _record(post: list[float], pre: list[float]) -> dict[str, Any]:
    return {"env_steps": 600, "wall_s": 1.0, "tasks": {str(i): v for i, v in enumerate(post)},
            "tasks_pre": {str(i): v for i, v in enumerate(pre)}}


def test_the_paired_difference_is_per_seed_and_task() -> None:
    tests = {
        "MIER-wR": {"ood": {"seed0": _record([-10.0, -12.0], [-15.0, -15.0]),
                            "seed1": _record([-11.0, -9.0], [-14.0, -16.0])},
                    "in": {"seed0": _record([-6.0, -7.0], [-9.0, -9.0])}},
        "MIER": {"ood": {"seed0": _record([-8.0, -11.0], [-15.0, -15.0]),
                         "seed1": _record([-10.0, -9.5], [-14.0, -16.0])}},
    }
    summary = summarize(tests)
    diffs = [2.0, 1.0, 1.0, -0.5]
    d = summary["MIER - MIER-wR"]["ood"]["post_adapt_difference"]
    assert d["n"] == 4 and d["mean"] == pytest.approx(statistics.fmean(diffs))
    over_seeds = summary["MIER - MIER-wR"]["ood"]["over_seeds"]  # seed means 1.5 and 0.25
    assert over_seeds["n"] == 2 and over_seeds["mean"] == pytest.approx(0.875)
    assert "in" not in summary["MIER - MIER-wR"]  # MIER was not tested in distribution
    wr = summary["rows"]["MIER-wR"]
    assert wr["ood"]["return_post_adapt"]["mean"] == pytest.approx(-10.5) and wr["ood"]["seeds"] == ["seed0", "seed1"]
    assert wr["in"]["return_pre_adapt"]["mean"] == pytest.approx(-9.0) and wr["in"]["return_pre_adapt"]["n"] == 2
    # Adaptation's gain, paired per (seed, task): post - pre = 5, 3, 3, 7 out of distribution.
    assert wr["ood"]["post_minus_pre"]["mean"] == pytest.approx(4.5) and wr["ood"]["post_minus_pre"]["n"] == 4
    assert wr["in"]["post_minus_pre"]["mean"] == pytest.approx(2.5)
    table = markdown({"summary": summary})
    assert "| MIER | `mier_point_robot_ood` | 600 (2 seeds, n = 4) | — | — | — | -9.6" in table  # no in-dist test
    assert "| MIER-wR | `mier_point_robot_ood` | 600 (2 seeds, n = 4) | -6.50 [" in table
    assert "| -9.00 [-9.00, -9.00] | +2.50 [" in table
    assert "MIER − MIER-wR after adaptation, out of distribution, paired per (seed, task): **+0.8" in table


def test_every_method_has_a_row_and_each_split_its_overrides(tmp_path) -> None:
    assert {key for _, key, _ in ROWS} == {"mql", "pearl", "mier", "rl2", "maml", "grbal"}
    assert SPLITS["ood"] == [] and '"eval_split": "in"' in SPLITS["in"][0]
    (tmp_path / "rl2_point_robot_ood").mkdir()
    assert method_folders(tmp_path, ["mql=/x"]) == {"rl2": tmp_path / "rl2_point_robot_ood", "mql": Path("/x")}
    with pytest.raises(SystemExit, match="KEY=FOLDER"):
        method_folders(None, ["mier"])


def test_the_fixed_policies_for_scale() -> None:
    """Out of distribution, heading for the training goals' centre is worse than standing still; in
    distribution it is the best a task-blind policy roughly does; the oracle beats both everywhere."""
    fixed = baselines()
    blind = "go to the train goals' centre (-0.5, 0.0) (ignores the task)"
    for split in SPLITS:
        assert fixed[split]["oracle (knows the goal)"] > max(fixed[split]["no action"], fixed[split][blind])
    assert fixed["ood"][blind] < fixed["ood"]["no action"] and fixed["in"][blind] > fixed["in"]["no action"]
    table = markdown({"summary": {"rows": {}, "MIER - MIER-wR": {}}, "baselines": fixed})
    cells = f"{fixed['in'][blind]:.2f} | — | — | {fixed['ood'][blind]:.2f} | — | — |"
    assert f"| *{blind}* | computed | — | {cells}" in table



def _fake_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str) -> tuple[Path, list[list[str]]]:
    """A method folder with one seed's checkpoint, and ``run_test`` replaced by a recorder of its
    arguments (the records it returns are on the split the arguments ask for)."""
    import benchmarks.ood_comparison as oc

    ckpt = tmp_path / key / "seed0" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    calls: list[list[str]] = []

    def fake_test(config: str, path: Path, seed: int, args: list[str], threads: int) -> tuple[Path, float]:
        calls.append(args)
        return path, 2.0

    def fake_records(report: Path, path: Path, wall: float, folder: str) -> dict[str, dict[str, Any]]:
        split = "in" if any("eval_split" in a for a in calls[-1]) else "ood"
        return {folder: {**_record([-1.0], [-2.0]), "report": str(report), "family_options": {"eval_split": split}}}

    monkeypatch.setattr(oc, "run_test", fake_test)
    monkeypatch.setattr(oc, "meta_test_records", fake_records)
    return ckpt, calls


def test_a_stopped_comparison_reuses_finished_tests_and_reruns_changed_ones(tmp_path, monkeypatch) -> None:
    """Tests are written to OUT.done.json as they finish; a second call reads them back, and a
    checkpoint that changed since (a resumed run) is tested again."""
    import os

    from benchmarks.ood_comparison import run_tests

    ckpt, calls = _fake_tests(tmp_path, monkeypatch, "mql")
    done = tmp_path / "cmp.done.json"
    first = run_tests({"mql": tmp_path / "mql"}, False, 0, 1, [], 2, done)
    assert len(calls) == 2 and set(first["MQL"]) == {"in", "ood"} and done.is_file()
    again = run_tests({"mql": tmp_path / "mql"}, False, 0, 1, [], 2, done)
    assert len(calls) == 2 and again == first
    os.utime(ckpt, ns=(1, 1))  # the run went on: its last.ckpt is another checkpoint
    run_tests({"mql": tmp_path / "mql"}, False, 0, 1, [], 2, done)
    assert len(calls) == 4


def test_only_mier_relabeling_gets_the_cpu_sized_extrapolation(tmp_path, monkeypatch) -> None:
    from benchmarks.ood_comparison import run_tests

    _, calls = _fake_tests(tmp_path, monkeypatch, "mier")
    run_tests({"mier": tmp_path / "mier"}, False, 0, 1, ["--model.init_args.adapt.epochs=7"], 3,
              tmp_path / "cmp.done.json")
    relabel = [a for a in calls if "--model.init_args.adapt.relabel=true" in a]
    assert len(calls) == 3 and len(relabel) == 1  # MIER-wR in and out of distribution, MIER out of it
    assert relabel[0].index("--model.init_args.adapt.epochs=3") > relabel[0].index("--model.init_args.adapt.epochs=7")
    assert all("--model.init_args.adapt.epochs=3" not in a for a in calls if a is not relabel[0])


def test_a_run_short_of_its_budget_is_left_out(tmp_path, monkeypatch) -> None:
    """A seed whose learning.py run is still going (or was stopped) is not compared as final."""
    import json

    import torch

    from benchmarks.ood_comparison import run_tests

    ckpt, calls = _fake_tests(tmp_path, monkeypatch, "mql")
    torch.save({"metarl": {"counters": {"env_steps": 6_000}}}, ckpt)
    (ckpt.parent / "bench_run.json").write_text(json.dumps({"command": "python -m metarl fit "
                                                            "--model.init_args.total_env_steps=20000"}))
    assert run_tests({"mql": tmp_path / "mql"}, False, 0, 1, [], 2, tmp_path / "d.json") == {} and not calls
    assert set(run_tests({"mql": tmp_path / "mql"}, False, 0, 1, [], 2, tmp_path / "d.json", True)["MQL"]) == {
        "in", "ood"}
    torch.save({"metarl": {"counters": {"env_steps": 20_000}}}, ckpt)
    aside = tmp_path / "mql" / "seed0.old-1700000000" / "last.ckpt"  # set aside by learning.py --resume
    aside.parent.mkdir()
    aside.write_bytes(b"not a checkpoint")
    assert len(run_tests({"mql": tmp_path / "mql"}, False, 0, 1, [], 2, tmp_path / "e.json")["MQL"]) == 2
