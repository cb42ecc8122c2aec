"""Pooled multi-task replay: one TorchRL tensor storage split into per-task ring regions.

Task k owns the flat rows ``[k * cap, (k + 1) * cap)`` (cap = ``capacity_per_task``); each region
is a FIFO ring written in time order. Sampling draws flat row indices by arithmetic on the
per-task ``cursor``/``size`` counters and gathers the GRU history windows from the neighbouring
rows (:func:`metarl.data.history.gather_history`), so histories are never stored and memory is
O(transitions) whatever the history length H (stack notes §3).

Write contract (checked by :meth:`MultiTaskReplay.extend`; it makes the windows exact): an
episode's transitions are written in order from ``step_count`` 0, with no other episode of the
same task in between, and a task's episode ids increase. A window entry is valid iff its row holds
the same episode at the expected earlier step, so an episode whose oldest steps were overwritten
keeps its surviving transitions, with zeros where the lost steps were. :meth:`MultiTaskReplay.clear`
empties one task's ring (PEARL's encoder buffer); its next write starts a new episode.

``history_len = 0`` gathers no windows (PEARL and MIER need none): batches hold the stored keys only.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torchrl.data import TensorStorage

from metarl import keys
from metarl.data.history import gather_history
from metarl.data.transitions import check_int, dtype_kind, episode_to_replay, key_name, stored_layout

__all__ = ["MultiTaskReplay", "episode_to_replay"]

_VERSION = 1


class MultiTaskReplay:
    """FIFO replay of ``n_tasks`` rings of ``capacity_per_task`` transitions each (keys.STORED_KEYS)."""

    def __init__(self, n_tasks: int, capacity_per_task: int, obs_dim: int, act_dim: int, history_len: int,
                 device: str | torch.device = "cpu") -> None:
        owner = "MultiTaskReplay"
        self.n_tasks = check_int(owner, "n_tasks", n_tasks, 1)
        self.capacity_per_task = check_int(owner, "capacity_per_task", capacity_per_task, 1)
        self.obs_dim = check_int(owner, "obs_dim", obs_dim, 1)
        self.act_dim = check_int(owner, "act_dim", act_dim, 1)
        self.history_len = check_int(owner, "history_len", history_len, 0)
        self.device = torch.device(device)
        self._layout = stored_layout(obs_dim, act_dim)
        n = n_tasks * capacity_per_task
        self._data = TensorDict(
            {k: torch.zeros((n, *shape), dtype=dt, device=self.device) for k, (shape, dt) in self._layout.items()},
            batch_size=[n], device=self.device,
        )
        self._data[keys.EPISODE].fill_(-1)  # never-written rows match no episode (ids are >= 0)
        # Pre-allocated (zeros, not torch.empty): unwritten rows are deterministic, which keeps
        # state comparisons and the validity mask of the history gather exact.
        self._storage = TensorStorage(self._data, device=self.device)
        self._cursor = torch.zeros(n_tasks, dtype=torch.int64)  # next ring position to write, per task
        self._size = torch.zeros(n_tasks, dtype=torch.int64)  # transitions held, per task (<= cap)

    # ----------------------------------------------------------------------------- sizes
    def size(self, task: int | None = None) -> int:
        """Transitions held by ``task`` (all tasks if None)."""
        if task is None:
            return int(self._size.sum())
        return int(self._size[self._task_index([task])[0]])

    def __len__(self) -> int:
        return self.size()

    def bytes_per_transition(self) -> float:
        """Storage bytes / capacity; does not depend on history_len (windows are gathered, not stored)."""
        total = sum(t.numel() * t.element_size() for t in self._data.values(include_nested=True, leaves_only=True))
        return total / (self.n_tasks * self.capacity_per_task)

    def _task_ids(self, tasks: Sequence[int] | Tensor) -> Tensor:
        """[K] int64 task ids on the CPU, validated, in the given order (duplicates kept)."""
        t = torch.as_tensor(tasks).reshape(-1).cpu()
        if t.numel() == 0 or t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex:
            raise ValueError(f"MultiTaskReplay: tasks must be a non-empty sequence of ints, got {tasks!r}")
        if bool(((t < 0) | (t >= self.n_tasks)).any()):
            raise ValueError(f"MultiTaskReplay: task ids must be in [0, {self.n_tasks - 1}], got {t.tolist()}")
        return t.to(torch.int64)

    def _task_index(self, tasks: Sequence[int] | Tensor | None) -> Tensor:
        """[K] int64 distinct task ids (sorted), validated; None means all tasks."""
        return torch.arange(self.n_tasks) if tasks is None else torch.unique(self._task_ids(tasks))

    # ----------------------------------------------------------------------------- writing
    def _validated(self, episode: TensorDictBase) -> TensorDict:
        """The transitions in storage layout (dtypes cast, on the storage device), or ValueError."""
        if not isinstance(episode, TensorDictBase):
            raise ValueError(f"MultiTaskReplay.extend: expected a TensorDict, got {type(episode).__name__}")
        if episode.batch_dims == 0:
            episode = episode.unsqueeze(0)
        if episode.batch_dims != 1:
            raise ValueError(f"MultiTaskReplay.extend: expected batch shape [n], got {list(episode.batch_size)}")
        present = set(episode.keys(include_nested=True, leaves_only=True))
        missing = [key_name(k) for k in self._layout if k not in present]
        if missing:
            raise ValueError(f"MultiTaskReplay.extend: missing keys {missing} (stored keys: keys.STORED_KEYS)")
        n = episode.shape[0]
        out = {}
        for key, (shape, dtype) in self._layout.items():
            value = episode.get(key)
            if tuple(value.shape) != (n, *shape) or dtype_kind(value.dtype) != dtype_kind(dtype):
                hint = " (use episode_to_replay to convert a TorchRL rollout)" if key == keys.STEP_COUNT else ""
                raise ValueError(
                    f"MultiTaskReplay.extend: {key_name(key)} has shape {list(value.shape)} dtype {value.dtype}; "
                    f"expected shape {[n, *shape]} dtype {dtype}{hint}"
                )
            out[key] = value.to(device=self.device, dtype=dtype)
        return TensorDict(out, batch_size=[n], device=self.device)

    def _check_order(self, task: Tensor, rank: Tensor, episode: Tensor, step: Tensor, where: Tensor) -> None:
        """Each transition continues its task's previous one (same episode, step + 1) or starts a new
        episode (step 0, larger id): the invariant that makes the history gather exact. The arguments
        are grouped by task (``rank`` 0 = a task's first transition of this write; ``where``: the index
        in the caller's data, for the message)."""
        last = torch.arange(self.n_tasks) * self.capacity_per_task + (self._cursor - 1) % self.capacity_per_task
        held = self._size > 0  # an empty region: the first transition must start an episode
        last_episode = torch.where(held, self._data[keys.EPISODE][last].cpu(), -1)
        last_step = torch.where(held, self._data[keys.STEP_COUNT][last].cpu(), -2)
        first = rank == 0
        pe = torch.where(first, last_episode[task], torch.cat([episode[:1], episode[:-1]]))
        ps = torch.where(first, last_step[task], torch.cat([step[:1], step[:-1]]))
        ok = ((episode == pe) & (step == ps + 1)) | ((step == 0) & (episode > pe))
        if not bool(ok.all()):
            j = int((~ok).nonzero()[0])
            raise ValueError(
                f"MultiTaskReplay.extend: transition {int(where[j])} (episode {int(episode[j])}, step_count "
                f"{int(step[j])}) neither continues task {int(task[j])}'s previous transition (episode "
                f"{int(pe[j])}, step_count {int(ps[j])}) nor starts a new episode (step_count 0, larger episode "
                "id); write each episode in order from step 0, with episode ids increasing per task"
            )

    def extend(self, transitions: TensorDictBase) -> None:
        """Append transitions [n] (stored layout, see keys.py), in time order per task: tasks may
        interleave, so a whole collector batch of many episodes is one call. A task's oldest
        transitions are overwritten once its ring is full. Nothing is written on error."""
        data = self._validated(transitions)
        n = data.shape[0]
        if n == 0:
            return
        task_ids = data[keys.TASK_ID].cpu()
        if bool(((task_ids < 0) | (task_ids >= self.n_tasks)).any()):
            raise ValueError(f"MultiTaskReplay.extend: task_id {task_ids.unique().tolist()} out of range "
                             f"[0, {self.n_tasks - 1}]")
        order = torch.sort(task_ids, stable=True).indices  # grouped by task, time order kept within each
        task = task_ids[order]
        counts = torch.bincount(task_ids, minlength=self.n_tasks)
        rank = torch.arange(n) - (counts.cumsum(0) - counts)[task]  # position among its task's new rows
        self._check_order(task, rank, data[keys.EPISODE].cpu()[order], data[keys.STEP_COUNT].cpu()[order], order)
        cap = self.capacity_per_task
        keep = rank >= counts[task] - cap  # of a task's write longer than its ring, its last `cap` rows survive
        slots = task * cap + (self._cursor[task] + rank) % cap
        self._storage.set(slots[keep].to(self.device), data[order[keep].to(self.device)])
        self._cursor = (self._cursor + counts) % cap
        self._size = torch.clamp(self._size + counts, max=cap)

    def clear(self, task: int) -> None:
        """Empty ``task``'s ring (PEARL clears a task's encoder buffer at each visit).

        Its rows are reset to the never-written state (zeros, episode -1), so the storage equals
        that of a replay restored from :meth:`state_dict`, and no history window of a later
        episode can match a stale row, whatever that episode's id. The task's next write must
        start an episode (step_count 0); any episode id is then accepted.
        """
        if isinstance(task, bool) or not hasattr(task, "__index__") or not 0 <= operator.index(task) < self.n_tasks:
            raise ValueError(f"MultiTaskReplay.clear: task must be an int in [0, {self.n_tasks - 1}], got {task!r}")
        task, cap = operator.index(task), self.capacity_per_task
        rows = slice(task * cap, task * cap + int(self._size[task]))  # written rows are positions 0..size-1
        self._data[rows] = 0
        self._data[keys.EPISODE][rows] = -1
        self._cursor[task] = 0
        self._size[task] = 0

    # ----------------------------------------------------------------------------- sampling
    def sample(self, batch_size: int, generator: torch.Generator, tasks: Sequence[int] | Tensor | None = None,
               recent: int | None = None) -> TensorDict:
        """[B] transitions drawn uniformly with replacement from the pooled data of ``tasks`` (None:
        all), so a task is drawn in proportion to what it holds (the MQL pooled buffer).
        ``recent=k`` restricts each task to its k newest transitions (the MQL per-task snapshot).

        Returns a fresh TensorDict [B] with the stored keys plus ``history`` and ``next.history``
        [B, H, act_dim + 1 + obs_dim] (none if H = 0) on the storage device. Randomness: one draw from
        ``generator`` (never the global RNG), so equal generator states give equal batches.
        """
        check_int("MultiTaskReplay.sample", "batch_size", batch_size, 1)
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"MultiTaskReplay.sample: generator must be a torch.Generator, got {generator!r}")
        task_ids = self._task_index(tasks)
        avail = self._size[task_ids]
        if recent is not None:
            avail = avail.clamp(max=check_int("MultiTaskReplay.sample", "recent", recent, 1))
        total = int(avail.sum())
        if total == 0:
            raise ValueError(f"MultiTaskReplay.sample: no transitions stored for tasks {task_ids.tolist()}")
        u = torch.randint(total, (batch_size,), generator=generator, device=generator.device).cpu()
        ends = avail.cumsum(0)
        k = torch.searchsorted(ends, u, right=True)  # which selected task each draw falls in
        j = u - (ends[k] - avail[k])  # rank within that task's selection, 0 = oldest
        task = task_ids[k]
        cap = self.capacity_per_task
        # The selection of task t is its avail[t] newest rows: ring positions cursor - avail ... cursor - 1.
        return self._gather((task * cap + (self._cursor[task] - avail[k] + j) % cap).to(self.device))

    def sample_per_task(self, tasks: Sequence[int] | Tensor, n: int, generator: torch.Generator,
                        recent: int | None = None) -> TensorDict:
        """[T, n]: for each listed task (duplicates allowed: PEARL draws its meta-batch of tasks
        with replacement), n transitions uniformly with replacement from that task's data (its
        ``recent`` newest with ``recent=k``). Row i of the result holds task ``tasks[i]`` only.

        Same keys, copy semantics and randomness as :meth:`sample` (one draw from ``generator``).
        ValueError naming the tasks that hold no transitions.
        """
        owner = "MultiTaskReplay.sample_per_task"
        check_int(owner, "n", n, 1)
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"{owner}: generator must be a torch.Generator, got {generator!r}")
        task = self._task_ids(tasks)
        avail = self._size[task]
        if recent is not None:
            avail = avail.clamp(max=check_int(owner, "recent", recent, 1))
        if bool((avail == 0).any()):
            empty = sorted({int(t) for t in task[avail == 0]})
            raise ValueError(f"{owner}: no transitions stored for task(s) {empty}")
        # Integers far wider than any ring, reduced mod avail: uniform up to a bias < avail / 2**62,
        # and one generator call for every row whatever the tasks' sizes.
        u = torch.randint(2**62, (task.numel(), n), generator=generator, device=generator.device).cpu()
        j = u % avail[:, None]  # rank within the task's selection, 0 = oldest
        cap = self.capacity_per_task
        slots = task[:, None] * cap + (self._cursor[task][:, None] - avail[:, None] + j) % cap
        return self._gather(slots.reshape(-1).to(self.device)).reshape(task.numel(), n)

    def _gather(self, slots: Tensor) -> TensorDict:
        """The transitions at flat rows ``slots`` [B] (a copy), with their windows if history_len > 0."""
        batch = self._storage.get(slots)  # advanced indexing: a copy, never a view of the storage
        if self.history_len == 0:
            return batch
        history, next_history = gather_history(
            self._data[keys.ACTION], self._data[keys.REWARD], self._data[keys.OBS],
            self._data[keys.STEP_COUNT], self._data[keys.EPISODE], slots, self.capacity_per_task, self.history_len,
        )
        return batch.set(keys.HISTORY, history).set(keys.NEXT_HISTORY, next_history)

    # ----------------------------------------------------------------------------- checkpoint
    def _written_slots(self, size: Tensor) -> Tensor:
        """Flat rows ever written, in row order: a region fills positions 0.. before it wraps."""
        cap = self.capacity_per_task
        return torch.cat([t * cap + torch.arange(int(s)) for t, s in enumerate(size.tolist())])

    def state_dict(self) -> dict[str, Any]:
        """Counters and the written rows only (CPU tensors, ints and dicts: torch.load(weights_only=True)-safe)."""
        rows = self._data[self._written_slots(self._size).to(self.device)].cpu()
        return {
            "version": _VERSION, "n_tasks": self.n_tasks, "capacity_per_task": self.capacity_per_task,
            "obs_dim": self.obs_dim, "act_dim": self.act_dim,
            "cursor": self._cursor.clone(), "size": self._size.clone(), "data": rows.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; everything is checked before anything is changed (ValueError)."""
        owner = "MultiTaskReplay.load_state_dict"
        if not isinstance(state, dict):
            raise ValueError(f"{owner}: expected a dict, got {type(state).__name__}")
        need = ("version", "n_tasks", "capacity_per_task", "obs_dim", "act_dim", "cursor", "size", "data")
        missing = [k for k in need if k not in state]
        if missing:
            raise ValueError(f"{owner}: not a MultiTaskReplay state, missing {missing}")
        if state["version"] != _VERSION:
            raise ValueError(f"{owner}: state version {state['version']!r}, this code reads {_VERSION}")
        for name in need[1:5]:
            if state[name] != getattr(self, name):
                mine = getattr(self, name)
                raise ValueError(f"{owner}: checkpoint has {name}={state[name]!r}, this replay has {name}={mine}")
        cap, shape = self.capacity_per_task, (self.n_tasks,)
        for name in ("cursor", "size"):
            t = state[name]
            if not isinstance(t, Tensor) or tuple(t.shape) != shape or t.dtype != torch.int64:
                raise ValueError(f"{owner}: {name} must be an int64 tensor of shape {list(shape)}")
        cursor, size = state["cursor"].cpu(), state["size"].cpu()
        ok = (size >= 0) & (size <= cap) & (cursor >= 0) & (cursor < cap) & ((size == cap) | (cursor == size))
        if not bool(ok.all()):
            raise ValueError(f"{owner}: inconsistent cursor {cursor.tolist()} / size {size.tolist()} (cap {cap})")
        n = int(size.sum())
        try:
            rows = TensorDict(state["data"], batch_size=[n])
        except Exception as err:
            raise ValueError(f"{owner}: data is not {n} rows of stored transitions ({err})") from None
        for key, (kshape, dtype) in self._layout.items():
            value = rows.get(key, None)
            if not isinstance(value, Tensor) or tuple(value.shape) != (n, *kshape) or value.dtype != dtype:
                got = "missing" if value is None else f"{list(value.shape)} {value.dtype}"
                raise ValueError(f"{owner}: data {key_name(key)} is {got}; expected {[n, *kshape]} {dtype}")
        slots = self._written_slots(size)
        if bool((rows[keys.TASK_ID].cpu() != torch.div(slots, cap, rounding_mode="floor")).any()):
            raise ValueError(f"{owner}: task_id of the stored rows does not match their task regions")
        self._data.zero_()
        self._data[keys.EPISODE].fill_(-1)
        self._storage.set(slots.to(self.device), rows.select(*self._layout).to(self.device), set_cursor=False)
        self._cursor, self._size = cursor.cpu().clone(), size.cpu().clone()  # counters live on the CPU
