"""What the CLI guarantees for every method, one test each, over every method's tiny run:

- a run is never lost: ``fit --ckpt_path last`` starts a run; a stop signal writes a checkpoint and exits
  128 + signum with one line; the same command line resumes it (with another budget if asked);
  ``--ckpt_path FILE`` resumes into a new folder; and the end is the uninterrupted run (the same
  state, the same logged rows);
- ``python -m metarl test`` reports a checkpoint of the method (and leaves it untouched);
- a checkpoint of another method is a one-line error (exit 2) naming both methods.

One straight run per method serves all of its tests (MQL's is the session's ``straight_run``); the
stop, the requeue and the resume are one chain, so a method's tests cost two runs' worth of env steps.
What a method logs or stores of its own is in its ``Method`` below; its other tests are in its file."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.resume_support import (
    COMPARED,
    TINY,
    assert_same_onpolicy_state,
    assert_same_state,
    counters,
    fit,
    load,
    metrics,
    mql_straight,
    run_main,
)

NO_SUMMARY = ("--trainer.enable_model_summary=false", "--trainer.accelerator=cpu")


@dataclass(frozen=True)
class Method:
    name: str
    base: list[str]  # the tiny fit: its config + debug.yaml first (base[1:5]), then its overrides
    class_path: str
    half: int  # a smaller budget (env steps), an evaluation period's end after the signal's iteration
    half_counters: dict[str, int]  # at that budget
    counters: dict[str, int]  # of the whole run
    evals: list[float]  # the env steps of the whole run's evaluations
    eval_every: int
    replays: dict[str, int | None]  # its replay buffers: total size (None: not empty); none if on-policy
    report_keys: set[str]  # in every task's row of the meta-test report
    foreign: tuple[str, ...]  # methods whose checkpoint its config is given
    columns: Sequence[str] = tuple(COMPARED)  # logged columns the parts must reproduce
    own: Sequence[str] = ()  # its own columns: reproduced too, and each logged at least once
    # a stop signal, the iteration it arrives in, and whether that iteration ends an evaluation period
    signal: tuple[str, int, bool] = ("SIGTERM", 3, False)


def _tiny(config: str, *overrides: str) -> list[str]:
    return ["fit", "--config", config, "--config", "debug.yaml", *overrides, *NO_SUMMARY]


def _counters(env_steps: int, num_updates: int, num_episodes: int, iteration: int) -> dict[str, int]:
    return {"env_steps": env_steps, "num_updates": num_updates, "num_episodes": num_episodes, "iteration": iteration}


METHODS = {m.name: m for m in [
    # point_robot + debug (resume_support.TINY): iterations of one 20-step episode and 4 updates; evaluations
    # every 200 env steps; 400 in all: N = 80 updates, and a first part with a budget of 200 stops after N/2 = 40.
    Method("mql", TINY, "metarl.methods.mql.MQLMetaTrain", half=200,
           half_counters=_counters(200, 40, 10, 10), counters=_counters(400, 80, 20, 20),
           evals=[0.0, 200.0, 400.0], eval_every=200, replays={"replay": 400},
           report_keys={"return_pre_adapt", "return_post_adapt"}, foreign=("rl2", "mier"),
           own=["train/loss_critic", "train/loss_actor", "adapt/lambda", "adapt/ess"],
           signal=("SIGINT", 5, False)),  # (at a period's end: tests/test_resume.py)
    # a first iteration of 80 tasks x 2 initial + 40 steps = 200, then 40 per iteration and 4 updates each;
    # evaluations at 0, 200, 400 and 600 (the budget).
    Method("pearl", _tiny("pearl_point_robot.yaml", "--model.init_args.eval.every_env_steps=200"),
           "metarl.methods.pearl.PEARLMetaTrain", half=400,
           half_counters=_counters(400, 24, 92, 6), counters=_counters(600, 44, 102, 11),
           evals=[0.0, 200.0, 400.0, 600.0], eval_every=200, replays={"replay": None, "enc_replay": None},
           report_keys={"return_episode_1", "z_var_mean"}, foreign=("mql",)),
    # a first iteration of 80 tasks x 2 phi_0 steps + 40 = 200, then 40 per iteration and 4 updates each;
    # evaluations at 0, 200, 400 and 600 (the budget).
    Method("mier", _tiny("mier_point_robot.yaml", "--model.init_args.eval.every_env_steps=200"),
           "metarl.methods.mier.MIERMetaTrain", half=400,
           half_counters=_counters(400, 24, 98, 6), counters=_counters(600, 44, 113, 11),
           evals=[0.0, 200.0, 400.0, 600.0], eval_every=200, replays={"replay": None, "pre_replay": None},
           report_keys={"context_norm", "model_loss_post"}, foreign=("mql",),
           own=["mier/model_loss_pre", "mier/model_loss_post", "mier/context_norm", "mier/alpha", "train/loss_alpha",
                "adapt/model_loss_pre", "adapt/model_loss_post", "adapt/context_norm"]),
    # 2 trials x 40 steps = 80 env steps per iteration; evaluations at 0, 160, 320.
    Method("rl2", _tiny("rl2_point_robot.yaml", "--model.init_args.eval.every_env_steps=160",
                        "--model.init_args.total_env_steps=320"),
           "metarl.methods.rl2.RL2MetaTrain", half=160,
           half_counters=_counters(160, 4, 8, 2), counters=_counters(320, 8, 16, 4),
           evals=[0.0, 160.0, 320.0], eval_every=160, replays={},
           report_keys={"return_episode_1", "return_episode_2"}, foreign=("maml",),
           columns=["step", "epoch", "train/env_steps", "train/updates", "train/return", "rl2/loss_surrogate",
                    "rl2/loss_surrogate_after", "rl2/kl", "rl2/entropy", "eval/env_steps", "eval/return_pre_adapt",
                    "eval/return_post_adapt", "eval/return_episode_1"],
           signal=("SIGTERM", 1, False),
           own=["rl2/loss_surrogate", "rl2/loss_surrogate_after", "rl2/kl", "rl2/entropy", "eval/return_episode_1"]),
    # 2 tasks x 2 episodes x 20 steps x 2 phases = 160 env steps per iteration; evaluations at 0, 320, 640.
    Method("maml", _tiny("maml_point_robot.yaml", "--model.init_args.eval.every_env_steps=320",
                         "--model.init_args.total_env_steps=640"),
           "metarl.methods.maml.MAMLMetaTrain", half=320,
           half_counters=_counters(320, 2, 16, 2), counters=_counters(640, 4, 32, 4),
           evals=[0.0, 320.0, 640.0], eval_every=320, replays={},
           report_keys={"return_pre_adapt", "return_post_adapt"}, foreign=("maml_model",),
           columns=["step", "epoch", "train/env_steps", "train/return", "train/return_pre_adapt",
                    "maml/loss_before", "maml/loss_after", "maml/kl_after",
                    "eval/env_steps", "eval/return_pre_adapt", "eval/return_post_adapt"],
           signal=("SIGTERM", 1, False),
           own=["train/return_pre_adapt", "maml/loss_before", "maml/loss_after", "maml/kl_after"]),
    # iterations of 100 env steps and 4 meta-steps (the first random); evaluations at 0, 200 and 400 (the budget).
    Method("maml_model", _tiny("maml_model_point_robot.yaml", "--model.init_args.eval.every_env_steps=200",
                               "--model.init_args.total_env_steps=400"),
           "metarl.methods.maml_model.MAMLModelMetaTrain", half=200,
           half_counters=_counters(200, 8, 10, 2), counters=_counters(400, 16, 20, 4),
           evals=[0.0, 200.0, 400.0], eval_every=200, replays={"replay": 400},
           report_keys={"model_loss_pre", "model_loss_post"}, foreign=("pearl",),
           signal=("SIGTERM", 1, False),
           own=["model/loss_pre", "model/loss_post", "adapt/model_loss_pre", "adapt/model_loss_post",
                "train/updates"]),
]}
NAMES = list(METHODS)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``straight(name)``: the method's whole budget in one go (run once, on first use)."""
    runs: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in runs:
            if name == "mql":
                runs[name] = mql_straight(tmp_path_factory)
            else:
                runs[name] = tmp_path_factory.mktemp(f"{name}_straight")
                fit(runs[name], base=METHODS[name].base)
        return runs[name]

    return get


