"""The meta-training schedule as data: how many env steps, episodes and updates, and when."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch.utils.data import DataLoader, IterableDataset


class IterationStream(IterableDataset):
    """Yields meta-training iteration indices until ``keep_going()`` says the epoch is over.

    An "epoch" of metarl is one evaluation period (``eval_every`` env steps): Lightning then runs the
    validation loop (adaptation on the eval tasks) and the epoch-end checkpoint.
    """

    def __init__(self, start_epoch: Callable[[], None], keep_going: Callable[[], bool]) -> None:
        self.start_epoch = start_epoch
        self.keep_going = keep_going

    def __iter__(self) -> Iterator[int]:
        self.start_epoch()
        i = 0
        while self.keep_going():
            yield i
            i += 1


def _identity(x: object) -> object:
    return x


def iteration_loader(start_epoch: Callable[[], None], keep_going: Callable[[], bool]) -> DataLoader:
    import torch

    # Its own generator: creating the iterator must not draw from the global RNG (exact resume).
    return DataLoader(
        IterationStream(start_epoch, keep_going),
        batch_size=None,
        num_workers=0,
        collate_fn=_identity,
        generator=torch.Generator(),
    )


def list_loader(items: list[int]) -> DataLoader:
    import torch

    return DataLoader(items, batch_size=None, shuffle=False, collate_fn=_identity, generator=torch.Generator())
