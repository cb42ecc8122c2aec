"""Seeds trained in one process (``benchmarks/learning.py --one-process``: ``RUNS/CONFIG/seeds0-1``, one
checkpoint for all) in the benchmark scripts: the per-seed evals read back from the one ``metrics.csv``,
a multi-seed ``meta_test.json`` split into per-seed records, and ood_comparison testing such a checkpoint
once for every seed (hand-made files; the end-to-end check runs real ones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.common import meta_test_records, seed_checkpoints, seed_names, unfinished

SETTINGS = {"eval": {"episodes": 1}, "adapt": {"relabel": False}}


def _rows(post: list[float], pre: list[float]) -> list[dict[str, Any]]:
    return [{"task": i, "return_pre_adapt": b, "return_post_adapt": a, "lambda": 0.1} for i, (a, b) in
            enumerate(zip(post, pre, strict=True))]


def _multi_report(path: Path, split: str = "ood") -> Path:
    """A multi-seed meta_test.json as metarl/training/report.py report_test_seeds writes it."""
    per_seed = {"0": {"tasks": _rows([-1.0, -2.0], [-5.0, -6.0])}, "1": {"tasks": _rows([-3.0, -4.0], [-7.0, -8.0])}}
    path.write_text(json.dumps({"seeds": [0, 1], "per_seed": per_seed, "return_post_adapt": {"mean": -2.5},
                                "return_pre_adapt": {"mean": -6.5}, "env_steps": 600, "settings": SETTINGS,
                                "family_options": {"eval_split": split}}))
    return path


def test_a_multi_seed_report_splits_into_the_records_of_single_seed_tests(tmp_path) -> None:
    records = meta_test_records(_multi_report(tmp_path / "meta_test.json"), tmp_path / "last.ckpt", 9.0, "seeds0-1")
    assert list(records) == ["seed0", "seed1"]
    single = {"report", "checkpoint", "env_steps", "wall_s", "settings", "family_options", "tasks", "tasks_pre"}
    assert all(single <= set(r) for r in records.values())
    assert records["seed1"]["tasks"] == {"0": -3.0, "1": -4.0}
    assert records["seed1"]["tasks_pre"] == {"0": -7.0, "1": -8.0}
    assert records["seed0"]["settings"] == SETTINGS and records["seed0"]["env_steps"] == 600
    # One test of both seeds: the time spent is shared out, the whole is kept.
    assert records["seed0"]["wall_s"] == 4.5 and records["seed0"]["test_wall_s"] == 9.0
    with pytest.raises(SystemExit, match="holds seed0, seed1, but its folder is seeds0-2"):
        meta_test_records(tmp_path / "meta_test.json", tmp_path / "last.ckpt", 9.0, "seeds0-2")
    (tmp_path / "one.json").write_text(json.dumps({"tasks": _rows([-1.0], [-2.0]), "env_steps": 5, "settings": {}}))
    assert list(meta_test_records(tmp_path / "one.json", tmp_path / "last.ckpt", 1.0, "seed3")) == ["seed3"]


def test_multi_seed_folders_are_found_beside_seed_folders_but_a_seed_in_two_is_refused(tmp_path) -> None:
    assert seed_names("seeds0-1-12") == ["seed0", "seed1", "seed12"] and seed_names("seed4") == ["seed4"]
    for name in ("seeds3-4", "seed2", "seeds3-4.old-20260101T000000", "seeds"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "last.ckpt").write_bytes(b"x")
    assert [n for n, _ in seed_checkpoints(tmp_path)] == ["seed2", "seeds3-4"]
    (tmp_path / "seed4").mkdir()
    with pytest.raises(SystemExit, match="seed4 in two folders"):
        seed_checkpoints(tmp_path)


def test_a_multi_seed_checkpoint_is_tested_once_per_row_and_split_for_every_seed(tmp_path, monkeypatch) -> None:
    import benchmarks.ood_comparison as oc

    ckpt = tmp_path / "mier" / "seeds0-1" / "version_0" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    calls: list[list[str]] = []

    def fake_test(config: str, path: Path, seed: int, args: list[str], threads: int) -> tuple[Path, float]:
        calls.append(args)
        split = "in" if any("eval_split" in a for a in args) else "ood"
        return _multi_report(tmp_path / f"meta_test_{len(calls)}.json", split), 4.0

    monkeypatch.setattr(oc, "run_test", fake_test)
    done = tmp_path / "cmp.done.json"
    tests = oc.run_tests({"mier": tmp_path / "mier"}, False, 0, 1, [], 2, done)
    assert len(calls) == 3  # MIER-wR in and out of distribution, MIER out of it: each once for both seeds
    assert {label: {split: sorted(by) for split, by in v.items()} for label, v in tests.items()} == {
        "MIER-wR": {"in": ["seed0", "seed1"], "ood": ["seed0", "seed1"]}, "MIER": {"ood": ["seed0", "seed1"]}}
    assert tests["MIER"]["ood"]["seed1"]["tasks"] == {"0": -3.0, "1": -4.0}
    summary = oc.summarize(tests)
    assert summary["rows"]["MIER-wR"]["ood"]["return_post_adapt"]["n"] == 4
    assert summary["rows"]["MIER-wR"]["ood"]["wall_s"] == 4.0  # the one test's time, not counted twice
    assert oc.run_tests({"mier": tmp_path / "mier"}, False, 0, 1, [], 2, done) == tests and len(calls) == 3


def test_learning_reads_each_seed_of_a_one_process_run_from_its_metrics_csv(tmp_path) -> None:
    from benchmarks.learning import fit_command, gather_run, summarize

    run_dir = tmp_path / "seeds0-1"
    (run_dir / "csv" / "version_0").mkdir(parents=True)
    keys = ["train/env_steps", "eval/env_steps", "eval/return_post_adapt", "eval/return_pre_adapt",
            "seed0/eval/return_post_adapt", "seed0/eval/return_pre_adapt",
            "seed1/eval/return_post_adapt", "seed1/eval/return_pre_adapt", "step"]
    rows = [["100", "", "", "", "", "", "", "", "0"],
            ["", "300", "-3.0", "-7.0", "-2.0", "-6.0", "-4.0", "-8.0", "1"],
            ["400", "", "", "", "", "", "", "", "2"],
            ["", "600", "-1.5", "-5.5", "-1.0", "-5.0", "-2.0", "-6.0", "3"]]
    (run_dir / "csv" / "version_0" / "metrics.csv").write_text("\n".join(",".join(r) for r in [keys, *rows]) + "\n")
    (run_dir / "bench_run.json").write_text(json.dumps({"command": "python -m metarl fit --seeds=0,1",
                                                        "returncode": 0, "wall_s": 8.0}))
    runs = [gather_run(run_dir, [300, 600], seed, one_process=True) for seed in (0, 1)]
    assert [r["seed"] for r in runs] == [0, 1] and all(r["returncode"] == 0 and r["env_steps_reached"] == 600
                                                       for r in runs)
    assert runs[1]["evals"] == [{"env_steps": 300, "return_pre_adapt": -8.0, "return_post_adapt": -4.0},
                                {"env_steps": 600, "return_pre_adapt": -6.0, "return_post_adapt": -2.0}]
    assert runs[0]["at"]["600"] == {"env_steps": 600, "return_pre_adapt": -5.0, "return_post_adapt": -1.0}
    row = summarize(runs, [600])["600"]
    assert row["n_seeds"] == 2 and row["return_post_adapt"]["values"] == [-1.0, -2.0]
    # 95% t-interval over 2 seeds: mean -1.5, half-width t(0.975, 1) * 0.7071 / sqrt(2) = 12.706 * 0.5
    assert row["return_post_adapt"]["ci95"] == pytest.approx([-1.5 - 6.353, -1.5 + 6.353], abs=1e-3)
    assert row["post_minus_pre"]["values"] == [4.0, 4.0] and row["post_minus_pre"]["ci95"] == [4.0, 4.0]
    # The seeds' own keys, never the mean over them under the plain names:
    assert gather_run(run_dir, [600], 0)["at"]["600"]["return_post_adapt"] == -1.5
    multi = fit_command("point_robot", [0, 1], 600, ["--config", "debug.yaml"], run_dir / "last.ckpt")
    assert "--seeds=0,1" in multi and "--seed_everything=0" in multi and not any("init_args.seed=" in a for a in multi)
    assert multi[-2:] == ["--ckpt_path", str(run_dir / "last.ckpt")]
    # --env-steps comes after the overlays, so debug.yaml's own budget cannot undo it:
    assert multi.index("--model.init_args.total_env_steps=600") > multi.index("debug.yaml")
    single = fit_command("point_robot", [3], None, [], None)
    assert single[-2:] == ["--seed_everything=3", "--model.init_args.seed=3"]


def test_a_run_short_of_its_budget_or_before_its_final_evaluation_is_unfinished(tmp_path) -> None:
    from metarl.training.checkpoint_state import mark_evaluation_pending

    (tmp_path / "bench_run.json").write_text(json.dumps({"command": "python -m metarl fit --x=1 "
                                                                    "--model.init_args.total_env_steps=600"}))
    done = {"total": {"ready": 3, "started": 3, "processed": 3, "completed": 3}}
    progress = {"epoch_loop.val_loop.batch_progress": {**done, "current": dict(done["total"]), "is_last_batch": True}}

    def ckpt(name: str, env_steps: int, pending: bool = False) -> Path:
        loops = {"fit_loop": json.loads(json.dumps(progress))}  # a copy: marking changes it
        saved = {"metarl": {"counters": {"env_steps": env_steps}}, "loops": loops}
        if pending:
            mark_evaluation_pending(saved)
        torch.save(saved, tmp_path / name)
        return tmp_path / name

    assert "is at 400 of its run's 600 env steps" in unfinished(ckpt("a.ckpt", 400))
    assert "before the run's final evaluation" in unfinished(ckpt("b.ckpt", 600, pending=True))
    assert unfinished(ckpt("c.ckpt", 600)) is None


def test_every_learning_baseline_puts_its_oracle_above_the_task_blind_policies() -> None:
    """benchmarks/baselines.py, read against learning curves: on the rotated point robot the oracle
    (it knows the angle) heads straight for the origin, and standing still is what ignoring the task gives."""
    from benchmarks.baselines import BASELINES, point_robot_rotated

    rotated = point_robot_rotated(starts_per_task=3)  # every task starts from the same 3 states
    oracle, still = rotated["oracle (knows the angle)"], rotated["no action (ignores the task)"]
    assert still < 0 and oracle > 0.5 * still  # the oracle covers most of the distance along every episode
    assert set(BASELINES) == {"point_robot", "mier_point_robot", "maml_model_point_robot_rotated"}


def test_meta_test_pairs_after_and_before_per_seed_and_task() -> None:
    from benchmarks.meta_test import summarize

    def record(post: list[float], pre: list[float]) -> dict[str, Any]:
        return {"tasks": {str(i): v for i, v in enumerate(post)}, "tasks_pre": {str(i): v for i, v in enumerate(pre)},
                "env_steps": 100}

    s = summarize({"seed0": record([-1.0, -2.0], [-4.0, -2.5]), "seed1": record([-3.0, -1.0], [-2.0, -6.0])})
    assert s["post_minus_pre"]["n"] == 4 and s["post_minus_pre"]["mean"] == pytest.approx((3 + 0.5 - 1 + 5) / 4)
    assert s["post_minus_pre_per_seed"] == {"seed0": 1.75, "seed1": 2.0}
    assert s["post_minus_pre_over_seeds"]["n"] == 2 and s["pairs_post_above_pre"] == 3
    assert s["return_pre_adapt"]["mean"] == pytest.approx(-14.5 / 4) and s["seeds"] == ["seed0", "seed1"]
