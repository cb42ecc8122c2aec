"""MQL's own resume cases, where its schedule makes them hard: from a periodic checkpoint just before an
evaluation, a SIGINT in the iteration that ends an evaluation period, inside the batched cold start;
finding the newest last.ckpt; and ``SignalAt``. (Every method's stop signal, ``--ckpt_path last`` and
exact resume through the CLI: tests/test_method_contract.py.)"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl

from tests.resume_support import (  # noqa: F401
    assert_same_state,
    at_epoch_end,
    counters,
    fit,
    load,
    metrics,
    straight_run,
)


def test_resume_from_periodic_checkpoint_before_epoch_end(straight_run: Path, tmp_path: Path) -> None:  # noqa: F811
    # The hardest periodic checkpoint: the iteration right before an epoch ends (Lightning has already
    # decided that one more iteration runs, then validation).
    mid_epoch = [(load(p), p) for p in (straight_run / "ckpt").glob("env_steps=*.ckpt")]
    mid_epoch = [(c, p) for c, p in mid_epoch if c["epoch"] == 0 and not at_epoch_end(c)]
    _, path = max(mid_epoch, key=lambda cp: counters(cp[0])["iteration"])

    out = tmp_path / "resumed"
    fit(out, f"--ckpt_path={path}")
    assert_same_state(load(straight_run / "ckpt" / "last.ckpt"), load(out / "ckpt" / "last.ckpt"))
    resumed = metrics(out)
    assert resumed == metrics(straight_run)[-len(resumed):]
    assert any(row["eval/return_post_adapt"] for row in resumed), "the epoch's evaluation was skipped"


class SignalAt(pl.Callback):
    """Sends ``signum`` to this process while iteration ``iteration`` runs."""

    def __init__(self, iteration: int, signum: int = int(signal.SIGINT)) -> None:
        self.iteration, self.signum = iteration, signum

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if pl_module.iteration + 1 == self.iteration:
            os.kill(os.getpid(), self.signum)


class SignalDuringEvaluation(pl.Callback):
    """Sends ``signum`` to this process as eval task ``task`` of the evaluation at ``env_steps`` starts."""

    def __init__(self, env_steps: int, task: int = 0, signum: int = int(signal.SIGTERM)) -> None:
        self.env_steps, self.task, self.signum = env_steps, task, signum

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking and batch_idx == self.task and pl_module.env_steps == self.env_steps:
            os.kill(os.getpid(), self.signum)


def test_resume_inside_the_batched_cold_start_is_exact(tmp_path: Path) -> None:
    """A cold start of 300 steps in iterations of at most 4 one-episode rounds (80 steps), stopped after
    its first iteration: the resumed run's cold start and the updates after it are the straight run's
    (the cold start keeps no env state)."""
    cold = ("--model.init_args.collect.cold_start_steps=300", "--model.init_args.collect.cold_start_envs=4")
    straight = tmp_path / "straight"
    # The straight run saves on the time trigger alone (Lightning ignores it under manual
    # optimization; metarl's own trigger must not): with a zero interval, after every iteration,
    # including the evaluation at 200 env steps inside the cold start, before any optimizer step.
    fit(straight, *cold, "--checkpoint.every_n_updates=null", "--checkpoint.train_time_interval=0:00:00",
        "--checkpoint.save_top_k=-1")
    saved = {counters(load(p))["iteration"]: p for p in (straight / "ckpt").glob("env_steps=*.ckpt")}
    assert sorted(saved) == list(range(1, 11))
    assert counters(load(saved[3])) == {"env_steps": 200, "num_updates": 0, "num_episodes": 10, "iteration": 3}
    assert at_epoch_end(load(saved[3]))
    out = tmp_path / "stopped"
    signal_at = {"class_path": "tests.test_resume.SignalAt", "init_args": {"iteration": 1}}
    with pytest.raises(SystemExit):
        fit(out, *cold, f"--trainer.callbacks+={json.dumps(signal_at)}")
    assert counters(load(out / "ckpt" / "last.ckpt"))["env_steps"] == 80
    rest = tmp_path / "rest"
    fit(rest, *cold, f"--ckpt_path={out / 'ckpt' / 'last.ckpt'}")
    assert_same_state(load(straight / "ckpt" / "last.ckpt"), load(rest / "ckpt" / "last.ckpt"))
    assert metrics(out) + metrics(rest) == metrics(straight)
    # A time-triggered save mid-epoch, after the cold start: resuming from it is exact too.
    timed = tmp_path / "timed"
    fit(timed, *cold, f"--ckpt_path={saved[7]}")
    assert_same_state(load(straight / "ckpt" / "last.ckpt"), load(timed / "ckpt" / "last.ckpt"))
    assert metrics(timed) == metrics(straight)[-len(metrics(timed)):]


def test_sigint_in_the_iteration_that_ends_an_evaluation_period_checkpoints_and_resumes_exactly(
    straight_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    """Lightning has decided that validation follows this iteration: the checkpoint is written after it.
    (Mid-period, for every method: tests/test_method_contract.py.)"""
    iteration = 10
    out = tmp_path / "stopped"
    signal_at = {"class_path": "tests.test_resume.SignalAt", "init_args": {"iteration": iteration}}
    callback = f"--trainer.callbacks+={json.dumps(signal_at)}"
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as stop:
        fit(out, callback)
    assert stop.value.code == 128 + signal.SIGINT
    err = capsys.readouterr().err
    assert f"stopped by SIGINT after iteration {iteration}" in err and "Traceback" not in err
    saved = load(out / "ckpt" / "last.ckpt")
    # Saved at the end of the interrupted iteration, which ends an epoch: before its validation, which the
    # resumed run does first.
    assert counters(saved)["iteration"] == iteration
    assert at_epoch_end(saved)
    assert signal.getsignal(signal.SIGINT) is handler  # the handler from before the run is back

    rest = tmp_path / "rest"
    fit(rest, f"--ckpt_path={out / 'ckpt' / 'last.ckpt'}")
    assert_same_state(load(straight_run / "ckpt" / "last.ckpt"), load(rest / "ckpt" / "last.ckpt"))
    assert metrics(out) + metrics(rest) == metrics(straight_run)


def test_last_checkpoint_is_the_newest_of_this_experiment_and_skips_sweep_runs(tmp_path: Path) -> None:
    from jsonargparse import Namespace

    from metarl.training.resume import find_last_checkpoint

    def touch(rel: str, mtime: int) -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (mtime, mtime))
        return path

    touch("csv/version_0/checkpoints/last.ckpt", 1_000)
    newest = touch("csv/version_1/checkpoints/last.ckpt", 2_000)
    touch("sweeps/abc/run1/checkpoints/last.ckpt", 3_000)  # another experiment
    touch("csv/version_1/checkpoints/epoch=0-step=8.ckpt", 4_000)  # not a last.ckpt
    cfg = Namespace()
    cfg["trainer.logger"] = [{"class_path": "pytorch_lightning.loggers.CSVLogger",
                              "init_args": {"save_dir": str(tmp_path), "name": "csv"}}]
    cfg["trainer.default_root_dir"] = str(tmp_path / "elsewhere")
    cfg["checkpoint.dirpath"] = None
    assert find_last_checkpoint(cfg) == (tmp_path, newest)
    cfg["checkpoint.dirpath"] = str(tmp_path / "none_here")
    assert find_last_checkpoint(cfg) == (tmp_path / "none_here", None)


def test_a_signal_during_the_evaluation_at_env_step_0_stops_at_once_and_the_run_starts_again_as_new(
    straight_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    """That evaluation runs before any update (minutes at full size): a checkpoint of the state before it
    lets a signal stop the run at once; resumed (the same command line), the run starts as a new one does
    and ends as the uninterrupted run."""
    from metarl.training.module import MetaTrainModule

    evaluate = MetaTrainModule._evaluate

    def signalled(self: MetaTrainModule, task_index: int) -> object:
        if self.env_steps == 0 and task_index == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(self, task_index)

    monkeypatch.setattr(MetaTrainModule, "_evaluate", signalled)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        fit(out, "--ckpt_path=last")
    assert stop.value.code == 128 + signal.SIGTERM
    err = capfd.readouterr().err
    assert "got SIGTERM during an evaluation: stopping now" in err and "Traceback" not in err
    assert counters(load(out / "ckpt" / "last.ckpt"))["env_steps"] == 0
    monkeypatch.undo()
    fit(out, "--ckpt_path=last")
    assert_same_state(load(straight_run / "ckpt" / "last.ckpt"), load(out / "ckpt" / "last.ckpt"))
    assert metrics(out) == metrics(straight_run)
