"""Trajectory segments from the multi-task replay: GrBAL's windows of consecutive transitions.

GrBAL (Nagabandi et al., ICLR 2019, Algorithm 1; learning_to_adapt ``meta_mlp_dynamics.py``
``_get_batch``) meta-trains its model on segments τ(t − M, t + K) of one stored trajectory: the M past
transitions adapt the model, the K future ones score the adapted model. A segment never crosses an
episode boundary (the task may change at every episode).

:class:`TrajectoryReplay` is a :class:`MultiTaskReplay` (same rings, same write contract, same
checkpoint) that also samples such segments. The write contract (each task's episodes are written
in order from step 0) makes a segment of length L starting at a stored row valid exactly when the
row L − 1 places later in the same ring holds the same episode L − 1 steps on.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import Tensor

from metarl import keys
from metarl.data.replay import MultiTaskReplay
from metarl.data.transitions import check_int

__all__ = ["TrajectoryReplay"]


class TrajectoryReplay(MultiTaskReplay):
    """A multi-task replay that also draws segments of consecutive transitions of one episode."""

    def _stored_slots(self) -> tuple[Tensor, Tensor]:
        """(flat rows, rank within their task's ring: 0 = oldest) of every stored transition, task by task."""
        cap = self.capacity_per_task
        slots, ranks = [], []
        for task, (size, cursor) in enumerate(zip(self._size.tolist(), self._cursor.tolist(), strict=True)):
            rank = torch.arange(size)
            slots.append(task * cap + (cursor - size + rank) % cap)
            ranks.append(rank)
        return torch.cat(slots), torch.cat(ranks)

    def stored(self) -> TensorDict:
        """Every stored transition ``[N]`` (a copy), task by task, oldest first."""
        return self._storage.get(self._stored_slots()[0].to(self.device))

    def segment_starts(self, length: int) -> Tensor:
        """The flat rows ``[W]`` at which a segment of ``length`` consecutive transitions of one episode
        starts (every such segment once)."""
        check_int("TrajectoryReplay.segment_starts", "length", length, 1)
        cap = self.capacity_per_task
        slots, ranks = self._stored_slots()
        size = self._size[torch.div(slots, cap, rounding_mode="floor")]
        fits = ranks + length - 1 < size  # the segment's last row is stored in the same ring
        start = slots[fits]
        end = (start - start % cap) + (start % cap + length - 1) % cap
        episode, step = self._data[keys.EPISODE].cpu(), self._data[keys.STEP_COUNT].cpu()
        same = (episode[end] == episode[start]) & (step[end] == step[start] + length - 1)
        return start[same]

    def segments(self, starts: Tensor, length: int) -> TensorDict:
        """The segments ``[len(starts), length]`` starting at the flat rows ``starts`` (a copy)."""
        cap = self.capacity_per_task
        base = starts - starts % cap
        rows = base[:, None] + (starts[:, None] % cap + torch.arange(length)) % cap
        return self._storage.get(rows.reshape(-1).to(self.device)).reshape(starts.numel(), length)

    def sample_segments(self, n: int, length: int, generator: torch.Generator) -> TensorDict:
        """``[n, length]``: n segments drawn uniformly with replacement among all stored segments of that
        length (learning_to_adapt draws a trajectory, then a start in it: the same law when every
        trajectory has the same length). One draw from ``generator``; ValueError when none is stored."""
        check_int("TrajectoryReplay.sample_segments", "n", n, 1)
        starts = self.segment_starts(length)
        if starts.numel() == 0:
            raise ValueError(f"TrajectoryReplay.sample_segments: no stored episode holds {length} consecutive "
                             "transitions (segments never cross an episode boundary)")
        pick = torch.randint(starts.numel(), (n,), generator=generator, device=generator.device).cpu()
        return self.segments(starts[pick], length)
