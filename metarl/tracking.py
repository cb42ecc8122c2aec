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
        wandb.finish(exit_code=1, quiet=True)
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
