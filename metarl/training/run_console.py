"""The start block of ``fit`` (what the run will do and where everything goes) and its closing lines."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from metarl.training.progress import duration, int_attr


class RunConsole(Callback):
    """The start block and the closing line of ``fit``."""

    def __init__(self, threads: tuple[int, str], resumed_from: str | None, checkpoint_dir: Path | None,
                 file: Any = None) -> None:
        self.threads = threads
        self.resumed_from = resumed_from
        self.checkpoint_dir = checkpoint_dir
        self._file = file
        self.phase = "start-up"
        self.closing_lines: list[str] = []

    def _print(self, text: str) -> None:
        print(text, file=self._file or sys.stdout, flush=True)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        from metarl.tracking import guard_wandb_run

        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                try:
                    run = logger.experiment
                except Exception:  # start_wandb has already fallen back to offline once
                    run = None
                guard_wandb_run(run, lambda: pl_module.env_steps)
        if trainer.is_global_zero:
            self._print(start_block(trainer, pl_module, self.threads, self.resumed_from, self.checkpoint_dir))

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.phase = "training"

    def on_validation_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        # W&B's service does not tell when it cannot write (a full disk): look after each evaluation.
        from metarl.tracking import check_wandb_folder, wandb_run_folder

        for logger in trainer.loggers:
            run = getattr(logger, "_experiment", None) if type(logger).__name__ == "WandbLogger" else None
            folder = wandb_run_folder(run) if run is not None else None
            if folder is not None:
                check_wandb_folder(folder, int_attr(pl_module, "env_steps"))

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.phase = "finishing"

    def on_fit_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        steps, total = int_attr(pl_module, "env_steps"), int_attr(pl_module, "total_env_steps")
        ckpt = _checkpoint_path(trainer)
        if steps is not None and total is not None and steps >= total:
            line = f"metarl: done: {steps:,} env steps"
            line += f"; checkpoint {ckpt}" if ckpt else ""
            self._print(line)
        # Printed by the CLI once W&B has finished writing (it can fail then too).
        self.closing_lines = _wandb_lines(trainer, closing=True)


def _checkpoint_path(trainer: pl.Trainer) -> str | None:
    cb = trainer.checkpoint_callback
    return getattr(cb, "last_model_path", None) or getattr(cb, "best_model_path", None) or None


def method_name(module: Any) -> str:
    """MQL, PEARL, ...: the module's ``title``, else its ``method_name``, else its
    ``metarl.methods.<name>`` package, else the class. (Looked up on the module: a multi-seed run's
    MultiSeed carries its seeds' method's.)"""
    title = getattr(module, "title", None)
    if isinstance(title, str) and title:
        return title
    explicit = getattr(module, "method_name", None)
    if isinstance(explicit, str) and explicit:
        return explicit.upper()
    parts = type(module).__module__.split(".")
    if "methods" in parts and parts.index("methods") + 1 < len(parts):
        return parts[parts.index("methods") + 1].upper()
    return type(module).__name__


def _rel(path: Any) -> str:
    try:
        rel = os.path.relpath(path)
        return rel if not rel.startswith("..") else str(path)
    except ValueError:
        return str(path)


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.1f} GB"


def checkpoint_bytes(module: Any) -> float | None:
    """A full checkpoint's size once the replay is full: parameters, optimizer moments, replay."""
    members = getattr(module, "members", None)
    if members is not None:  # a multi-seed run: every seed's state
        sizes = [checkpoint_bytes(m) for m in members]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]
    replay = getattr(module, "replay", None)
    per = getattr(replay, "bytes_per_transition", None)
    if replay is None or not callable(per):
        return None
    capacity = getattr(replay, "n_tasks", 0) * getattr(replay, "capacity_per_task", 0)
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    return capacity * per() + 3 * params  # the weights (with targets) and Adam's two moments


def start_block(trainer: pl.Trainer, module: Any, threads: tuple[int, str], resumed_from: str | None,
                checkpoint_dir: Path | None) -> str:
    family = getattr(module, "family", None)
    name = getattr(family, "name", "?")
    n_train = len(getattr(family, "train_tasks", []) or [])
    n_eval = len(getattr(family, "eval_tasks", []) or [])
    steps = int_attr(module, "env_steps") or 0
    total = int_attr(module, "total_env_steps")
    seed = getattr(module, "seed", None)
    seeds = getattr(module, "seeds", None)
    which = f", seeds {', '.join(map(str, seeds))} in one process" if seeds else \
        (f", seed {seed}" if seed is not None else "")
    lines = [f"metarl fit: {method_name(module)} on {name} ({n_train} train / {n_eval} eval tasks){which}"]
    budget = f"{total:,} env steps" if total else "?"
    if resumed_from:
        budget += f", resuming at {steps:,} from {_rel(resumed_from)}"
    lines.append(f"  budget       {budget}")
    eval_cfg = getattr(module, "eval_cfg", None)
    every = int_attr(eval_cfg, "every_env_steps")
    if every:
        k = getattr(eval_cfg, "num_tasks", None)
        k = n_eval if k is None else min(k, n_eval)
        lines.append(f"  evaluation   every {every:,} env steps, adapting on {k} eval task{'s' * (k != 1)}")
    lines.append(f"  threads      {threads[0]} torch thread{'s' * (threads[0] != 1)} ({threads[1]})")
    cb = trainer.checkpoint_callback
    if checkpoint_dir is not None and cb is not None:
        what = "last.ckpt"
        keep = getattr(cb, "keep_periodic", None)
        every_u = getattr(cb, "every_n_updates", None)
        interval = getattr(cb, "_train_time_interval", None)
        if keep:
            kept = "every periodic one" if keep == -1 else f"the newest {keep}"
            triggers = [f"every {every_u:,} updates"] if every_u else []
            triggers += [f"every {duration(interval.total_seconds())}"] if interval else []
            what += f" + {kept} of those saved {', '.join([*triggers, 'before and after each evaluation'])}"
        size = checkpoint_bytes(module)
        if size:
            what += f"; up to {_size(size)} each"
        lines.append(f"  checkpoints  {_rel(checkpoint_dir)}/ ({what})")
    for logger in trainer.loggers:
        if type(logger).__name__ == "CSVLogger":
            lines.append(f"  metrics      {_rel(Path(logger.log_dir) / 'metrics.csv')}"
                         f" (python -m metarl plot {_rel(logger.log_dir)})")
            break
    lines += _wandb_lines(trainer, closing=False)
    return "\n".join(lines)


def _wandb_lines(trainer: pl.Trainer, closing: bool) -> list[str]:
    out = []
    for logger in trainer.loggers:
        if type(logger).__name__ != "WandbLogger":
            continue
        run = getattr(logger, "_experiment", None)
        if run is None or type(run).__name__ == "RunDisabled" or os.environ.get("WANDB_MODE") == "disabled":
            continue
        run_dir = getattr(run, "dir", None)
        folder = Path(run_dir).parent if run_dir else None  # .../offline-run-<time>-<id>/files -> the run
        offline = bool(getattr(logger, "_offline", False)) or os.environ.get("WANDB_MODE") in ("offline", "dryrun")
        if closing:
            if offline and folder is not None:
                # A resumed run has one folder per start, all with its id: upload them all.
                every_start = folder.parent / f"offline-run-*-{run.id}"
                out.append(f"metarl: W&B run {run.id} is offline; upload it with: wandb sync {_rel(every_start)}")
            continue
        url = getattr(run, "url", None) or "online"
        where = f"offline, in {_rel(folder)}" if offline and folder is not None else url
        out.append(f"  W&B          run {run.id} ({where})")
    return out