def _assert_same_state(method: Method, a: dict[str, Any], b: dict[str, Any]) -> None:
    if method.replays:
        assert method.replays.keys() <= a["metarl"].keys()
        assert_same_state(a, b)  # every replay buffer too
    else:
        assert_same_onpolicy_state(a, b)


def _rows(method: Method, out: Path) -> list[dict[str, str]]:
    return metrics(out, [*method.columns, *(c for c in method.own if c not in method.columns)])


# ----------------------------------------------------------------------------- stop, requeue, resume
@pytest.mark.filterwarnings("error:The dirpath has changed")  # resuming into a new folder is not a problem
@pytest.mark.parametrize("name", NAMES)
def test_a_stopped_then_requeued_then_resumed_run_is_the_uninterrupted_one(
    name: str, straight: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One command line, ``fit --ckpt_path last``, for the first start and every requeue of a pre-emptible
    job: (1) it starts a new run, which a stop signal ends with a checkpoint; (2) requeued, it resumes that
    checkpoint, here with a smaller budget (total_env_steps may change on resume), and ends at that budget;
    (3) ``--ckpt_path FILE`` resumes that into a new folder with the whole budget. The end is the
    uninterrupted run: the same state, the same logged rows."""
    method = METHODS[name]
    reference = straight(name)
    whole = _rows(method, reference)
    signame, iteration, period_end = method.signal
    signum = int(signal.Signals[signame])
    out = tmp_path / "run"
    last = out / "ckpt" / "last.ckpt"

    # (1) a new run, stopped by a signal in iteration `iteration`
    signal_at = {"class_path": "tests.test_resume.SignalAt", "init_args": {"iteration": iteration, "signum": signum}}
    handler = signal.getsignal(signum)
    with pytest.raises(SystemExit) as stop:
        fit(out, "--ckpt_path=last", f"--trainer.callbacks+={json.dumps(signal_at)}", base=method.base)
    assert stop.value.code == 128 + signum
    err = capsys.readouterr().err
    assert f"--ckpt_path last: no last.ckpt below {out / 'ckpt'}; starting a new run" in err
    assert f"stopped by {signame} after iteration {iteration}" in err and "Traceback" not in err
    assert signal.getsignal(signum) is handler  # the handler from before the run is back
    stopped = counters(load(last))
    # Saved at the end of the interrupted iteration; at an evaluation period's end, after its validation.
    assert stopped["iteration"] == iteration
    assert (stopped["env_steps"] % method.eval_every == 0) == period_end
    first = _rows(method, out)
    assert 0 < len(first) < len(whole) and first == whole[:len(first)]

    # (2) requeued: the same command line resumes it (here with a smaller budget) and ends at that budget
    fit(out, "--ckpt_path=last", f"--model.init_args.total_env_steps={method.half}", base=method.base)
    assert f"--ckpt_path last: resuming from {last}" in capsys.readouterr().err
    assert counters(load(last)) == method.half_counters
    second = _rows(method, out)  # the resumed run appends to the run's metrics.csv
    assert len(first) < len(second) < len(whole) and second == whole[:len(second)]

    # (3) that checkpoint, resumed into a new folder with the whole budget, ends as the uninterrupted run
    rest = tmp_path / "rest"
    fit(rest, f"--ckpt_path={last}", base=method.base)
    done = load(reference / "ckpt" / "last.ckpt")
    assert counters(done) == method.counters
    _assert_same_state(method, done, load(rest / "ckpt" / "last.ckpt"))
    for buffer, size in method.replays.items():
        stored = int(done["metarl"][buffer]["size"].sum())
        assert (stored == size) if size is not None else (stored > 0), f"{buffer} holds {stored}"
    assert second + _rows(method, rest) == whole
    assert all(any(row[c] for row in whole) for c in method.own)
    assert [float(r["eval/env_steps"]) for r in whole if r["eval/env_steps"]] == method.evals


@pytest.mark.parametrize("name", NAMES)
def test_a_signal_during_an_evaluation_stops_at_once_and_the_resumed_run_evaluates_first(
    name: str, straight: Callable[[str], Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Evaluations take minutes at full size, longer than a cluster waits after SIGTERM: a signal during
    one stops the run at once, with the checkpoint taken right before it. A resumed run redoes that
    evaluation first (stopped during it again, it stops at once again, keeping that checkpoint), and
    ends as the uninterrupted run: the same state, the same logged rows, the evaluation logged once."""
    method = METHODS[name]
    reference = straight(name)
    whole = _rows(method, reference)
    at = int(method.evals[1])  # the first evaluation after an update
    during = {"class_path": "tests.test_resume.SignalDuringEvaluation", "init_args": {"env_steps": at}}
    out = tmp_path / "run"
    last = out / "ckpt" / "last.ckpt"

    for attempt in ("stopped during the evaluation", "resumed, and stopped during it again"):
        with pytest.raises(SystemExit) as stop:
            fit(out, "--ckpt_path=last", f"--trainer.callbacks+={json.dumps(during)}", base=method.base)
        assert stop.value.code == 128 + signal.SIGTERM, attempt
        err = capfd.readouterr().err
        assert "got SIGTERM during an evaluation: stopping now" in err and "Traceback" not in err, attempt
        assert "stopped by SIGTERM after iteration" in err and f"checkpoint {out / 'ckpt'}" in err, attempt
        assert counters(load(last))["env_steps"] == at, attempt
        first = _rows(method, out)
        assert [float(r["eval/env_steps"]) for r in first if r["eval/env_steps"]] == method.evals[:1], attempt
        assert first == whole[:len(first)], attempt

    rest = tmp_path / "rest"
    fit(rest, f"--ckpt_path={last}", base=method.base)
    assert first + _rows(method, rest) == whole
    _assert_same_state(method, load(reference / "ckpt" / "last.ckpt"), load(rest / "ckpt" / "last.ckpt"))


# ----------------------------------------------------------------------------- the meta-test
@pytest.mark.parametrize("name", NAMES)
def test_meta_test_reports_a_checkpoint_of_the_method(
    name: str, straight: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    method = METHODS[name]
    ckpt = tmp_path / "ckpt" / "last.ckpt"  # a copy: the report is written next to it
    ckpt.parent.mkdir()
    shutil.copy(straight(name) / "ckpt" / "last.ckpt", ckpt)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    capsys.readouterr()
    run_main(["test", *method.base[1:5], f"--ckpt_path={ckpt}", "--trainer.logger=false",
              "--trainer.accelerator=cpu"])
    report = json.loads((ckpt.parent / "meta_test.json").read_text())
    assert report["method"] == name and report["family"] == "point-robot" and len(report["tasks"]) == 20
    assert report["checkpoint"] == str(ckpt)
    assert method.report_keys <= report["tasks"][0].keys()
    assert "return_post_adapt:" in capsys.readouterr().out
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest, "test must not rewrite the checkpoint"


# ----------------------------------------------------------------------------- another method's checkpoint
PAIRS = [(n, other) for n in NAMES for other in METHODS[n].foreign]


@pytest.mark.parametrize(("name", "other"), PAIRS, ids=[f"{other}-into-{n}" for n, other in PAIRS])
def test_a_checkpoint_of_another_method_is_a_one_line_error(
    name: str, other: str, straight: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        fit(tmp_path / "x", f"--ckpt_path={straight(other) / 'ckpt' / 'last.ckpt'}", base=METHODS[name].base)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("metarl: error:") and "Traceback" not in err
    assert METHODS[name].class_path in err and METHODS[other].class_path in err

