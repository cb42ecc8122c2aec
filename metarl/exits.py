"""How ``python -m metarl`` ends: one line on stderr and an exit code for every way a run can stop.

Errors of the user's making (a bad key or value, a missing config, an unusable checkpoint or
folder, a run that diverged, a full disk) are one line and a non-zero exit code, with no
traceback unless ``METARL_TRACEBACK=1``. Exit codes: 2 bad input, 1 training failed, 3 training
stopped before its budget (a Trainer limit), 128 + signal number when a signal stopped the run
(after writing a checkpoint, once training has started); see docs/reliability.md.

A stop signal during training is MetaCheckpoint's (training/stop_signal.py: it saves first);
before training starts and after it ends there is nothing to save, and the handlers here stop at
once.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytorch_lightning.utilities.exceptions import MisconfigurationException

from metarl.cli_errors import ConfigError
from metarl.training.resume import CheckpointError
from metarl.training.stop_signal import RunInterrupted


class BudgetNotReached(Exception):
    """fit returned before ``total_env_steps`` (a Trainer limit stopped it): exit code 3."""


class Stopped(BaseException):
    """A stop signal before training started or after it ended: nothing to save (BaseException: no
    ``except Exception`` of a library in between swallows it)."""

    def __init__(self, signum: int, phase: str) -> None:
        self.signum, self.phase = signum, phase
        super().__init__(signum)


#: Where the process is, for the message of a stop signal outside training.
_phase = {"name": "start-up"}


def set_phase(name: str) -> None:
    """Name what the process does now (``start-up``, ``the meta-test``, ``finishing``, ...)."""
    _phase["name"] = name


def _stop_handler(signum: int, frame: Any) -> None:
    raise Stopped(signum, _phase["name"])


def install_stop_handlers() -> dict[int, Any]:
    """Until training starts (MetaCheckpoint then takes SIGTERM/SIGINT over), a stop signal stops
    at once with one line: there is nothing to save."""
    set_phase("start-up")
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _stop_handler) for s in (signal.SIGTERM, signal.SIGINT)}


def restore_stop_handlers(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


@contextmanager
def one_line_errors(argv: list[str]) -> Iterator[None]:
    """Turns what stops a run into its line on stderr and its exit code; ``argv`` (the command line
    as given) makes the command that resumes the run."""
    try:
        yield
    except (ConfigError, CheckpointError, MisconfigurationException) as err:
        _fail(str(err), 2)
    except FloatingPointError as err:
        _fail(str(err), 1)
    except BudgetNotReached as err:
        message, path = err.args
        resume = f"; continue with: {resume_command(argv, path)}" if path else ""
        _fail(f"{message}{resume}", 3)
    except RunInterrupted as stop:
        print(f"metarl: {stop}; resume with: {resume_command(argv, stop.path)}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except Stopped as stop:
        name = signal.Signals(stop.signum).name
        what = {"start-up": "during start-up, before training started: nothing to save yet",
                "finishing": "after training ended: its checkpoint is written",
                }.get(stop.phase, f"during {stop.phase}: nothing to save")
        print(f"metarl: stopped by {name} {what}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except KeyboardInterrupt:
        print("metarl: interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except OSError as err:
        _fail(_os_error_message(err), 1)


def resume_command(argv: list[str], ckpt_path: str, cwd: str | None = None) -> str:
    """The command line that resumes this run from ``ckpt_path``, valid from any folder: the same
    arguments, with ``--ckpt_path`` replaced, run in the folder this one started in (the configs'
    relative paths, e.g. ``runs/<config>``, are relative to it)."""
    cwd = cwd or os.getcwd()
    args: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = True
            continue
        if arg.startswith("--ckpt_path="):
            continue
        args.append(arg)
    path = os.path.abspath(ckpt_path) if ckpt_path else ckpt_path
    python = "python" if shutil.which("python") and os.path.realpath(shutil.which("python") or "") == \
        os.path.realpath(sys.executable) else sys.executable
    line = " ".join(shlex.quote(a) for a in [python, "-m", "metarl", *args, "--ckpt_path", path])
    return f"cd {shlex.quote(cwd)} && {line}"


def memory_message(text: str) -> str:
    """The one line for a model too large for memory; ``text`` is the allocator's error."""
    import re

    m = re.search(r"allocate (\d+) bytes", text)
    size = f" ({int(m.group(1)) / 1e9:,.1f} GB in one allocation)" if m else ""
    return (f"not enough memory to build the model{size}: the replay takes collect.replay_size x the bytes per "
            "transition (docs/reliability.md, \"Checkpoints\"); lower collect.replay_size or the net sizes")


def stop_reason(trainer: Any) -> str:
    """Which Trainer limit ended fit before the env-step budget."""
    if trainer.max_epochs not in (None, -1) and trainer.current_epoch >= trainer.max_epochs:
        return f"trainer.max_epochs={trainer.max_epochs} ended it (an epoch is one evaluation period)"
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return (f"trainer.max_steps={trainer.max_steps} ended it (Lightning counts optimizer steps, about 1.5 per "
                "update)")
    for cb in trainer.callbacks:
        if type(cb).__name__ == "Timer" and getattr(cb, "_duration", None):
            return f"trainer.max_time ({cb._duration:.0f} s) ended it"
    if trainer.limit_train_batches not in (None, 1.0):
        return f"trainer.limit_train_batches={trainer.limit_train_batches} ended it"
    return "a Trainer limit or a callback ended it (trainer.should_stop)"


def _fail(message: str, code: int) -> None:
    print(f"metarl: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def _os_error_message(err: OSError) -> str:
    what = err.filename if err.filename else "a file"
    reason = err.strerror or str(err)
    hint = ""
    if err.errno == errno.ENOSPC:
        hint = "; free some space (checkpoint and replay sizes per config: docs/reliability.md)"
    elif err.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        hint = "; choose a writable folder (trainer.default_root_dir, the logger's save_dir, checkpoint.dirpath)"
    return f"cannot write {what}: {reason}{hint}; the last complete checkpoint is unchanged"
