"""Many seeds in one ``fit`` process (``--seeds``, training/seeds.py): seed k of a multi-seed run is the
single-seed run of seed k; the mean over seeds under the usual metric names; exact resume after
SIGTERM; checkpoints of other seeds refused with one line; ``test`` reports per seed and across seeds."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from metarl.training.evaluation import t_ci95, t_quantile_975
from metarl.training.seeds import parse_seeds
from tests.resume_support import COMPARED, TINY, assert_same_state, counters, fit, load, metrics, run_main

SEEDS = "--seeds=0,1"
#: What seed k's columns hold, and what its single-seed run logs under the plain names.
PER_SEED = ["train/env_steps", "train/updates", "train/loss_critic", "train/loss_actor", "train/return",
            "eval/return_pre_adapt", "eval/return_post_adapt", "adapt/lambda", "adapt/ess"]
_RUNS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeds 0 and 1 in one process, TINY's whole budget (two evaluations and the one at env step 0)."""
    if "multi" not in _RUNS:
        out = tmp_path_factory.mktemp("multi")
        fit(out, SEEDS)
        _RUNS["multi"] = out
    return _RUNS["multi"]


@pytest.fixture(scope="module")
def single_1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "single" not in _RUNS:
        out = tmp_path_factory.mktemp("single1")
        fit(out, "--model.init_args.seed=1")
        _RUNS["single"] = out
    return _RUNS["single"]


def _column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key, "") != ""]


def _seed_state(ckpt: dict[str, Any], i: int, n_opt: int) -> dict[str, Any]:
    """Member i of a multi-seed checkpoint, laid out as a single-seed checkpoint."""
    prefix = f"members.{i}."
    member = ckpt["metarl"]["members"][i]
    return {
        "state_dict": {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)},
        "optimizer_states": ckpt["optimizer_states"][i * n_opt:(i + 1) * n_opt],
        "metarl": {"counters": member["counters"], **member["state"]},
    }


def test_seed_k_of_a_multi_seed_run_is_the_single_seed_run(multi: Path, single_1: Path) -> None:
    rows, alone = metrics(multi, COMPARED + [f"seed1/{k}" for k in PER_SEED]), metrics(single_1, COMPARED)
    for key in PER_SEED:
        got, want = _column(rows, f"seed1/{key}"), _column(alone, key)
        assert got and got == pytest.approx(want, rel=1e-5, abs=1e-6), key
    # The whole state after the budget: weights, optimizer moments, replay, counters.
    ckpt, ref = load(multi / "ckpt" / "last.ckpt"), load(single_1 / "ckpt" / "last.ckpt")
    assert ckpt["metarl"]["seeds"] == [0, 1] and ckpt["hyper_parameters"]["seed"] == 0
    assert_same_state(_seed_state(ckpt, 1, len(ref["optimizer_states"])), ref)


def test_the_usual_names_carry_the_mean_over_seeds_and_its_interval(multi: Path) -> None:
    names = ["eval/return_post_adapt", "eval/return_post_adapt_ci95", "seed0/eval/return_post_adapt",
             "seed1/eval/return_post_adapt", "train/return", "seed0/train/return", "seed1/train/return"]
    rows = metrics(multi, names)
    evals = [r for r in rows if r["eval/return_post_adapt"]]
    assert len(evals) == 3  # env step 0, 200, 400
    for r in evals + [r for r in rows if r["train/return"]]:
        for what in ("eval/return_post_adapt", "train/return"):
            if r[what]:
                pair = [float(r[f"seed{k}/{what}"]) for k in (0, 1)]
                assert float(r[what]) == pytest.approx(sum(pair) / 2, rel=1e-6)
    for r in evals:
        pair = [float(r[f"seed{k}/eval/return_post_adapt"]) for k in (0, 1)]
        assert float(r["eval/return_post_adapt_ci95"]) == pytest.approx(t_ci95(pair)["half_width"], rel=1e-5)
    with open(multi / "csv" / "version_0" / "train_task_returns.csv") as f:
        header = f.readline().strip().split(",")
    assert header == ["step", "train/env_steps", "seed", "task", "return"]


