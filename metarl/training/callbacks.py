"""Checkpointing that never loses a run (docs/reliability.md).

- Saves every K updates, every T of wall time, before and after every evaluation and when training ends;
  each file is written atomically (atomic_io.py: a crash leaves either the old checkpoint or the
  new one, whole).
- Saves only between meta-training iterations, where the state is consistent and a resumed run
  continues exactly. A periodic save that falls on an epoch's last iteration waits for the
  epoch-end save after validation: an unmarked checkpoint taken before validation would skip it.
- Saves right before every evaluation, marked as taken in the middle of validation (Lightning's own
  restart point): a run stopped or killed during an evaluation resumes by running that evaluation
  again from the start, instead of from the previous checkpoint.
- SIGTERM (cluster pre-emption) and SIGINT (Ctrl-C) only raise a flag; the run saves at the next
  consistent point (the end of the running iteration) and stops with :class:`RunInterrupted`. During
  an evaluation it stops at once: the checkpoint taken before the evaluation is the consistent point.
  A second SIGINT stops at once, without a checkpoint (stop_signal.py).
"""

from __future__ import annotations

import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn

from metarl.training.atomic_io import link_atomically
from metarl.training.checkpoint_state import evaluation_pending, mark_evaluation_pending
from metarl.training.stop_signal import StopOnSignal


