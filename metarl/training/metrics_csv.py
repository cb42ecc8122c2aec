"""A run's ``metrics.csv`` (docs/reliability.md, "Run folders"): a resumed run appends to its own, and
per-task training returns go to ``train_task_returns.csv`` (one row per played episode), not to one
column per task in ``metrics.csv``.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from metarl.training.run_dir import csv_loggers

#: ``train/return_task/<k>``, and ``seed<s>/train/return_task/<k>`` of a multi-seed run.
TASK_KEY = re.compile(r"^(?:seed(\d+)/)?train/return_task/(.+)$")
TASK_RETURNS_FILE = "train_task_returns.csv"


class RunCSVWriter(ExperimentWriter):
    """Lightning's CSV writer, except that:

    - a resumed run appends to its ``metrics.csv`` (Lightning's deletes an existing one);
    - ``train/return_task/<k>`` goes to ``train_task_returns.csv``, one row per played episode
      (``step, train/env_steps, task, return``), not to one mostly-empty column per task; a
      multi-seed run's ``seed<s>/train/return_task/<k>`` too, with a ``seed`` column.
    """

    def __init__(self, log_dir: str, append: bool) -> None:
        self._append = append
        super().__init__(log_dir)
        self.task_returns_path = os.path.join(self.log_dir, TASK_RETURNS_FILE)
        self._task_rows: list[dict[str, Any]] = []
        if append and self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])

    def _check_log_dir_exists(self) -> None:
        # prepare_run_folders has checked the folder: a new run's holds no metrics.csv, and a
        # resumed run's metrics.csv is its own, to append to (Lightning's writer deletes it).
        pass

    def _record_new_keys(self) -> set[str]:
        new = set().union(*self.metrics) - set(self.metrics_keys)
        if new:  # the file is rewritten with the new header; otherwise the existing column order holds
            self.metrics_keys = sorted(set(self.metrics_keys) | new)
        return new

    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        tasks = {k: (m.group(1), m.group(2), v) for k, v in metrics_dict.items() if (m := TASK_KEY.match(k))}
        if tasks:
            env_steps = metrics_dict.get("train/env_steps")
            for seed, task, value in sorted(tasks.values(), key=lambda t: (int(t[0] or 0), _task_order(t[1]))):
                row = {"step": step, "train/env_steps": _number(env_steps), "task": task, "return": _number(value)}
                self._task_rows.append(row if seed is None else {**row, "seed": int(seed)})
            metrics_dict = {k: v for k, v in metrics_dict.items() if k not in tasks}
        if metrics_dict:
            super().log_metrics(metrics_dict, step)

    def save(self) -> None:
        super().save()
        if not self._task_rows:
            return
        exists = self._fs.isfile(self.task_returns_path)
        with self._fs.open(self.task_returns_path, "a" if exists else "w", newline="") as f:
            seeded = ["seed"] if "seed" in self._task_rows[0] else []
            writer = csv.DictWriter(f, fieldnames=["step", "train/env_steps", *seeded, "task", "return"])
            if not exists:
                writer.writeheader()
            writer.writerows(self._task_rows)
        self._task_rows = []


def _number(value: Any) -> Any:
    if value is None:
        return ""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _task_order(tail: str) -> tuple[int, str]:
    return (int(tail), "") if tail.isdigit() else (sys.maxsize, tail)


def install_csv_writers(loggers: Iterable[Any], append: bool) -> None:
    for logger in csv_loggers(loggers):
        if logger._experiment is None:  # CSVLogger.experiment builds Lightning's writer lazily
            logger._experiment = RunCSVWriter(logger.log_dir, append=append)
