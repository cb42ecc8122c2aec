"""Atomic checkpoint files: a reader never sees a partial file under a checkpoint's name, and a
save cut short (SIGKILL, a full disk) leaves the previous checkpoint whole (docs/reliability.md)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "link_atomically"]


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
        with _removed_on_failure(tmp):
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, path)
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


def link_atomically(source: str, target: str) -> None:
    """``target`` becomes another name of the complete file ``source`` (a hard link: no second copy
    on disk, no second write), atomically as AtomicCheckpointIO's saves. A file system without hard
    links gets a copy."""
    folder = os.path.dirname(os.path.abspath(target))
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex[:8]}.tmp")
    with _removed_on_failure(tmp):
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    _fsync_dir(folder)


@contextlib.contextmanager
def _removed_on_failure(tmp: str) -> Iterator[None]:
    """A save cut short (an exception, SIGINT) leaves no temporary file behind."""
    try:
        yield
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
