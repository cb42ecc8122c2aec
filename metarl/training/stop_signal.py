"""SIGTERM (cluster pre-emption) and SIGINT (Ctrl-C) during training, for MetaCheckpoint.

A signal raises a flag and prints one line saying what happens next and about how long it takes;
MetaCheckpoint saves at the next consistent point (the end of the running iteration) and then stops
the run with :class:`RunInterrupted`. During an evaluation that has a checkpoint taken right before it
(callbacks.py), the run stops at once instead: evaluations take minutes, longer than a cluster waits
after SIGTERM, and the resumed run evaluates again from that checkpoint. A second SIGINT stops at
once, without a checkpoint. Before training starts and after it ends, exits.py's handlers stop the
process instead: there is nothing to save then.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType
from typing import Any

import pytorch_lightning as pl

from metarl.training.progress import duration, evaluates_at_start


class RunInterrupted(Exception):
    """Training stopped on a signal after writing a checkpoint (``path``)."""

    def __init__(self, signum: int, path: str, iteration: int, env_steps: int) -> None:
        self.signum, self.path, self.iteration, self.env_steps = signum, path, iteration, env_steps
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} after iteration {iteration} (env step {env_steps}); checkpoint {path}")


class StopOnSignal:
    """The signal half of MetaCheckpoint (a mixin: the checkpoint callback's hooks call these, and
    the state lives on the callback, so the save logic reads the flag directly).

    It also times the running iteration and evaluation, for the line printed at the signal.
    """

    STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

    # Provided by ModelCheckpoint.
    last_model_path: str
    best_model_path: str

    def _init_stop_signals(self) -> None:
        # Not an __init__: the CLI reads MetaCheckpoint's options through its super().__init__ chain.
        self._signal: int | None = None
        self._stop_now = False
        self._old_handlers: dict[int, Any] = {}
        self._trainer_ref: pl.Trainer | None = None
        # For the signal message: how long the current iteration or evaluation will take.
        self._iteration_started: float | None = None
        self._iteration_seconds: float | None = None
        self._eval: dict[str, Any] | None = None
        self._eval_task_seconds: float | None = None  # the previous evaluation's, per task
        # The checkpoint of the state right before the running evaluation, if there is one: a stop
        # signal then abandons the evaluation (the resumed run redoes it).
        self._pre_eval_path: str | None = None

    # ------------------------------------------------------------------ timing, for the message
    def _iteration_ended(self) -> None:
        if self._iteration_started is not None:
            took = time.monotonic() - self._iteration_started
            last = self._iteration_seconds
            self._iteration_seconds = took if last is None else 0.7 * last + 0.3 * took

    def _evaluation_started(self, trainer: pl.Trainer) -> None:
        if not trainer.sanity_checking:
            total = sum(int(n) for n in trainer.num_val_batches) if trainer.num_val_batches else 0
            self._eval = {"started": time.monotonic(), "done": 0, "total": total}

    def _evaluation_task_done(self) -> None:
        if self._eval is not None:
            self._eval["done"] += 1

    def _evaluation_ended(self) -> None:
        if self._eval is not None and self._eval["done"]:
            self._eval_task_seconds = (time.monotonic() - self._eval["started"]) / self._eval["done"]
        self._eval = None
        self._pre_eval_path = None

    # ------------------------------------------------------------------ the handlers
    def _take_stop_signals(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Called at train start, after Lightning registered its own SIGTERM handler (it would stop
        without a checkpoint); Lightning's teardown puts the handlers from before fit back."""
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
        k = evaluates_at_start(pl_module)  # the method's evaluation at env step 0 runs right after this hook
        self._eval = {"started": time.monotonic(), "done": 0, "total": k, "at_start": True} if k else None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, the last checkpoint stays as it is
        first = self._signal is None
        self._signal = signum
        if first and self._trainer_ref is not None:
            launcher = getattr(self._trainer_ref.strategy, "launcher", None)
            if launcher is not None:  # let the other local ranks know too, as Lightning does
                launcher.kill(signum)
        # os.write on fd 2: print() may not be re-entered from a signal handler. On a terminal the
        # line starts on a line of its own, not after a progress bar's.
        start = "\n" if os.isatty(2) else ""
        os.write(2, (start + self.signal_message(signum) + "\n").encode())
        if first and self._abandons_evaluation():
            # Raised here, in the middle of the evaluation, as Ctrl-C's KeyboardInterrupt is: nothing
            # of the evaluation is kept, and the state on disk is the one from before it.
            self._raise_stop(self._trainer_ref, self._trainer_ref.lightning_module,  # type: ignore[union-attr]
                             path=self._pre_eval_path)

    def _abandons_evaluation(self) -> bool:
        return self._eval is not None and self._pre_eval_path is not None and self._trainer_ref is not None

    def signal_message(self, signum: int) -> str:
        """What happens after a stop signal, and about how long it takes."""
        name = signal.Signals(signum).name
        again = " (Ctrl-C again to stop at once, without a checkpoint)" if signum == signal.SIGINT else ""
        ev = self._eval
        if self._abandons_evaluation():
            return (f"metarl: got {name} during an evaluation: stopping now, without it; the checkpoint "
                    f"{self._pre_eval_path} (taken right before it) is kept, and the resumed run evaluates first")
        if ev is not None and ev.get("at_start"):
            return (f"metarl: got {name} during the evaluation at env step 0 ({ev['total']} eval tasks, before any "
                    f"update; the first evaluation of this run: no time estimate yet); then one iteration runs, "
                    f"its checkpoint is written and the run stops{again}")
        if ev is not None and ev["total"]:
            done, total = ev["done"], ev["total"]
            elapsed = time.monotonic() - ev["started"]
            per_task = elapsed / done if done else self._eval_task_seconds
            if per_task is not None:
                left = f", about {duration(max(per_task * (total - done) - (0 if done else elapsed), 1))} left"
            else:
                left = ", the first evaluation of this run: no time estimate yet"
            return (f"metarl: got {name} during the evaluation (eval task {min(done + 1, total)} of {total}{left}); "
                    f"the checkpoint is written when the evaluation ends, then the run stops{again}")
        took = ""
        if self._iteration_seconds is not None and self._iteration_started is not None:
            left = self._iteration_seconds - (time.monotonic() - self._iteration_started)
            took = f" (about {duration(max(left, 1))})"
        return f"metarl: got {name}: saving a checkpoint after the current iteration{took}, then stopping{again}"

    def _stop_requested(self, trainer: pl.Trainer) -> bool:
        # Every rank must take the same decision: saving is collective.
        return bool(trainer.strategy.reduce_boolean_decision(self._signal is not None, all=False))

    def _raise_stop(self, trainer: pl.Trainer, pl_module: Any, path: str | None = None) -> None:
        self._stop_now = False
        if self._signal == signal.SIGTERM:
            from metarl.tracking import mark_preempting

            mark_preempting(trainer.loggers)
        path = path or self.last_model_path or self.best_model_path
        raise RunInterrupted(self._signal or signal.SIGTERM, path, pl_module.iteration, pl_module.env_steps)

    def _restore_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers = {}