class MetaCheckpoint(StopOnSignal, ModelCheckpoint):
    """ModelCheckpoint that also saves every ``every_n_updates`` TD3 updates, every
    ``train_time_interval`` of wall time, and when training ends, and turns SIGTERM/SIGINT into a
    checkpoint and a clean stop.

    Lightning's ``every_n_train_steps`` counts optimizer steps, which a TD3 iteration advances by a
    varying amount (policy delay), so it would skip saves; this counts metarl's own updates.
    Lightning ignores ``train_time_interval`` under manual optimization (every metarl method), so
    the time trigger is metarl's too: it is what keeps a SIGKILLed long run (a session ending, a
    preempted job) from losing more than that interval.

    What differs from ModelCheckpoint's defaults (docs/reliability.md, "Checkpoints"):

    - Names say where the run was in env steps: ``env_steps=120000.ckpt`` (``filename`` may use
      ``{env_steps}`` too).
    - Every checkpoint holds the whole state (exact resume from any of them). ``save_top_k`` (without
      a ``monitor``) keeps the newest K of them (1 by default; -1 all; 0 none, only ``last.ckpt``),
      and ``last.ckpt`` is a hard link to the newest one when they hold the same state: at most
      K + 1 full copies on disk, and one write per save.
    - No ``-v1`` versions: the folder belongs to one run (see run_dir.py), whose files are replaced.
    """

    DEFAULT_FILENAME = "env_steps={env_steps}"

    def __init__(self, every_n_updates: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_last", True)
        if kwargs.get("save_on_exception"):
            raise ValueError(
                "checkpoint.save_on_exception must be false: an exception can stop training mid-iteration, and "
                "a checkpoint of that state cannot resume exactly (SIGTERM/SIGINT already save between iterations)"
            )
        if kwargs.get("filename") is None:
            kwargs["filename"] = self.DEFAULT_FILENAME
            kwargs["auto_insert_metric_name"] = False
        kwargs["enable_version_counter"] = False
        keep = kwargs.get("save_top_k", 1)
        if kwargs.get("monitor") is None:
            if not isinstance(keep, int) or keep < -1:
                raise ValueError(f"checkpoint.save_top_k must be -1 (keep all), 0 or a positive int, got {keep}")
            # Lightning allows only 0, 1, -1 without a monitor; metarl keeps the newest K itself.
            kwargs["save_top_k"] = -1 if keep != 0 else 0
        super().__init__(**kwargs)
        if every_n_updates is not None and every_n_updates < 1:
            raise ValueError(f"checkpoint.every_n_updates must be >= 1 or null, got {every_n_updates}")
        self.every_n_updates = every_n_updates
        self.keep_periodic: int | None = keep if kwargs.get("monitor") is None else None
        self.seed_everything: int | bool | None = None  # set by the CLI; kept in checkpoints (resume checks)
        self._saved_bucket = -1
        self._last_save_time: float | None = None  # monotonic; the time trigger counts from here
        self._dirty = False  # state changed since the last save
        self._fresh_save: str | None = None  # a full checkpoint of the current state, if one was just written
        self._saving_before: str | None = None  # "evaluation" or "start" (env step 0) while such a save runs
        self._resumed_before_evaluation = False
        self._init_stop_signals()

    @property
    def state_key(self) -> str:
        # A run has one MetaCheckpoint, whose state must come back whatever its triggers (they may
        # change on resume). Lightning's key includes them; this is the key it gave the default
        # triggers before metarl had a time trigger, so those checkpoints still restore it.
        return self._generate_state_key(monitor=self.monitor, mode=self.mode, every_n_train_steps=0,
                                        every_n_epochs=1, train_time_interval=None)

    def setup(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        # The folder was checked by run_dir.prepare_run_folders: a resumed run's own checkpoints
        # are expected there, not a problem to warn about.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            super().setup(trainer, pl_module, stage)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # A run resumed into another folder keeps the old folder's top-k bookkeeping out of this
        # run (so it never prunes the old run's files); Lightning warns about it, but that is the
        # intended behaviour here, not a problem.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The dirpath has changed")
            super().load_state_dict(state_dict)

    def _monitor_candidates(self, trainer: pl.Trainer) -> dict[str, torch.Tensor]:
        candidates = super()._monitor_candidates(trainer)
        module = trainer.lightning_module
        for name in ("env_steps", "num_updates", "iteration"):
            if isinstance(getattr(module, name, None), int):
                candidates[name] = torch.tensor(getattr(module, name), dtype=torch.int64)
        return candidates

    # ------------------------------------------------------------------ periodic and final saves
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        self._dirty = True
        self._iteration_ended()
        epoch_ends = self._epoch_ends_here(trainer)
        due = False
        if self.every_n_updates:
            bucket = pl_module.num_updates // self.every_n_updates
            if self._saved_bucket < 0:
                self._saved_bucket = bucket
            elif bucket > self._saved_bucket:
                self._saved_bucket, due = bucket, True
        interval = self._train_time_interval
        if interval is not None and self._last_save_time is not None:
            due = due or time.monotonic() - self._last_save_time >= interval.total_seconds()
        if not epoch_ends:  # at an epoch's end, the save after its evaluation stands for this one
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
            if due:
                self._save_now(trainer)
        if self._stop_requested(trainer) and not epoch_ends:
            self._save_if_dirty(trainer)
            # Stop before the next iteration, once this one's metrics have reached the loggers.
            self._stop_now = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        # Before any callback's first batch hook: a signal from there on is no longer during that evaluation.
        if self._eval is not None and self._eval.get("at_start"):
            self._eval, self._pre_eval_path = None, None  # the evaluation at env step 0 is over

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        if self._stop_now:
            self._raise_stop(trainer, pl_module)
        self._iteration_started = time.monotonic()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        self._resumed_before_evaluation = evaluation_pending(checkpoint)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._pre_eval_path = None
        if self._resumed_before_evaluation and not self._dirty and trainer.ckpt_path:
            self._pre_eval_path = trainer.ckpt_path  # this evaluation's own checkpoint: the run resumed from it
        elif self._saves_before_evaluation(trainer):
            self._save_before(trainer, "evaluation", lambda: self._save_now(trainer))
        self._resumed_before_evaluation = False
        if self._signal is not None and self._pre_eval_path is not None:
            # Signalled in the iteration before (or while saving): the state before the evaluation is saved.
            self._raise_stop(trainer, pl_module, path=self._pre_eval_path)
        self._dirty = True  # evaluation advances the eval envs' generators
        self._evaluation_started(trainer)

    def _save_before(self, trainer: pl.Trainer, what: str, save: Any) -> None:
        """``save()`` the state before an evaluation, marked so: the file a stop signal during it keeps."""
        self._saving_before, self._fresh_save = what, None  # None if no file is written (no last, top-k 0)
        try:
            save()
        finally:
            self._saving_before = None
        self._pre_eval_path = self._fresh_save

    def _saves_before_evaluation(self, trainer: pl.Trainer, at_start: bool = False) -> bool:
        # One process only: a rank stopping mid-evaluation alone would leave the others waiting.
        return bool((self._dirty or at_start) and not trainer.sanity_checking and not trainer.fast_dev_run
                    and trainer.state.fn == TrainerFn.FITTING and trainer.world_size == 1)

    def on_validation_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        self._evaluation_task_done()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._evaluation_ended()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # the epoch-end save (after validation)
        # Lightning skips that save when a step or time trigger is set (every_n_epochs becomes 0)
        # or no optimizer step was taken since the last one (an evaluation during the cold start):
        # every evaluation is followed by a save all the same.
        self._save_if_dirty(trainer)
        stop = self._stop_requested(trainer)
        if stop:
            self._raise_stop(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._restore_handlers()
        self._save_if_dirty(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._restore_handlers()
        super().on_exception(trainer, pl_module, exception)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        from metarl.training.run_dir import run_identity

        run = checkpoint.setdefault("metarl_run", {})
        run["seed_everything"] = self.seed_everything
        run.update(run_identity(trainer.loggers))  # a resumed run continues the same logs
        if self._saving_before == "evaluation":
            mark_evaluation_pending(checkpoint)
        elif self._saving_before == "start":
            run["start_evaluation_pending"] = True  # module.on_load_checkpoint: resume as a new run starts

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self._last_save_time = time.monotonic()
        self._dirty = False
        self._fresh_save = filepath

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._save_topk_checkpoint(trainer, monitor_candidates)
        if self.keep_periodic is not None and self.keep_periodic > 0 and trainer.is_global_zero:
            self._prune_periodic(trainer)

    def _prune_periodic(self, trainer: pl.Trainer) -> None:
        """Keep the newest ``keep_periodic`` periodic checkpoints of this folder (never the one this
        run resumed from, as Lightning)."""
        from metarl.training.run_dir import LAST_FILE, checkpoints_in

        if self.dirpath is None:
            return
        resumed = os.path.abspath(trainer.ckpt_path) if trainer.ckpt_path else None
        periodic = [p for p in checkpoints_in(Path(self.dirpath)) if not LAST_FILE.match(p.name)]
        periodic.sort(key=lambda p: (p.stat().st_mtime_ns, _env_steps_of(p.name)))
        for path in periodic[: max(0, len(periodic) - self.keep_periodic)]:
            if str(path.absolute()) != resumed:
                self._remove_checkpoint(trainer, str(path))

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        source = self._fresh_save
        if not self.save_last or self.save_last == "link" or self._dirty or not source \
                or os.path.basename(source).startswith(self.CHECKPOINT_NAME_LAST):
            super()._save_last_checkpoint(trainer, monitor_candidates)
            return
        # The state was just written in full under another name: last.ckpt becomes a second name
        # of that file (its content would be the same).
        filepath = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        previous, self.last_model_path = self.last_model_path, filepath
        if trainer.is_global_zero:
            link_atomically(source, filepath)
        trainer.strategy.barrier()
        if previous and self._should_remove_checkpoint(trainer, previous, filepath):
            self._remove_checkpoint(trainer, previous)

    def _save_if_dirty(self, trainer: pl.Trainer) -> None:
        if self._dirty:
            self._save_now(trainer)

    def _save_now(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    @staticmethod
    def _epoch_ends_here(trainer: pl.Trainer) -> bool:
        """This iteration is the epoch's last: validation runs next (prefetching knows it already)."""
        loop = trainer.fit_loop.epoch_loop
        return bool(loop.batch_progress.is_last_batch or loop._num_ready_batches_reached() or loop.done)

    # ------------------------------------------------------------------ signals
    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._last_save_time = time.monotonic()
        self._take_stop_signals(trainer, pl_module)
        if self._eval is not None and self._eval.get("at_start") and self._saves_before_evaluation(trainer, True):
            # The module evaluates at env step 0 next (its on_train_start). A checkpoint of the state before
            # it, marked so, lets a stop signal during it stop at once: resumed, the run starts as a new
            # run does (seeding, that evaluation, training), in its own folder. Only last.ckpt: it is no
            # periodic checkpoint (none if save_last is off; then a signal waits as before). Dirty: a file of
            # its own, not a link to an older save.
            self._dirty = True
            self._save_before(trainer, "start",
                              lambda: self._save_last_checkpoint(trainer, self._monitor_candidates(trainer)))


_ENV_STEPS = re.compile(r"env_steps=(\d+)")


def _env_steps_of(name: str) -> int:
    m = _ENV_STEPS.search(name)
    return int(m.group(1)) if m else -1
