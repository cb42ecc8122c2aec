"""What a user sees while a run trains: a progress bar over env steps and a bar over the eval
tasks during an evaluation (the start block and the closing line are run_console.py's).

- :class:`EnvStepProgressBar` counts env steps toward the budget (``total_env_steps``) with a
  percentage, the rate and an ETA; during an evaluation, a second bar says which eval task is
  being adapted. On a terminal it is a tqdm bar; when the output goes to a file (a cluster job's
  log) it prints one status line a minute and one line per evaluation instead.
- :class:`FreshStepMetrics` makes a metric logged at some iterations only (``train/return_task/<k>``
  for the tasks played, the losses after the cold start) reach the loggers at those iterations
  only: Lightning would repeat its last value at every later iteration of the epoch.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.callbacks.progress import ProgressBar


def int_attr(obj: Any, name: str) -> int | None:
    """``obj.<name>`` if it is an int (not a bool), else None: a module, a MultiSeed or a test's
    stand-in may lack it."""
    value = getattr(obj, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _metric(trainer: pl.Trainer, key: str) -> float | None:
    value = trainer.callback_metrics.get(key)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def evaluates_at_start(module: Any) -> int:
    """The number of eval tasks of the evaluation a method runs at env step 0, before its first
    iteration (in its own ``on_train_start``, outside Lightning's validation loop); 0 if none."""
    eval_cfg = getattr(module, "eval_cfg", None)
    if not getattr(eval_cfg, "at_start", False) or getattr(module, "env_steps", 1) != 0 \
            or getattr(module, "_pending_rng", None) is not None:
        return 0
    n = len(getattr(getattr(module, "family", None), "eval_tasks", []) or [])
    k = getattr(eval_cfg, "num_tasks", None)
    return n if k is None else min(k, n)


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


class FreshStepMetrics(Callback):
    """Drop the previous iteration's values of step-only training metrics before each iteration.

    Lightning keeps every value logged with ``on_step=True, on_epoch=False`` in its result
    collection until the epoch ends and hands all of them to the loggers at every step, so a
    metric logged only at some iterations is repeated, stale, at all later ones.
    """

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        results = getattr(trainer, "_results", None)
        if results is None:
            return
        for metric in list(results.values()):
            meta = getattr(metric, "meta", None)
            if meta is not None and meta.fx == "training_step" and meta.on_step and not meta.on_epoch:
                metric.has_reset = True  # Lightning's own flag: not reported again until logged again


class EnvStepProgressBar(ProgressBar):
    """Env steps toward the budget, with rate and ETA; eval tasks during an evaluation."""

    def __init__(self, refresh_s: float = 0.5, log_every_s: float = 60.0, file: Any = None) -> None:
        super().__init__()
        self._enabled = True
        self.refresh_s = refresh_s
        self.log_every_s = log_every_s
        self._file = file
        self._train_bar: Any = None
        self._eval_bar: Any = None
        self._start_steps = 0
        self._start_time = 0.0
        self._last_line = 0.0
        self._eval_started = 0.0
        self._eval_total = 0
        self._start_eval: float | None = None

    # --------------------------------------------------------------------- ProgressBar API
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def file(self) -> Any:
        return self._file or sys.stdout

    @property
    def interactive(self) -> bool:
        isatty = getattr(self.file, "isatty", None)
        return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        text = sep.join(map(str, args))
        if self._train_bar is not None:
            self._train_bar.write(text, file=self.file)
        else:
            print(text, file=self.file, flush=True)

    # --------------------------------------------------------------------- training
    def _counts(self, pl_module: Any) -> tuple[int, int | None]:
        return int_attr(pl_module, "env_steps") or 0, int_attr(pl_module, "total_env_steps")

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not self._enabled:
            return
        steps, total = self._counts(pl_module)
        self._start_steps, self._start_time = steps, time.monotonic()
        self._last_line = self._start_time
        self._start_eval = time.monotonic() if evaluates_at_start(pl_module) else None
        if self._start_eval is not None:
            k = evaluates_at_start(pl_module)
            self.print(f"eval at 0 env steps (before any update): adapting on {k} eval task{'s' * (k != 1)} ...")
        if self.interactive:
            from tqdm.auto import tqdm

            self._train_bar = tqdm(
                total=total, initial=steps, file=self.file, dynamic_ncols=True, smoothing=0, leave=True,
                mininterval=self.refresh_s, unit=" env steps", desc="train",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:,}/{total:,} env steps "
                           "[{elapsed}<{remaining}, {rate_fmt}]{postfix}",
            )

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        if self._start_eval is not None:
            self.print(f"eval at 0 env steps done ({duration(time.monotonic() - self._start_eval)})")
            self._start_eval = None
            self._restart_rate_clock()

    def _restart_rate_clock(self) -> None:
        """The rate and ETA count training from here, not the evaluation before it."""
        if self._train_bar is not None:
            try:  # tqdm's own clock
                self._train_bar.start_t = self._train_bar.last_print_t = self._train_bar._time()
            except AttributeError:
                pass
        self._start_time = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        if not self._enabled:
            return
        steps, total = self._counts(pl_module)
        ret = _metric(trainer, "train/return")
        if self._train_bar is not None:
            if total is not None and self._train_bar.total != total:
                self._train_bar.total = total
            post = f"return {ret:.1f}" if ret is not None else ""
            last_eval = _metric(trainer, "eval/return_post_adapt")
            if last_eval is not None:
                post += f", last eval {last_eval:.1f}"
            self._train_bar.set_postfix_str(post, refresh=False)
            self._train_bar.update(steps - self._train_bar.n)
        elif time.monotonic() - self._last_line >= self.log_every_s:
            self._last_line = time.monotonic()
            self.print(self.status_line(steps, total, ret))

    def status_line(self, steps: int, total: int | None, ret: float | None) -> str:
        elapsed = time.monotonic() - self._start_time
        rate = (steps - self._start_steps) / elapsed if elapsed > 0 else 0.0
        line = f"metarl: {steps:,}"
        if total:
            left = (total - steps) / rate if rate > 0 else None
            line += f"/{total:,} env steps ({100 * steps / total:.1f}%), {rate:,.0f} env steps/s, ETA {duration(left)}"
        else:
            line += f" env steps, {rate:,.0f} env steps/s"
        if ret is not None:
            line += f", return {ret:.1f}"
        return line

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if self._train_bar is not None:
            steps, _ = self._counts(pl_module)
            self._train_bar.update(steps - self._train_bar.n)
            self._train_bar.close()
            self._train_bar = None

    def on_exception(self, trainer: pl.Trainer, pl_module: Any, exception: BaseException) -> None:
        for bar in (self._eval_bar, self._train_bar):
            if bar is not None:
                bar.close()
        self._eval_bar = self._train_bar = None

    # --------------------------------------------------------------------- evaluation
    def on_validation_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not self._enabled or trainer.sanity_checking:
            return
        self._eval_total = int(sum(trainer.num_val_batches)) if trainer.num_val_batches else 0
        self._eval_started = time.monotonic()
        if not self.interactive:  # a log file has no bar: say that an evaluation runs (it can take minutes)
            steps, k = int_attr(pl_module, "env_steps") or 0, self._eval_total
            self.print(f"eval at {steps:,} env steps: adapting on {k} eval task{'s' * (k != 1)} ...")
        else:
            from tqdm.auto import tqdm

            self._eval_bar = tqdm(total=self._eval_total, file=self.file, dynamic_ncols=True, leave=False,
                                  position=1, desc=self._eval_desc(pl_module, 0), unit=" task",
                                  bar_format="{desc} {n}/{total} [{elapsed}<{remaining}]")

    def _eval_desc(self, pl_module: Any, index: int) -> str:
        steps = int_attr(pl_module, "env_steps") or 0
        return f"eval at {steps:,} env steps: adapting task {min(index + 1, self._eval_total)} of {self._eval_total}"

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        if self._eval_bar is not None:
            self._eval_bar.set_description_str(self._eval_desc(pl_module, batch_idx), refresh=True)

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        if self._eval_bar is not None:
            self._eval_bar.update(1)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not self._enabled or trainer.sanity_checking:
            return
        if self._eval_bar is not None:
            self._eval_bar.close()
            self._eval_bar = None
        steps = int_attr(pl_module, "env_steps") or 0
        pre, post = _metric(trainer, "eval/return_pre_adapt"), _metric(trainer, "eval/return_post_adapt")
        took = duration(time.monotonic() - self._eval_started)
        line = f"eval at {steps:,} env steps ({self._eval_total} tasks, {took})"
        if pre is not None and post is not None:
            line += f": return {pre:.1f} before adaptation, {post:.1f} after"
        self.print(line)
        if steps == self._start_steps:  # a resumed run's redone evaluation, before any training
            self._restart_rate_clock()
