"""A run is one folder: a new run never writes beside another run's files, a resumed run continues
the same metrics.csv and W&B run (from the printed command, in another folder), leftovers of killed
saves are removed, and the checkpoint copies on disk stay bounded."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest
import pytorch_lightning as pl

from tests.resume_support import COMPARED, TINY, cli_env, fit, load, metrics, run_cli, run_main, straight_run  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return [{k: row.get(k, "") for k in COMPARED} for row in csv.DictReader(f)]


def _csv_logger(save_dir: Path | str, version: int | None = None) -> str:
    init = {"save_dir": str(save_dir), "name": "csv"}
    if version is not None:
        init["version"] = version
    return "--trainer.logger=" + json.dumps({"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": init})


@pytest.fixture
def other_run(straight_run: Path, tmp_path: Path) -> Path:  # noqa: F811
    """A folder holding another run's checkpoints and metrics."""
    folder = tmp_path / "other"
    shutil.copytree(straight_run / "ckpt", folder / "ckpt")
    shutil.copytree(straight_run / "csv", folder / "csv")
    return folder


def test_default_root_dir_moves_the_runs_logs_and_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scratch = tmp_path / "scratch"
    run_main([*TINY, "--model.init_args.total_env_steps=200", f"--trainer.default_root_dir={scratch}"])
    run = scratch / "csv" / "version_0"
    assert (run / "metrics.csv").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "runs").exists()  # the config's runs/debug is not used
    # The printed resume command (--ckpt_path last with the same root) continues the same run.
    run_main([*TINY, f"--trainer.default_root_dir={scratch}", "--ckpt_path", "last"])
    assert load(run / "checkpoints" / "last.ckpt")["metarl"]["counters"]["env_steps"] == 400
    assert not (scratch / "csv" / "version_1").exists() and not (tmp_path / "runs").exists()
    # From another folder, the checkpoint's path alone continues the run in its own folder, not in a
    # new one under the config's root (runs/debug, relative to where the command is typed).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rows = len(_rows(run / "metrics.csv"))
    run_main([*TINY, "--model.init_args.total_env_steps=600", "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    assert load(run / "checkpoints" / "last.ckpt")["metarl"]["counters"]["env_steps"] == 600
    assert len(_rows(run / "metrics.csv")) > rows and not list(elsewhere.iterdir())
    assert [p.name for p in (scratch / "csv").iterdir()] == ["version_0"]


@pytest.mark.parametrize("where", ["checkpoint-folder", "log-folder"])
def test_a_new_run_never_writes_beside_another_runs_files(
    where: str, other_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(other_run)
    extra = [f"--checkpoint.dirpath={other_run / 'ckpt'}"] if where == "checkpoint-folder" else \
        [f"--checkpoint.dirpath={tmp_path / 'new_ckpt'}", _csv_logger(other_run, version=0)]
    with pytest.raises(SystemExit) as exit_:
        fit(tmp_path / "new", *extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(err) == 1 and err[0].startswith("metarl: error: "), err
    if where == "checkpoint-folder":
        assert f"the checkpoint folder {other_run / 'ckpt'} already holds another run's checkpoints" in err[0]
        assert f"--ckpt_path {other_run / 'ckpt' / 'last.ckpt'}" in err[0]
    else:
        assert "already holds another run's metrics.csv" in err[0]
    assert _digest(other_run) == before  # byte-identical: nothing replaced, nothing added
    # Resuming into a folder that holds another run's checkpoints is refused too.
    with pytest.raises(SystemExit) as exit_:
        fit(tmp_path / "new", f"--checkpoint.dirpath={other_run / 'ckpt'}",
            f"--ckpt_path={tmp_path / 'elsewhere' / 'last.ckpt'}")
    assert exit_.value.code == 2
    assert _digest(other_run) == before


def test_requeued_first_attempt_without_a_checkpoint_starts_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An attempt killed before its first checkpoint left only a metrics.csv: the requeued command
    # (--ckpt_path last) starts from scratch and keeps the old file under another name.
    log_dir = tmp_path / "csv" / "version_0"
    log_dir.mkdir(parents=True)
    (log_dir / "metrics.csv").write_text("step,train/env_steps\n0,20.0\n")
    fit(tmp_path, "--ckpt_path=last", "--model.init_args.total_env_steps=200")
    assert "starting again from scratch" in capsys.readouterr().err
    kept = list(log_dir.glob("metrics-before-restart-*.csv"))
    assert len(kept) == 1 and kept[0].read_text() == "step,train/env_steps\n0,20.0\n"
    assert next(r["train/env_steps"] for r in metrics(tmp_path) if r["train/env_steps"]) == "20.0"


class CountCopies(pl.Callback):
    """Records, after every iteration, the checkpoint files and the full copies (inodes) on disk."""

    seen: ClassVar[list[tuple[int, int]]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object, **kwargs: object) -> None:
        files = [p for p in Path(trainer.checkpoint_callback.dirpath).glob("*.ckpt")]
        CountCopies.seen.append((len(files), len({p.stat().st_ino for p in files})))


@pytest.mark.parametrize("keep", [1, 2])
def test_checkpoint_copies_stay_bounded(keep: int, tmp_path: Path) -> None:
    CountCopies.seen = []
    counter = {"class_path": "tests.test_run_folders.CountCopies"}
    # A save after every iteration (4 updates each): 20 saves over the run.
    fit(tmp_path, "--checkpoint.every_n_updates=4", f"--checkpoint.save_top_k={keep}",
        f"--trainer.callbacks+={json.dumps(counter)}")
    folder = tmp_path / "ckpt"
    periodic = sorted(folder.glob("env_steps=*.ckpt"), key=lambda p: int(p.stem.split("=")[1]))
    assert len(periodic) == keep
    last = folder / "last.ckpt"
    env_steps = load(last)["metarl"]["counters"]["env_steps"]
    assert periodic[-1].name == f"env_steps={env_steps}.ckpt"  # named by env steps
    assert last.stat().st_ino == periodic[-1].stat().st_ino  # the same state: a second name, not a copy
    assert not list(folder.glob("last-v*.ckpt")) and not list(folder.glob(".*.tmp"))
    assert len(CountCopies.seen) == 20
    assert max(copies for _, copies in CountCopies.seen) <= keep + 1, CountCopies.seen
    assert max(files for files, _ in CountCopies.seen) <= keep + 1


def test_sigterm_then_the_printed_command_from_another_folder_continues_the_same_run(
    straight_run: Path, tmp_path: Path  # noqa: F811
) -> None:
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir()
    elsewhere.mkdir()
    env = {**cli_env(), "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wandb-tmp"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    loggers = [{"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": "runs", "name": "csv"}},
               {"class_path": "pytorch_lightning.loggers.WandbLogger",
                "init_args": {"project": "metarl", "save_dir": "runs", "offline": True}}]
    signal_at = {"class_path": "tests.test_resume.SignalAt", "init_args": {"iteration": 6, "signum": 15}}
    out = run_cli(first, *TINY, f"--trainer.logger={json.dumps(loggers)}",
                  f"--trainer.callbacks+={json.dumps(signal_at)}", timeout=300, env=env)
    assert out.returncode == 128 + signal.SIGTERM, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("metarl: stopped by SIGTERM")]
    assert len(lines) == 1, out.stderr[-3000:]
    command = lines[0].split("resume with: ", 1)[1]
    run_dir = first / "runs" / "csv" / "version_0"
    assert command.endswith(f"--ckpt_path {run_dir / 'checkpoints' / 'last.ckpt'}")
    # A save cut short by SIGKILL would have left these: the restart removes them.
    for name in (".last.ckpt.k1l2.tmp", ".env_steps=120.ckpt.x9y8.tmp"):
        (run_dir / "checkpoints" / name).write_bytes(b"partial")

    resumed = subprocess.run(command, shell=True, cwd=elsewhere, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "removed 2 unfinished checkpoint file(s)" in resumed.stderr
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    assert not list(elsewhere.iterdir())  # nothing written where the command was typed
    # One run folder, one metrics.csv: the two halves appended, equal to the run that never stopped.
    assert [p.name for p in (first / "runs" / "csv").iterdir()] == ["version_0"]
    assert _rows(run_dir / "metrics.csv") == metrics(straight_run)
    assert load(run_dir / "checkpoints" / "last.ckpt")["metarl"]["counters"] == \
        load(straight_run / "ckpt" / "last.ckpt")["metarl"]["counters"]
    # One W&B run: the resumed process logged to the same run id.
    runs = sorted((first / "runs" / "wandb").glob("offline-run-*"))
    ids = {re.sub(r"^offline-run-\d{8}_\d{6}-", "", p.name) for p in runs}
    assert len(runs) == 2 and len(ids) == 1, [p.name for p in runs]
    assert load(run_dir / "checkpoints" / "last.ckpt")["metarl_run"]["wandb_id"] == ids.pop()
