"""A run is one folder (docs/reliability.md, "Run folders").

- A new run never writes into or beside another run's files: a checkpoint folder that already holds
  checkpoints, or a log folder that already holds a ``metrics.csv``, is an error naming the folder
  and the command that resumes the run in it. (A requeued job, ``--ckpt_path last`` or a sweep run,
  whose earlier attempt died before its first checkpoint, starts again from scratch: the old
  attempt's ``metrics.csv`` is kept under another name.)
- A resumed run continues in its own folder: it appends to its ``metrics.csv`` and logs to the same
  W&B run id (both recorded in every checkpoint, see :func:`run_identity`).
- Hidden ``*.tmp`` files that a save cut short by SIGKILL left in the checkpoint folder are removed
  when the run starts again.
- Per-task training returns go to ``train_task_returns.csv`` (one row per played episode), not to
  one column per task in ``metrics.csv``.
"""

from __future__ import annotations

import csv
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from metarl.cli_errors import ConfigError
from metarl.tracking import config_get, logger_configs

#: The temporary files AtomicCheckpointIO writes (``.last.ckpt.XXXX.tmp``).
TMP_FILE = re.compile(r"^\..+\.ckpt\..+\.tmp$")
#: ``last.ckpt``, and ``last-vN.ckpt`` of folders written by older metarl versions.
LAST_FILE = re.compile(r"^last(-v\d+)?\.ckpt$")
TASK_PREFIX = "train/return_task/"
#: ``train/return_task/<k>``, and ``seed<s>/train/return_task/<k>`` of a multi-seed run.
TASK_KEY = re.compile(r"^(?:seed(\d+)/)?train/return_task/(.+)$")
TASK_RETURNS_FILE = "train_task_returns.csv"


class RunFolderError(ConfigError):
    """A run folder that this run may not use (exit code 2, nothing written)."""


def checkpoint_dir(trainer: Any, callback: Any) -> Path:
    """Where ``callback`` (a ModelCheckpoint) saves: Lightning's rule (``ModelCheckpoint.setup``)."""
    if callback.dirpath is not None:
        return Path(callback.dirpath)
    if trainer.loggers:
        logger = trainer.loggers[0]
        save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
        version = logger.version
        version = version if isinstance(version, str) else f"version_{version}"
        return Path(save_dir, str(logger.name), version, "checkpoints")
    return Path(trainer.default_root_dir, "checkpoints")


def checkpoints_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".ckpt" and not p.name.startswith(".") and p.is_file())


def stale_temporaries(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if TMP_FILE.match(p.name) and p.is_file())


def csv_loggers(loggers: Iterable[Any]) -> list[CSVLogger]:
    return [lg for lg in loggers if isinstance(lg, CSVLogger)]


def _names(paths: list[Path], n: int = 3) -> str:
    shown = ", ".join(p.name for p in paths[:n])
    return shown + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _check_is_folder(path: Path, what: str) -> None:
    """A path that must be (or become) a folder: not a file, and no file on the way to it."""
    if str(path) in ("", "."):
        return
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            where = "" if p == path else f" (on the way to {path})"
            raise RunFolderError(f"the {what} {path} cannot be created: {p} is a file, not a folder{where}")
        if p.is_dir():
            return


