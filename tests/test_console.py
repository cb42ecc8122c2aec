"""What a user sees: the start block, no third-party noise, the env-step progress bar with its ETA,
the eval-task bar, what a stop signal says (and when), per-task returns logged only when played,
and W&B failures reported in one line."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.resume_support import TINY, cli_env, fit, straight_run  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def test_start_block_and_no_third_party_noise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit(tmp_path, "--model.init_args.total_env_steps=200", "--threads=1")
    out, err = capsys.readouterr()
    lines = out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("metarl fit: ")))
    block = lines[start:start + 6]
    assert block[0] == "metarl fit: MQL on point-robot (80 train / 20 eval tasks), seed 0"
    assert block[1] == "  budget       200 env steps"
    assert block[2] == "  evaluation   every 200 env steps, adapting on 1 eval task"
    assert block[3] == "  threads      1 torch thread (threads in the config or command line)"
    assert block[4].startswith(f"  checkpoints  {tmp_path / 'ckpt'}/ (last.ckpt + the newest 1 of those saved every"
                               " 10 updates, every 30 min 00 s, before and after each evaluation; up to ")
    assert block[5] == f"  metrics      {tmp_path / 'csv' / 'version_0' / 'metrics.csv'} " \
                       f"(python -m metarl plot {tmp_path / 'csv' / 'version_0'})"
    assert lines[-1] == f"metarl: done: 200 env steps; checkpoint {tmp_path / 'ckpt' / 'last.ckpt'}"
    for noise in ("GPU available", "TPU available", "Tip:", "LeafSpec", "| Name", "Total params", "Seed set"):
        assert noise not in out + err, noise
    assert err == ""


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_counts_env_steps_with_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    from metarl.training.progress import EnvStepProgressBar

    monkeypatch.setenv("TERM", "xterm")
    screen = FakeTTY()
    bar = EnvStepProgressBar(refresh_s=0, file=screen)
    module = SimpleNamespace(env_steps=1_000, total_env_steps=5_000)
    trainer = SimpleNamespace(callback_metrics={}, sanity_checking=False, num_val_batches=[3])
    bar.on_train_start(trainer, module)
    for steps in (1_500, 2_000):
        time.sleep(0.05)
        module.env_steps = steps
        trainer.callback_metrics = {"train/return": -12.34}
        bar.on_train_batch_end(trainer, module)
    text = screen.getvalue()
    assert "train:  40%|" in text and "2,000/5,000 env steps" in text and "env steps/s" in text, text
    assert "return -12.3" in text and "<" in text  # elapsed<remaining: the ETA
    bar.on_validation_start(trainer, module)
    bar.on_validation_batch_start(trainer, module, 1, 1)
    assert "eval at 2,000 env steps: adapting task 2 of 3" in screen.getvalue()
    bar.on_validation_batch_end(trainer, module)
    trainer.callback_metrics = {"eval/return_pre_adapt": -5.0, "eval/return_post_adapt": -3.5}
    bar.on_validation_end(trainer, module)
    assert "eval at 2,000 env steps (3 tasks, 0 s): return -5.0 before adaptation, -3.5 after" in screen.getvalue()
    bar.on_train_end(trainer, module)

    # Output to a file (a cluster job's log): a status line now and then, no bar.
    log = io.StringIO()
    plain = EnvStepProgressBar(log_every_s=0, file=log)
    module.env_steps = 1_000
    plain.on_train_start(trainer, module)
    time.sleep(0.05)
    module.env_steps = 2_000
    plain.on_train_batch_end(trainer, module)
    line = log.getvalue().strip()
    assert line.startswith("metarl: 2,000/5,000 env steps (40.0%), ") and " env steps/s, ETA " in line, line
    plain.on_validation_start(trainer, module)  # an evaluation is announced when it starts, then its result
    assert log.getvalue().splitlines()[-1] == "eval at 2,000 env steps: adapting on 3 eval tasks ..."
    plain.on_validation_end(trainer, module)
    assert log.getvalue().splitlines()[-1].startswith("eval at 2,000 env steps (3 tasks, 0 s): return -5.0 before")


def test_per_task_returns_only_when_played(straight_run: Path) -> None:  # noqa: F811
    run = straight_run / "csv" / "version_0"
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert not [k for k in rows[0] if k.startswith("train/return_task/")]  # no column per task
    with open(run / "train_task_returns.csv") as f:
        played = list(csv.DictReader(f))
    train_rows = [r for r in rows if r["train/return"]]
    # One episode per iteration in TINY: one row each, with that iteration's return; no repeats.
    assert len(played) == len(train_rows) == 20
    for p, r in zip(played, train_rows, strict=True):
        assert p["train/env_steps"] == r["train/env_steps"] and float(p["return"]) == float(r["train/return"])
    # Step-only metrics appear at the iterations that logged them, never repeated stale.
    losses = [r["train/loss_critic"] for r in train_rows]
    assert len(set(losses)) == len(losses)


def test_sigterm_during_an_evaluation_says_it_stops_at_once(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    during = {"class_path": "tests.test_resume.SignalDuringEvaluation", "init_args": {"env_steps": 200, "task": 1}}
    with pytest.raises(SystemExit) as stop:
        fit(tmp_path, "--model.init_args.eval.num_tasks=3", f"--trainer.callbacks+={json.dumps(during)}")
    assert stop.value.code == 128 + signal.SIGTERM
    err = capfd.readouterr().err.splitlines()  # the signal handler writes to fd 2 itself
    ckpt = tmp_path / "ckpt" / "env_steps=200.ckpt"
    said = [line for line in err if line.startswith("metarl: got SIGTERM")]
    assert said == [f"metarl: got SIGTERM during an evaluation: stopping now, without it; the checkpoint {ckpt} "
                    "(taken right before it) is kept, and the resumed run evaluates first"]
    stopped = [line for line in err if line.startswith("metarl: stopped by SIGTERM")]
    assert len(stopped) == 1 and f"(env step 200); checkpoint {ckpt}; resume with: cd " in stopped[0]


def test_sigterm_during_start_up_says_so(tmp_path: Path) -> None:
    env = {**cli_env(), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "metarl", *TINY], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # importing torch and Lightning
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert err.strip().splitlines() == ["metarl: stopped by SIGTERM during start-up, before training started: "
                                        "nothing to save yet"], err[-2000:]


def test_wandb_failures_are_reported_once_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from metarl.tracking import HEALTH, _guarded, check_wandb_folder

    HEALTH.__init__()
    try:
        def broken(*args: object) -> None:
            raise OSError(28, "No space left on device")

        log = _guarded(broken, lambda: 1_200)
        assert log({"a": 1}) is None and log({"a": 2}) is None  # the run goes on
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["metarl: warning: W&B logging failed at env step 1,200 (OSError: [Errno 28] No space left on "
                       "device); the W&B run is incomplete from here on, the run itself goes on (metrics.csv and "
                       "the checkpoints are complete)"]
        assert HEALTH.summary().startswith("metarl: warning: the W&B run is incomplete from env step 1,200 on")

        # W&B's service writes what it could not save only to its own log.
        HEALTH.__init__()
        logs = tmp_path / "offline-run-x" / "logs"
        logs.mkdir(parents=True)
        (logs / "debug-internal.log").write_text(
            '{"level":"INFO","msg":"fine"}\n{"time":"t","level":"ERROR","msg":"writer: failed to save record: '
            'transactionlog: write run.wandb: no space left on device"}\n')
        check_wandb_folder(tmp_path / "offline-run-x", 3_000)
        assert "W&B could not write its run file: writer: failed to save record" in HEALTH.failure
    finally:
        HEALTH.__init__()


def test_the_evaluation_at_env_step_0_is_announced(tiny_cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from metarl.training.callbacks import MetaCheckpoint
    from metarl.training.progress import EnvStepProgressBar, evaluates_at_start

    model = tiny_cli().model
    assert evaluates_at_start(model) == 1  # the debug overlay evaluates on one task, also before any update
    log = io.StringIO()
    bar = EnvStepProgressBar(file=log)
    trainer = SimpleNamespace(callback_metrics={})
    bar.on_train_start(trainer, model)
    assert log.getvalue() == "eval at 0 env steps (before any update): adapting on 1 eval task ...\n"
    bar.on_train_batch_start(trainer, model)
    assert log.getvalue().splitlines()[-1].startswith("eval at 0 env steps done (")
    # A stop signal during it says so, and what follows.
    checkpoint = MetaCheckpoint(every_n_updates=10)
    checkpoint._eval = {"started": time.monotonic(), "done": 0, "total": 1, "at_start": True}
    assert checkpoint.signal_message(signal.SIGTERM).startswith(
        "metarl: got SIGTERM during the evaluation at env step 0 (1 eval tasks, before any update")
