"""Faults: SIGKILL at a random moment, SIGTERM (with no W&B server), unusable checkpoints, NaN/inf."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from metarl.training.resume import load_checkpoint_file
from tests.resume_support import (  # noqa: F401
    assert_same_state,
    cli_env,
    counters,
    fit,
    fit_args,
    load,
    metrics,
    straight_run,
)


def start_fit(out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(out.parent / f"{out.name}.stderr", "w") as log:
        return subprocess.Popen([sys.executable, "-m", "metarl", *fit_args(out, *extra)], cwd=out.parent,
                                env=env or cli_env(), stdout=subprocess.DEVNULL, stderr=log)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 240) -> None:  # generous: CI shares its cores
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"training exited early ({proc.returncode})"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_sigkill_at_a_random_moment_then_resume(straight_run: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "killed"
    # A budget it never reaches: only SIGKILL ends it. A checkpoint after every iteration.
    proc = start_fit(out, "--model.init_args.total_env_steps=1000000", "--checkpoint.every_n_updates=4")
    last = out / "ckpt" / "last.ckpt"
    rng = random.Random()
    saves, delay = rng.randint(1, 6), rng.uniform(0, 0.1)
    seen: set[int] = set()

    def saved_enough() -> bool:
        if last.exists():
            seen.add(last.stat().st_mtime_ns)
        return len(seen) >= saves

    try:
        wait_for(saved_enough, proc)
        time.sleep(delay)  # anywhere in an iteration, a save, an evaluation
    finally:
        proc.kill()
        proc.wait()
    where = f"killed after {saves} saves + {delay:.3f} s"

    # Nothing under a checkpoint's name is partial: every *.ckpt reads (a save cut short is a hidden .tmp).
    for path in (out / "ckpt").glob("*.ckpt"):
        load_checkpoint_file(path)
    killed_at = load(last)

    rest = tmp_path / "rest"
    fit(rest, f"--ckpt_path={last}")  # with the reference run's budget
    assert counters(load(rest / "ckpt" / "last.ckpt"))["iteration"] > counters(killed_at)["iteration"], where
    assert_same_state(load(straight_run / "ckpt" / "last.ckpt"), load(rest / "ckpt" / "last.ckpt"))
    resumed = metrics(rest)
    assert resumed == metrics(straight_run)[-len(resumed):], where


def test_sigterm_writes_a_fresh_checkpoint_and_exits_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "preempted"
    # W&B asked online, with no API key anywhere and a server address nobody answers at: the run
    # must not fail for that (it logs offline), and SIGTERM still ends it with a checkpoint.
    env = {k: v for k, v in cli_env().items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="online", HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"),
               WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"), WANDB_BASE_URL="http://127.0.0.1:9",
               WANDB_INIT_TIMEOUT="20")
    loggers = [
        {"class_path": "pytorch_lightning.loggers.CSVLogger",
         "init_args": {"save_dir": str(out), "name": "csv", "version": 0}},
        {"class_path": "pytorch_lightning.loggers.WandbLogger",
         "init_args": {"project": "metarl", "save_dir": str(tmp_path), "offline": True}},
    ]
    proc = start_fit(out, "--model.init_args.total_env_steps=1000000", "--checkpoint.every_n_updates=8",
                     f"--trainer.logger={json.dumps(loggers)}", env=env)
    last = out / "ckpt" / "last.ckpt"
    try:
        # After training started (last.ckpt exists from before the evaluation at env step 0 on).
        wait_for(lambda: last.exists() and counters(load(last))["iteration"] > 0, proc)
        before = counters(load(last))["iteration"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    err = (tmp_path / "preempted.stderr").read_text()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("metarl: stopped by SIGTERM")]
    assert len(message) == 1 and f"--ckpt_path {last}" in message[0]
    saved = counters(load(last))
    assert saved["iteration"] >= before and f"after iteration {saved['iteration']} " in message[0]
    # Fresh: every iteration the run logged is in the checkpoint.
    logged = [float(row["train/env_steps"]) for row in metrics(out) if row["train/env_steps"]]
    assert max(logged) == saved["env_steps"]
    assert not list((out / "ckpt").glob(".*.tmp"))

    assert "metarl: W&B is unreachable" in err and "logging offline instead" in err
    assert list((tmp_path / "wandb").glob("offline-run-*")), "no offline W&B run to `wandb sync` later"


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "foreign", "other-family", "missing"])
def test_unusable_checkpoint_is_an_error_naming_the_file(
    damage: str, straight_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    good = (straight_run / "ckpt" / "last.ckpt").read_bytes()
    bad = tmp_path / "given" / "last.ckpt"
    bad.parent.mkdir()
    if damage == "truncated":
        bad.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        bad.write_bytes(b"")
    elif damage == "garbage":
        bad.write_bytes(os.urandom(4096))
    elif damage == "foreign":
        torch.save({"state_dict": {}, "epoch": 3}, bad)
    elif damage == "other-family":
        ckpt = load(straight_run / "ckpt" / "last.ckpt")
        ckpt["hyper_parameters"]["family"] = "cheetah-vel"
        torch.save(ckpt, bad)
    before = _digest(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        fit(tmp_path / "run", f"--ckpt_path={bad}")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(err) == 1 and err[0].startswith("metarl: error: checkpoint ") and str(bad) in err[0], err
    assert _digest(tmp_path) == before  # nothing written, nothing changed: no silent fresh start


class PoisonAt(pl.Callback):
    """Makes the critic's parameters NaN while iteration ``iteration`` runs."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if pl_module.iteration + 1 == self.iteration:
            with torch.no_grad():
                next(pl_module.critic.parameters()).fill_(float("nan"))


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    poison = {"class_path": "tests.test_faults.PoisonAt", "init_args": {"iteration": 7}}
    with pytest.raises(SystemExit) as exit_:
        fit(tmp_path, "--checkpoint.every_n_updates=4", f"--trainer.callbacks+={json.dumps(poison)}")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1
    assert len(err) == 1 and "train/loss_critic is nan" in err[0] and "iteration 7" in err[0], err
    last = load(tmp_path / "ckpt" / "last.ckpt")
    assert counters(last)["iteration"] == 6
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_nan_parameter_is_named(tiny_cli: Callable[..., Any]) -> None:
    model = tiny_cli().model
    with torch.no_grad():
        model.actor_encoder.gru.weight_hh_l0[0, 0] = float("inf")
    bad = r"parameter actor_encoder\.gru\.weight_hh_l0 is not finite at update 0"
    with pytest.raises(FloatingPointError, match=bad):
        model._check_finite({"train/loss_critic": 0.5, "train/loss_actor": -1.0})  # finite losses
