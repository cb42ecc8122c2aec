"""W&B: offline by default, online when the user asks, and never the reason a run fails.

- Mode: ``WANDB_MODE`` when set (``online``, ``offline``, ``disabled``); else online under a sweep
  agent (``WANDB_SWEEP_ID`` is set: a sweep needs the server); else each WandbLogger's own
  ``offline`` flag, which every shipped config sets to true.
- Online but no server (no network, no API key, a server that does not answer within
  ``WANDB_INIT_TIMEOUT`` seconds): the run logs offline instead, says so in one line, and
  ``wandb sync`` uploads it later.
- Sweep runs (docs/sweeps.md): each run gets its own checkpoint folder, named by sweep and run id,
  so agents sharing a disk never write into each other's runs, and a requeued run (marked
  preempting when SIGTERM stopped it) resumes from its own last checkpoint.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

ONLINE = ("online", "run")
OFFLINE = ("offline", "dryrun")


def wandb_mode(environ: MutableMapping[str, str] | None = None) -> str | None:
    """The mode the user asked for, or None: each logger's ``offline`` flag decides."""
    environ = os.environ if environ is None else environ
    mode = environ.get("WANDB_MODE", "").strip().lower()
    if mode:
        return mode
    if environ.get("WANDB_SWEEP_ID"):
        return "online"
    return None


def logger_configs(logger_cfg: Any) -> list[Any]:
    if isinstance(logger_cfg, list):
        return logger_cfg
    return [logger_cfg] if logger_cfg not in (None, True, False) else []


def config_get(cfg: Any, key: str) -> Any:
    """``cfg[key]`` of a parsed config node, a dict or a namespace alike."""
    return cfg.get(key) if isinstance(cfg, dict) else getattr(cfg, key, None)


def apply_wandb_mode(logger_cfg: Any, environ: MutableMapping[str, str] | None = None) -> None:
    """Set the ``offline`` flag of every WandbLogger in a parsed ``trainer.logger`` config."""
    mode = wandb_mode(environ)
    if mode is None:
        return
    for cfg in logger_configs(logger_cfg):
        class_path = str(config_get(cfg, "class_path") or "")
        init_args = config_get(cfg, "init_args")
        if not class_path.endswith("WandbLogger") or init_args is None:
            continue
        # WandbLogger(offline=True) overwrites WANDB_MODE with "dryrun", which would turn
        # "disabled" into offline runs: only "offline" keeps the flag on.
        offline = mode in OFFLINE
        if isinstance(init_args, dict):
            init_args["offline"] = offline
        else:
            init_args.offline = offline
    (os.environ if environ is None else environ)["WANDB_MODE"] = mode


def start_wandb(loggers: Iterable[Any]) -> None:
    """Start every online WandbLogger's run now; one that cannot reach its server logs offline."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger) or logger._offline or os.environ.get("WANDB_MODE") in (
            *OFFLINE, "disabled"
        ):
            continue
        try:
            _ = logger.experiment
        except Exception as err:  # no network, no API key, server errors: all the same to the run
            reason = " ".join(str(err).split())[:200]
            print(f"metarl: W&B is unreachable ({type(err).__name__}: {reason}); logging offline instead, "
                  "upload later with `wandb sync`", file=sys.stderr)
            _go_offline(logger)


def _go_offline(logger: Any) -> None:
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=1)
    logger._experiment = None
    logger._offline = True
    logger._wandb_init["mode"] = "offline"
    os.environ["WANDB_MODE"] = "offline"
    _ = logger.experiment


def sweep_ids(environ: MutableMapping[str, str] | None = None) -> tuple[str, str] | None:
    """(sweep id, run id) when a W&B sweep agent started this process."""
    environ = os.environ if environ is None else environ
    sweep, run = environ.get("WANDB_SWEEP_ID"), environ.get("WANDB_RUN_ID")
    return (sweep, run) if sweep and run else None


def place_sweep_run(cfg: Any, environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Give a sweep run its own folder ``<default_root_dir>/sweeps/<sweep id>/<run id>``: its
    checkpoints (unless ``checkpoint.dirpath`` is set) and its CSV logs. Returns the checkpoint folder."""
    ids = sweep_ids(environ)
    if ids is None:
        return None
    folder = Path(cfg.get("trainer.default_root_dir") or ".") / "sweeps" / ids[0] / ids[1]
    if not cfg.get("checkpoint.dirpath"):
        cfg["checkpoint.dirpath"] = str(folder / "checkpoints")
    for logger in logger_configs(cfg.get("trainer.logger")):
        init_args = config_get(logger, "init_args")
        if str(config_get(logger, "class_path") or "").endswith("CSVLogger") and init_args is not None \
                and config_get(init_args, "version") is None:
            if isinstance(init_args, dict):
                init_args["version"] = ids[1]
            else:
                init_args.version = ids[1]
    return Path(cfg["checkpoint.dirpath"])


def define_env_step_axes(loggers: Iterable[Any], train_prefixes: Iterable[str], eval_prefixes: Iterable[str]) -> None:
    """W&B charts over env steps (the papers' axis), not over Lightning's step counter."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            run = logger.experiment
            run.define_metric("train/env_steps")
            run.define_metric("eval/env_steps")
            for prefix in train_prefixes:
                run.define_metric(f"{prefix}/*", step_metric="train/env_steps")
            for prefix in eval_prefixes:
                run.define_metric(f"{prefix}/*", step_metric="eval/env_steps")


def mark_preempting(loggers: Iterable[Any]) -> None:
    """Tell W&B this run was pre-empted (SIGTERM): a sweep requeues it instead of counting it failed."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        run = getattr(logger, "_experiment", None) if isinstance(logger, WandbLogger) else None
        if run is not None and hasattr(run, "mark_preempting"):
            try:
                run.mark_preempting()
            except Exception:  # W&B trouble must not stop the checkpoint from being reported
                pass