@pytest.mark.parametrize("at, iteration", [
    ({"class_path": "tests.test_resume.SignalAt", "init_args": {"iteration": 5, "signum": int(signal.SIGTERM)}}, 5),
    # during the evaluation at 200 env steps (after iteration 10): it stops at once, and the resumed run
    # redoes that evaluation for every seed
    ({"class_path": "tests.test_resume.SignalDuringEvaluation", "init_args": {"env_steps": 200}}, 10),
], ids=["in-an-iteration", "during-an-evaluation"])
def test_sigterm_then_resume_is_the_uninterrupted_run(multi: Path, tmp_path: Path, at: dict[str, Any],
                                                      iteration: int, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "stopped"
    with pytest.raises(SystemExit) as stop:
        fit(out, SEEDS, f"--trainer.callbacks+={json.dumps(at)}")
    assert stop.value.code == 128 + signal.SIGTERM
    assert "Traceback" not in capsys.readouterr().err
    assert counters(load(out / "ckpt" / "last.ckpt"))["iteration"] == iteration
    rest = tmp_path / "rest"
    fit(rest, SEEDS, f"--ckpt_path={out / 'ckpt' / 'last.ckpt'}")
    straight, resumed = load(multi / "ckpt" / "last.ckpt"), load(rest / "ckpt" / "last.ckpt")
    n_opt = len(straight["optimizer_states"]) // 2
    for i in (0, 1):
        assert_same_state(_seed_state(straight, i, n_opt), _seed_state(resumed, i, n_opt))
    columns = COMPARED + [f"seed{k}/{name}" for k in (0, 1) for name in PER_SEED]
    assert metrics(out, columns) + metrics(rest, columns) == metrics(multi, columns)


@pytest.mark.parametrize("run, args, says", [
    ("multi", [], "holds seeds 0,1, but this fit asks for a single seed (0); add --seeds 0,1"),
    ("multi", ["--seeds=0,2"], "holds seeds 0,1, but this fit asks for seeds 0,2; add --seeds 0,1"),
    ("single", [SEEDS], "holds a single-seed run (seed 1), but this fit asks for seeds 0,1; leave out --seeds"),
], ids=["multi-as-single", "other-seeds", "single-as-multi"])
def test_a_checkpoint_of_other_seeds_is_refused_in_one_line(
    run: str, args: list[str], says: str, multi: Path, single_1: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ckpt = (multi if run == "multi" else single_1) / "ckpt" / "last.ckpt"
    before = ckpt.read_bytes()
    with pytest.raises(SystemExit) as stop:
        fit(tmp_path, *args, f"--ckpt_path={ckpt}", "--model.init_args.total_env_steps=600")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("metarl: error: checkpoint ") and err[0].endswith(says), err
    assert ckpt.read_bytes() == before


def test_meta_test_reports_each_seed_and_the_spread_over_seeds(multi: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes((multi / "ckpt" / "last.ckpt").read_bytes())
    run_main(["test", *TINY[1:], f"--ckpt_path={ckpt}", "--trainer.logger=false", "--model.init_args.eval.num_tasks=2"])
    report = json.loads((tmp_path / "meta_test.json").read_text())
    assert report["seeds"] == [0, 1] and set(report["per_seed"]) == {"0", "1"}
    n_tasks = len(report["per_seed"]["0"]["tasks"])
    assert n_tasks == report["n_tasks"] == 20  # the meta-test adapts on every eval task
    means = [report["per_seed"][k]["return_post_adapt"]["mean"] for k in ("0", "1")]
    across = report["return_post_adapt"]
    assert across["n_seeds"] == 2 and across["mean"] == pytest.approx(sum(means) / 2)
    assert across["ci95_high"] - across["mean"] == pytest.approx(t_ci95(means)["half_width"])
    assert report["pooled"]["return_post_adapt"]["n_tasks"] == 2 * n_tasks
    out = capsys.readouterr().out
    assert "(over 2 seeds, Student t)" in out


def test_seed_lists_and_the_t_interval() -> None:
    assert parse_seeds("0,1,2") == parse_seeds("[0, 1, 2]") == parse_seeds([0, 1, 2]) == [0, 1, 2]
    assert parse_seeds(3) == [3] and parse_seeds(None) is None
    for bad, says in (("0,0", "distinct"), ("a,b", "integers"), ("-1,2", ">= 0"), ("", "empty")):
        with pytest.raises(ValueError, match=says):
            parse_seeds(bad)
    assert t_quantile_975(2) == 4.303 and abs(t_quantile_975(200) - 1.97190) < 1e-4
    ci = t_ci95([1.0, 2.0, 3.0])
    assert ci["mean"] == 2.0 and ci["half_width"] == pytest.approx(4.303 * 1.0 / 3**0.5)


def test_bad_seeds_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        fit(tmp_path, "--seeds=1,1")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["metarl: error: seeds must be distinct, got [1, 1]"]
    assert not torch.cuda.is_initialized()


def test_mql_batched_update_equals_the_seed_by_seed_updates(multi: Path, tmp_path: Path) -> None:
    """``batched_update``: the seeds' TD3 updates as one stacked update (SeedBatchedTD3Nets); the same
    run up to fp32 rounding (batched and plain GEMMs round differently), Lightning's step count included."""
    fit(tmp_path, SEEDS, "--model.init_args.batched_update=true")
    columns = ["step"] + [f"seed{k}/{name}" for k in (0, 1) for name in PER_SEED]
    got, want = metrics(tmp_path, columns), metrics(multi, columns)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for key in columns[1:]:
        assert _column(got, key) == pytest.approx(_column(want, key), rel=1e-4, abs=1e-5), key
    a, b = load(tmp_path / "ckpt" / "last.ckpt"), load(multi / "ckpt" / "last.ckpt")
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(value, b["state_dict"][key], rtol=1e-4, atol=1e-5, msg=key)
    for oa, ob in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        assert oa["state"].keys() == ob["state"].keys()
        for pid, sa in oa["state"].items():
            for name, value in sa.items():
                torch.testing.assert_close(torch.as_tensor(value), torch.as_tensor(ob["state"][pid][name]),
                                           rtol=1e-4, atol=1e-6)


def test_any_method_gets_seeds_rl2_seed_k_is_its_single_seed_run(tmp_path: Path) -> None:
    """MultiSeed uses only the MetaTrainModule contract: RL² (on-policy, a TorchRL GRU policy, trials in
    one batched env) gives seed 1 of a multi-seed run bit-identical to its single-seed run."""
    base = ["fit", "--config", "rl2_point_robot.yaml", "--config", "debug.yaml", "--trainer.accelerator=cpu",
            "--model.init_args.total_env_steps=320", "--model.init_args.eval.every_env_steps=160"]
    fit(tmp_path / "multi", SEEDS, base=base)
    fit(tmp_path / "single", "--model.init_args.seed=1", base=base)
    names = ["train/env_steps", "train/return", "rl2/loss_surrogate", "rl2/kl", "rl2/entropy",
             "eval/return_pre_adapt", "eval/return_post_adapt"]
    rows = metrics(tmp_path / "multi", [f"seed1/{k}" for k in names])
    alone = metrics(tmp_path / "single", names)
    for key in names:
        got, want = _column(rows, f"seed1/{key}"), _column(alone, key)
        assert got and got == want, key
