"""Resuming from a checkpoint without surprises.

- A missing, truncated or corrupt file, or one that metarl did not write, is an error naming the file.
- A checkpoint of another task family is an error naming both families.
- LightningCLI rebuilds the model from the checkpoint's hyperparameters, which would silently drop
  the user's overrides. metarl applies the ones that are safe to change mid-run (the budget, the
  evaluation and adaptation settings) and refuses every other difference with a message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from metarl.tracking import config_get, logger_configs
from metarl.training.checkpoint_state import STATE_VERSION

#: Top-level model arguments that may change when a run resumes: they do not affect the state
#: carried in the checkpoint (weights, optimizers, replay, RNGs).
RESUMABLE = ("total_env_steps", "eval", "adapt")

#: Class paths that older checkpoints carry, and the class that now holds the same method.
LEGACY_CLASS_PATHS = {"metarl.training.MetaTrainModule": "metarl.methods.mql.MQLMetaTrain"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    if not str(path).strip():
        raise CheckpointError("--ckpt_path is empty: give a checkpoint file (e.g. .../checkpoints/last.ckpt), or "
                              "last for this experiment's newest")
    path = Path(path)
    if path.is_dir():
        inside = path / "last.ckpt" if (path / "last.ckpt").is_file() else path / "checkpoints" / "last.ckpt"
        hint = f"; did you mean {inside}?" if inside.is_file() else ""
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises several types for truncated or garbled files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated and cannot be read ({type(err).__name__})"
        ) from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} is not a Lightning checkpoint")
    missing = [k for k in ("state_dict", "hyper_parameters", "metarl", "optimizer_states") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} was not written by metarl's MetaTrainModule: missing {missing}")
    version = ckpt["metarl"].get("version", STATE_VERSION) if isinstance(ckpt["metarl"], dict) else None
    if version != STATE_VERSION:
        raise CheckpointError(f"checkpoint {path} has metarl state version {version}; metarl reads {STATE_VERSION}")
    return ckpt


def check_resume_run_config(path: str | Path, ckpt: dict[str, Any], seed_everything: Any) -> None:
    """Run-level settings that a resumed run cannot apply: its random state comes from the checkpoint."""
    saved = ckpt.get("metarl_run", {}).get("seed_everything")
    # A random seed (true) or no seeding (false/null) asks for nothing to keep.
    if isinstance(seed_everything, bool) or seed_everything is None or saved is None or isinstance(saved, bool):
        return
    if int(seed_everything) != int(saved):
        raise CheckpointError(
            f"cannot resume {path} with seed_everything {seed_everything}: the run was seeded with {saved} and "
            "its random state comes from the checkpoint (start a new run for another seed)"
        )


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for key, value in d.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _split_config(
    path: str | Path, ckpt_hparams: dict[str, Any], config_args: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The checkpoint's model arguments with the config's resumable sections applied, and the
    config's other differences from the checkpoint (``key: checkpoint X, config Y``)."""
    saved = {k: v for k, v in ckpt_hparams.items() if not k.startswith("_")}
    saved_family, wanted_family = saved.get("family"), config_args.get("family")
    if wanted_family is not None and saved_family != wanted_family:
        raise CheckpointError(
            f"checkpoint {path} is from task family {saved_family!r}, but the config asks for {wanted_family!r}"
        )
    merged = dict(saved)
    differences = []
    for key, value in config_args.items():
        if key.startswith("_") or key not in saved:
            continue
        if key in RESUMABLE:
            merged[key] = value
            continue
        old, new = _flatten(saved[key], key), _flatten(value, key)
        differences += [f"{k}: checkpoint {old.get(k)!r}, config {new.get(k)!r}" for k in sorted(set(old) | set(new))
                        if old.get(k) != new.get(k)]
    return merged, differences


def merge_for_resume(path: str | Path, ckpt_hparams: dict[str, Any], config_args: dict[str, Any]) -> dict[str, Any]:
    """The model arguments to resume with: the checkpoint's, plus the resumable changes of the config.
    Any other difference is refused: a resumed run cannot apply it.

    ``config_args`` are the model's init_args as the config and command line give them.
    """
    merged, refused = _split_config(path, ckpt_hparams, config_args)
    if refused:
        raise CheckpointError(
            f"cannot resume {path} with a different configuration; only {', '.join(RESUMABLE)} may change on "
            "resume (start a new run to change the rest): " + "; ".join(refused)
        )
    return merged


def merge_for_evaluation(
    path: str | Path, ckpt_hparams: dict[str, Any], config_args: dict[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """``test`` / ``validate`` of a checkpoint: its model as trained, with the config's eval and adapt
    settings (they define the protocol). The config's other differences cannot apply to a trained
    model and do not matter to an evaluation; they are returned as a note to print, not dropped
    silently."""
    merged, differences = _split_config(path, ckpt_hparams, config_args)
    if not differences:
        return merged, None
    return merged, (f"evaluating {path} as it was trained; the config's other differences do not apply: "
                    + "; ".join(differences))


def checkpoint_root(cfg: Any) -> Path:
    """Where a run's checkpoints go: ``checkpoint.dirpath``; else, as Lightning places them, below the
    first logger's ``save_dir`` (``<save_dir>/<name>/<version>/checkpoints``); else below
    ``trainer.default_root_dir``."""
    if cfg.get("checkpoint.dirpath"):
        return Path(cfg["checkpoint.dirpath"])
    loggers = logger_configs(cfg.get("trainer.logger"))
    save_dir = config_get(config_get(loggers[0], "init_args") or {}, "save_dir") if loggers else None
    return Path(save_dir or cfg.get("trainer.default_root_dir") or ".")


def find_last_checkpoint(cfg: Any) -> tuple[Path, Path | None]:
    """``--ckpt_path last``: the newest ``last.ckpt`` of this experiment, or None when it has none.

    Returns the folder searched and the file. Sweep runs (``sweeps/<sweep>/<run>/``) are other
    experiments and are skipped; each resumes from its own folder."""
    root = checkpoint_root(cfg)
    found = [
        p for p in root.rglob("last.ckpt")
        if p.is_file() and "sweeps" not in p.relative_to(root).parts[:-1]
    ] if root.is_dir() else []
    return root, max(found, key=lambda p: p.stat().st_mtime, default=None)
