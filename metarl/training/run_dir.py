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
- The run's ``metrics.csv`` writer: metarl/training/metrics_csv.py.
"""

from __future__ import annotations

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


def _run_layout(ckpt_path: Path, name: Any) -> tuple[Path, str] | None:
    """``(<root>, <version>)`` of a checkpoint at ``<root>/<name>/<version>/checkpoints/<file>`` (a CSV
    run's layout; ``name`` None is CSVLogger's default), else None."""
    folder = ckpt_path.absolute().parent
    if folder.name != "checkpoints" or folder.parent.parent.name != str(name if name is not None else "lightning_logs"):
        return None
    return folder.parent.parent.parent, folder.parent.name


def continue_run(cfg: Any, ckpt_path: str, ckpt: dict[str, Any]) -> None:
    """Point a resumed run's loggers at the run it continues (unless the config names a version or
    id itself): the CSV version folder the checkpoint is in (else the one it recorded), so
    ``metrics.csv`` is appended to and the checkpoints land beside the old ones, and the W&B run id.
    A checkpoint in a run folder under another root than the config's (``--ckpt_path`` typed from
    another folder, or a run moved) continues in its own run folder: the loggers that wrote under the
    config's root write under the checkpoint's, unless ``checkpoint.dirpath`` says where to go."""
    saved = ckpt.get("metarl_run") or {}
    loggers = [(str(config_get(lg, "class_path") or ""), config_get(lg, "init_args"))
               for lg in logger_configs(cfg.get("trainer.logger"))]
    moved: tuple[str, Path] | None = None  # (the config's root, the checkpoint's)
    for class_path, init_args in loggers:
        if init_args is None:
            continue
        if class_path.endswith("CSVLogger") and config_get(init_args, "version") is None:
            save_dir = config_get(init_args, "save_dir") or cfg.get("trainer.default_root_dir") or "."
            layout = _run_layout(Path(ckpt_path), config_get(init_args, "name"))
            version = None
            if layout is not None and _same_folder(layout[0], Path(save_dir)):
                version = layout[1]  # the run under the config's root
            elif layout is not None and moved is None and cfg.get("checkpoint.dirpath") is None:
                moved, version = (str(save_dir), layout[0]), layout[1]  # the run under another root
                _set(init_args, "save_dir", str(layout[0]))
            if version is None:
                version = saved.get("csv_version")
            if version is not None:
                _set(init_args, "version", version)
        elif class_path.endswith("WandbLogger") and saved.get("wandb_id") \
                and config_get(init_args, "id") is None and config_get(init_args, "version") is None:
            _set(init_args, "id", saved["wandb_id"])
    if moved is not None:
        for class_path, init_args in loggers:  # the W&B run's files go with the run too
            if class_path.endswith("WandbLogger") and init_args is not None \
                    and str(config_get(init_args, "save_dir")) == moved[0]:
                _set(init_args, "save_dir", str(moved[1]))
        print(f"metarl: resuming in the checkpoint's own run folder under {moved[1]} (not under the config's "
              f"{moved[0]})", file=sys.stderr)
