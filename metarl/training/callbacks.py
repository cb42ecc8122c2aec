"""Checkpointing that never loses a run: saves every K updates, at every epoch end and at the end,
each file written atomically (a crash leaves either the old checkpoint or the new one, whole)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file in the target folder, fsync, then os.replace onto the target."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".ckpt", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


class MetaCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that also saves every ``every_n_updates`` TD3 updates and when training ends.

    Lightning's ``every_n_train_steps`` counts optimizer steps, which a TD3 iteration advances by a
    varying amount (policy delay), so it would skip saves; this counts metarl's own updates.
    """

    def __init__(self, every_n_updates: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_last", True)
        super().__init__(**kwargs)
        if every_n_updates is not None and every_n_updates < 1:
            raise ValueError(f"checkpoint.every_n_updates must be >= 1 or null, got {every_n_updates}")
        self.every_n_updates = every_n_updates
        self._saved_bucket = -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        if not self.every_n_updates:
            return
        bucket = pl_module.num_updates // self.every_n_updates
        if self._saved_bucket < 0:
            self._saved_bucket = bucket
        elif bucket > self._saved_bucket:
            self._saved_bucket = bucket
            self._save_now(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._save_now(trainer)

    def _save_now(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)