def ensure_writable(folder: Path, what: str) -> None:
    _check_is_folder(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".metarl-write-test.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise RunFolderError(f"cannot write to the {what} {folder}: {err.strerror or err}") from err


def prepare_run_folders(trainer: Any, callback: Any, resume_from: str | None, restart: bool) -> Path:
    """Check and prepare the folders of a ``fit`` run before anything is written; returns the
    checkpoint folder. ``resume_from``: the checkpoint it resumes; ``restart``: a new run that a
    requeued command started (``--ckpt_path last`` found nothing, or a sweep run)."""
    ckpt_dir = checkpoint_dir(trainer, callback)
    _check_is_folder(ckpt_dir, "checkpoint folder")
    for logger in csv_loggers(trainer.loggers):
        _check_is_folder(Path(logger.log_dir), "log folder")
    existing = checkpoints_in(ckpt_dir)
    if existing and resume_from is None:
        last = ckpt_dir / "last.ckpt"
        raise RunFolderError(
            f"the checkpoint folder {ckpt_dir} already holds another run's checkpoints ({_names(existing)}); a new run "
            f"never writes beside them: resume that run with --ckpt_path {last if last.is_file() else existing[-1]} "
            "(or --ckpt_path last), or start this one in another folder (--checkpoint.dirpath=..., or another "
            "logger version)"
        )
    if existing and resume_from is not None and not _same_folder(Path(resume_from).parent, ckpt_dir):
        raise RunFolderError(
            f"cannot resume {resume_from} into {ckpt_dir}: that folder holds another run's checkpoints "
            f"({_names(existing)}); resume into the checkpoint's own folder or an empty one (--checkpoint.dirpath)"
        )
    for logger in csv_loggers(trainer.loggers):
        log_dir = Path(logger.log_dir)
        metrics = log_dir / ExperimentWriter.NAME_METRICS_FILE
        if resume_from is None and metrics.exists():
            if not restart:
                raise RunFolderError(
                    f"the log folder {log_dir} already holds another run's metrics.csv; a new run never writes "
                    "over it: resume that run with --ckpt_path, or start this one elsewhere (another logger "
                    "version or save_dir)"
                )
            kept = log_dir / f"metrics-before-restart-{time.strftime('%Y%m%d-%H%M%S')}.csv"
            metrics.rename(kept)
            print(f"metarl: {log_dir} holds an earlier attempt of this run that saved no checkpoint; starting "
                  f"again from scratch (its metrics are kept in {kept.name})", file=sys.stderr)
    ensure_writable(ckpt_dir, "checkpoint folder")
    for logger in csv_loggers(trainer.loggers):
        ensure_writable(Path(logger.log_dir), "log folder")
    remove_stale_temporaries(ckpt_dir)
    return ckpt_dir


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove what saves cut short (SIGKILL, power loss) left behind: only this run writes here."""
    stale = stale_temporaries(folder)
    for path in stale:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    if stale:
        print(f"metarl: removed {len(stale)} unfinished checkpoint file(s) that an interrupted save left in {folder}",
              file=sys.stderr)
    return stale


# ---------------------------------------------------------------------------------------------- identity
def run_identity(loggers: Iterable[Any]) -> dict[str, Any]:
    """What makes a resumed run the same run: its CSV log version and its W&B run id."""
    out: dict[str, Any] = {}
    for logger in loggers:
        if isinstance(logger, CSVLogger) and "csv_version" not in out:
            out["csv_version"] = logger.version
        elif isinstance(logger, WandbLogger) and "wandb_id" not in out:
            experiment = getattr(logger, "_experiment", None)
            run_id = getattr(experiment, "id", None) if experiment is not None else getattr(logger, "_id", None)
            if isinstance(run_id, str) and run_id:
                out["wandb_id"] = run_id
    return out


def _set(node: Any, key: str, value: Any) -> None:
    if isinstance(node, dict):
        node[key] = value
    else:
        setattr(node, key, value)


def _version_from_path(ckpt_path: Path, save_dir: str, name: Any) -> str | None:
    """``<save_dir>/<name>/<version>/checkpoints/<file>``: the version folder the checkpoint is in."""
    folder = ckpt_path.parent
    if folder.name != "checkpoints":
        return None
    if not _same_folder(folder.parent.parent, Path(save_dir) / str(name if name is not None else "lightning_logs")):
        return None
    return folder.parent.name


def continue_run(cfg: Any, ckpt_path: str, ckpt: dict[str, Any]) -> None:
    """Point a resumed run's loggers at the run it continues (unless the config names a version or
    id itself): the CSV version folder the checkpoint is in (else the one it recorded), so
    ``metrics.csv`` is appended to and the checkpoints land beside the old ones, and the W&B run id."""
    saved = ckpt.get("metarl_run") or {}
    for logger in logger_configs(cfg.get("trainer.logger")):
        class_path = str(config_get(logger, "class_path") or "")
        init_args = config_get(logger, "init_args")
        if init_args is None:
            continue
        if class_path.endswith("CSVLogger") and config_get(init_args, "version") is None:
            save_dir = config_get(init_args, "save_dir") or cfg.get("trainer.default_root_dir") or "."
            version = _version_from_path(Path(ckpt_path), save_dir, config_get(init_args, "name"))
            if version is None:
                version = saved.get("csv_version")
            if version is not None:
                _set(init_args, "version", version)
        elif class_path.endswith("WandbLogger") and saved.get("wandb_id") \
                and config_get(init_args, "id") is None and config_get(init_args, "version") is None:
            _set(init_args, "id", saved["wandb_id"])


# ---------------------------------------------------------------------------------------------- metrics.csv
class RunCSVWriter(ExperimentWriter):
    """Lightning's CSV writer, except that:

    - a resumed run appends to its ``metrics.csv`` (Lightning's deletes an existing one);
    - ``train/return_task/<k>`` goes to ``train_task_returns.csv``, one row per played episode
      (``step, train/env_steps, task, return``), not to one mostly-empty column per task; a
      multi-seed run's ``seed<s>/train/return_task/<k>`` too, with a ``seed`` column.
    """

    def __init__(self, log_dir: str, append: bool) -> None:
        self._append = append
        super().__init__(log_dir)
        self.task_returns_path = os.path.join(self.log_dir, TASK_RETURNS_FILE)
        self._task_rows: list[dict[str, Any]] = []
        if append and self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])

    def _check_log_dir_exists(self) -> None:
        # prepare_run_folders has checked the folder: a new run's holds no metrics.csv, and a
        # resumed run's metrics.csv is its own, to append to (Lightning's writer deletes it).
        pass

    def _record_new_keys(self) -> set[str]:
        new = set().union(*self.metrics) - set(self.metrics_keys)
        if new:  # the file is rewritten with the new header; otherwise the existing column order holds
            self.metrics_keys = sorted(set(self.metrics_keys) | new)
        return new

    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        tasks = {k: (m.group(1), m.group(2), v) for k, v in metrics_dict.items() if (m := TASK_KEY.match(k))}
        if tasks:
            env_steps = metrics_dict.get("train/env_steps")
            for seed, task, value in sorted(tasks.values(), key=lambda t: (int(t[0] or 0), _task_order(t[1]))):
                row = {"step": step, "train/env_steps": _number(env_steps), "task": task, "return": _number(value)}
                self._task_rows.append(row if seed is None else {**row, "seed": int(seed)})
            metrics_dict = {k: v for k, v in metrics_dict.items() if k not in tasks}
        if metrics_dict:
            super().log_metrics(metrics_dict, step)

    def save(self) -> None:
        super().save()
        if not self._task_rows:
            return
        exists = self._fs.isfile(self.task_returns_path)
        with self._fs.open(self.task_returns_path, "a" if exists else "w", newline="") as f:
            seeded = ["seed"] if "seed" in self._task_rows[0] else []
            writer = csv.DictWriter(f, fieldnames=["step", "train/env_steps", *seeded, "task", "return"])
            if not exists:
                writer.writeheader()
            writer.writerows(self._task_rows)
        self._task_rows = []


def _number(value: Any) -> Any:
    if value is None:
        return ""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _task_order(tail: str) -> tuple[int, str]:
    return (int(tail), "") if tail.isdigit() else (sys.maxsize, tail)


def install_csv_writers(loggers: Iterable[Any], append: bool) -> None:
    for logger in csv_loggers(loggers):
        if logger._experiment is None:  # CSVLogger.experiment builds Lightning's writer lazily
            logger._experiment = RunCSVWriter(logger.log_dir, append=append)