# ---------------------------------------------------------------------------------------------- mid-run failures
class WandbHealth:
    """W&B failures during a run (a full or read-only disk under its folder, a dead W&B service):
    the run goes on, W&B gets nothing more, and one line says so at once and again at the end
    (docs/reliability.md: W&B never fails a run, and never fails it silently either)."""

    def __init__(self) -> None:
        self.failure: str | None = None
        self.env_steps: int | None = None

    def fail(self, what: str, env_steps: int | None = None) -> None:
        if self.failure is not None:
            return
        self.failure, self.env_steps = " ".join(what.split())[:300], env_steps
        where = f" at env step {env_steps:,}" if env_steps is not None else ""
        print(f"metarl: warning: W&B logging failed{where} ({self.failure}); the W&B run is incomplete from here "
              "on, the run itself goes on (metrics.csv and the checkpoints are complete)", file=sys.stderr)

    def summary(self) -> str | None:
        if self.failure is None:
            return None
        where = f" from env step {self.env_steps:,} on" if self.env_steps is not None else ""
        return (f"metarl: warning: the W&B run is incomplete{where}: {self.failure}; metrics.csv and the "
                "checkpoints are complete")


HEALTH = WandbHealth()


def guard_wandb(loggers: Iterable[Any], env_steps: Any = None) -> None:
    """Wrap every WandbLogger so that an exception from W&B is reported once and then skipped.
    ``env_steps``: a callable giving the run's env steps, for the message."""
    from pytorch_lightning.loggers import WandbLogger

    def now() -> int | None:
        try:
            return int(env_steps()) if env_steps is not None else None
        except Exception:
            return None

    for logger in loggers:
        if not isinstance(logger, WandbLogger) or getattr(logger, "_metarl_guarded", False):
            continue
        logger._metarl_guarded = True
        # Lightning passes anonymous=None, which W&B warns about on every start.
        if getattr(logger, "_wandb_init", {}).get("anonymous") is None:
            logger._wandb_init.pop("anonymous", None)
        for name in ("log_metrics", "log_hyperparams"):
            setattr(logger, name, _guarded(getattr(logger, name), now))


def finish_wandb() -> None:
    """Finish the W&B run now (not at interpreter exit), so that a failure is seen and reported."""
    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is None:
        return
    folder = wandb_run_folder(wandb.run)
    try:
        wandb.finish()
    except Exception as err:
        HEALTH.fail(f"{type(err).__name__}: {err}")
    if folder is not None:
        check_wandb_folder(folder)


def wandb_run_folder(run: Any) -> Path | None:
    """``.../wandb/offline-run-<time>-<id>`` (or ``run-...``) of a started run."""
    files = getattr(run, "dir", None)
    return Path(files).parent if isinstance(files, str) and files else None


def check_wandb_folder(folder: Path, env_steps: int | None = None) -> None:
    """W&B's service reports the records it could not write only in its own log: look there (and
    at the free space), so that an incomplete W&B run is never reported as a good one."""
    import shutil

    try:
        if shutil.disk_usage(folder).free < 64 * 1024:
            HEALTH.fail(f"the disk of W&B's folder {folder} is full", env_steps)
            return
    except OSError:
        return
    log = folder / "logs" / "debug-internal.log"
    try:
        with open(log, "rb") as f:
            f.seek(max(0, log.stat().st_size - 256 * 1024))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return
    for line in tail.splitlines():
        if '"level":"ERROR"' in line and ("failed to save record" in line or "failed to flush" in line
                                          or "no space left" in line.lower()):
            msg = line.split('"msg":"', 1)[-1].split('"', 1)[0]
            HEALTH.fail(f"W&B could not write its run file: {msg}", env_steps)
            return


def guard_wandb_run(run: Any, env_steps: Any = None) -> None:
    """The same for a started W&B run's own ``log`` (the beta histogram is logged there)."""
    if run is None or getattr(run, "_metarl_guarded", False) or not hasattr(run, "log"):
        return
    try:
        run.log = _guarded(run.log, lambda: int(env_steps()) if env_steps is not None else None)
        run._metarl_guarded = True
    except Exception:  # a run object that refuses attributes: leave it as it is
        pass


def _guarded(fn: Any, now: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        if HEALTH.failure is not None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            HEALTH.fail(f"{type(err).__name__}: {err}", now())
            return None

    return call


def watch_log_handler_errors() -> None:
    """W&B writes its own log files through Python's logging; when one fails (a full disk), logging
    prints a 40-line traceback for every record. Report it once instead, naming the file."""
    import logging

    original = logging.Handler.handleError
    if getattr(original, "_metarl", False):
        return

    def handle_error(self: logging.Handler, record: logging.LogRecord) -> None:
        err = sys.exc_info()[1]
        target = getattr(self, "baseFilename", None) or getattr(getattr(self, "stream", None), "name", "")
        if "wandb" in str(target) or record.name.startswith("wandb"):
            HEALTH.fail(f"W&B could not write {target}: {type(err).__name__}: {err}")
        else:
            original(self, record)

    handle_error._metarl = True  # type: ignore[attr-defined]
    logging.Handler.handleError = handle_error  # type: ignore[method-assign]
