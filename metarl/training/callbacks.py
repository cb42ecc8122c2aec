"""Checkpointing that never loses a run (docs/reliability.md).

- Saves every K updates, after every evaluation and when training ends; each file is written
  atomically (a crash leaves either the old checkpoint or the new one, whole).
- Saves only between meta-training iterations, where the state is consistent and a resumed run
  continues exactly. A periodic save that falls on an epoch's last iteration waits for the
  epoch-end save after validation: a checkpoint taken before validation would skip it on resume.
- SIGTERM (cluster pre-emption) and SIGINT (Ctrl-C) only raise a flag; the run saves at the next
  consistent point (the end of the running iteration, or after validation) and stops with
  :class:`RunInterrupted`. A second SIGINT stops at once, without a checkpoint.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import warnings
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what a plain open() would give; mkstemp's files are 0600


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a hidden temporary file in the target folder, fsync, os.replace onto the target,
    fsync the folder. A reader never sees a partial file under a checkpoint's name."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        # Not named *.ckpt: a leftover from a killed save is never mistaken for a checkpoint.
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable (power loss); not every platform can open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RunInterrupted(Exception):
    """Training stopped on a signal after writing a checkpoint (``path``)."""

    def __init__(self, signum: int, path: str, iteration: int, env_steps: int) -> None:
        self.signum, self.path, self.iteration, self.env_steps = signum, path, iteration, env_steps
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} after iteration {iteration} (env step {env_steps}); checkpoint {path}")


class MetaCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that also saves every ``every_n_updates`` TD3 updates and when training ends,
    and turns SIGTERM/SIGINT into a checkpoint and a clean stop.

    Lightning's ``every_n_train_steps`` counts optimizer steps, which a TD3 iteration advances by a
    varying amount (policy delay), so it would skip saves; this counts metarl's own updates.
    """

    STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, every_n_updates: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_last", True)
        if kwargs.get("save_on_exception"):
            raise ValueError(
                "checkpoint.save_on_exception must be false: an exception can stop training mid-iteration, and "
                "a checkpoint of that state cannot resume exactly (SIGTERM/SIGINT already save between iterations)"
            )
        super().__init__(**kwargs)
        if every_n_updates is not None and every_n_updates < 1:
            raise ValueError(f"checkpoint.every_n_updates must be >= 1 or null, got {every_n_updates}")
        self.every_n_updates = every_n_updates
        self.seed_everything: int | bool | None = None  # set by the CLI; kept in checkpoints (resume checks)
        self._saved_bucket = -1
        self._signal: int | None = None
        self._stop_now = False
        self._dirty = False  # state changed since the last save
        self._deferred = False  # a periodic save waits for the end of the epoch
        self._old_handlers: dict[int, Any] = {}
        self._trainer_ref: pl.Trainer | None = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # A resumed run saves into the new logger version's folder. Lightning then keeps the old
        # folder's top-k bookkeeping out of this run (so it never prunes the old run's files) and
        # warns about it on every resume; that is the intended behaviour here, not a problem.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The dirpath has changed")
            super().load_state_dict(state_dict)

    # ------------------------------------------------------------------ periodic and final saves
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        self._dirty = True
        epoch_ends = self._epoch_ends_here(trainer)
        due = False
        if self.every_n_updates:
            bucket = pl_module.num_updates // self.every_n_updates
            if self._saved_bucket < 0:
                self._saved_bucket = bucket
            elif bucket > self._saved_bucket:
                self._saved_bucket, due = bucket, True
        if epoch_ends:
            # Lightning's own step/time-triggered saves would land before validation too.
            self._deferred = self._deferred or due or bool(self._every_n_train_steps or self._train_time_interval)
        else:
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
            if due:
                self._save_now(trainer)
        if self._stop_requested(trainer) and not epoch_ends:
            self._save_if_dirty(trainer)
            # Stop before the next iteration, once this one's metrics have reached the loggers.
            self._stop_now = True

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        if self._stop_now:
            self._raise_stop(trainer, pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._dirty = True  # evaluation advances the eval envs' generators

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # the epoch-end save (after validation)
        stop = self._stop_requested(trainer)
        if stop or self._deferred:
            self._deferred = False
            self._save_if_dirty(trainer)
        if stop:
            self._raise_stop(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._restore_handlers()
        self._save_if_dirty(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._restore_handlers()
        super().on_exception(trainer, pl_module, exception)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint.setdefault("metarl_run", {})["seed_everything"] = self.seed_everything

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self._dirty = False

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
        # After Lightning registered its own SIGTERM handler (it would stop without a checkpoint);
        # Lightning's teardown puts the handlers from before fit back.
        self._signal, self._stop_now = None, False
        if threading.current_thread() is not threading.main_thread():
            return
        connector = getattr(trainer, "_signal_connector", None)
        if getattr(connector, "received_sigterm", False):
            self._signal = signal.SIGTERM
            connector.received_sigterm = False  # type: ignore[union-attr]
        self._trainer_ref = trainer
        for signum in self.STOP_SIGNALS:
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, the last checkpoint stays as it is
        first = self._signal is None
        self._signal = signum
        if first and self._trainer_ref is not None:
            launcher = getattr(self._trainer_ref.strategy, "launcher", None)
            if launcher is not None:  # let the other local ranks know too, as Lightning does
                launcher.kill(signum)
        # os.write on fd 2: print() may not be re-entered from a signal handler.
        os.write(2, (
            f"metarl: got {name}: saving a checkpoint after the current iteration, then stopping"
            + (" (Ctrl-C again to stop at once)\n" if signum == signal.SIGINT else "\n")
        ).encode())

    def _stop_requested(self, trainer: pl.Trainer) -> bool:
        # Every rank must take the same decision: saving is collective.
        return bool(trainer.strategy.reduce_boolean_decision(self._signal is not None, all=False))

    def _raise_stop(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._stop_now = False
        if self._signal == signal.SIGTERM:
            from metarl.tracking import mark_preempting

            mark_preempting(trainer.loggers)
        path = self.last_model_path or self.best_model_path
        raise RunInterrupted(self._signal or signal.SIGTERM, path, pl_module.iteration, pl_module.env_steps)

    def _restore_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers = {}
