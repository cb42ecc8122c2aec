"""The meta-training schedule as data: which iterations run in which epoch, and when it ends.

An "epoch" of metarl is one evaluation period: Lightning runs the validation loop (adaptation on the
eval tasks) and the epoch-end checkpoint after it. Evaluations land exactly on the multiples of
``every_env_steps`` and the run stops exactly at its budget, because every method knows how many env
steps its next iteration will collect (``iteration_env_steps``) before running it: Lightning prefetches
one batch, so whether iteration k+1 runs is decided before iteration k has run, and that decision
is taken on the env-step count *planned* after iteration k, not on the count seen before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset


def next_eval_at(env_steps: int, every: int) -> int:
    """The first multiple of ``every`` strictly after ``env_steps``: the end of the epoch holding it."""
    return (env_steps // every + 1) * every


class EpochPlan:
    """Plans the iterations of one epoch from the env steps each will collect.

    ``start(env_steps)`` opens an epoch (or the rest of one, after a resume: the plan is a function of
    the env-step count alone, so a resumed run re-plans exactly what the stopped one had planned).
    ``next()`` says whether one more iteration belongs to this epoch and, if so, books its env steps.
    """

    def __init__(self, every: int, budget: int, iteration_env_steps: Callable[[int], int]) -> None:
        self.every, self.budget = every, budget
        self.iteration_env_steps = iteration_env_steps
        self.planned = 0
        self.epoch_end = every
        self.budget_reached = False

    def start(self, env_steps: int) -> None:
        self.planned = env_steps
        self.epoch_end = min(next_eval_at(env_steps, self.every), self.budget)
        self.budget_reached = env_steps >= self.budget

    def next(self) -> bool:
        if self.planned >= self.budget:
            self.budget_reached = True
            return False
        if self.planned >= self.epoch_end:
            return False
        steps = self.iteration_env_steps(self.planned)
        if steps < 1:
            raise RuntimeError(f"an iteration must collect at least one env step, planned {steps}")
        self.planned += steps
        return True


class IterationStream(IterableDataset):
    """Yields meta-training iteration indices while ``keep_going()`` allows."""

    def __init__(self, start_epoch: Callable[[], None], keep_going: Callable[[], bool]) -> None:
        self.start_epoch = start_epoch
        self.keep_going = keep_going

    def __iter__(self) -> Iterator[int]:
        self.start_epoch()
        i = 0
        while self.keep_going():
            yield i
            i += 1


def _identity(x: Any) -> Any:
    return x


def iteration_loader(start_epoch: Callable[[], None], keep_going: Callable[[], bool]) -> DataLoader:
    # Its own generator: creating the iterator must not draw from the global RNG (exact resume).
    return DataLoader(
        IterationStream(start_epoch, keep_going),
        batch_size=None,
        num_workers=0,
        collate_fn=_identity,
        generator=torch.Generator(),
    )


def list_loader(items: list[int]) -> DataLoader:
    return DataLoader(items, batch_size=None, shuffle=False, collate_fn=_identity, generator=torch.Generator())
