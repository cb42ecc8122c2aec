"""The stored transition layout of MultiTaskReplay (keys.STORED_KEYS) and the conversion into it.

Kept apart from ``replay.py`` so that the storage module holds only the rings, their sampling and
their checkpoint; ``metarl.data.replay`` re-exports :func:`episode_to_replay`.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from metarl import keys


def key_name(key: str | tuple[str, ...]) -> str:
    """A (nested) TensorDict key as users write it in messages: ``("next", "reward")`` -> ``next.reward``."""
    return ".".join(key) if isinstance(key, tuple) else key


def stored_layout(obs_dim: int, act_dim: int) -> dict[Any, tuple[tuple[int, ...], torch.dtype]]:
    """Per stored key (keys.STORED_KEYS order): (per-transition shape, dtype)."""
    f32, i64, flag = torch.float32, torch.int64, torch.bool
    return {
        keys.OBS: ((obs_dim,), f32), keys.ACTION: ((act_dim,), f32), keys.TASK_ID: ((), i64),
        keys.STEP_COUNT: ((), i64), keys.EPISODE: ((), i64), keys.NEXT_OBS: ((obs_dim,), f32),
        keys.REWARD: ((1,), f32), keys.TERMINATED: ((1,), flag), keys.TRUNCATED: ((1,), flag),
        keys.DONE: ((1,), flag),
    }


def check_int(owner: str, name: str, value: Any, low: int) -> int:
    """``value`` if it is an int (not a bool) >= low, else a one-line ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return value


def dtype_kind(d: torch.dtype) -> str:
    """Casting is allowed within a kind (float64 -> float32, int32 -> int64), never across kinds."""
    return "bool" if d == torch.bool else "float" if d.is_floating_point else "complex" if d.is_complex else "int"


def episode_to_replay(td: TensorDictBase, task_id: int, episode_id: int) -> TensorDict:
    """A TorchRL rollout / collector batch [n] of ONE episode -> the stored layout [n] (keys.STORED_KEYS).

    Drops everything else (history windows, collector ids, root done flags), squeezes
    StepCounter's ``step_count`` from [n, 1] to [n], and sets ``task_id`` and ``episode``: the
    given ``task_id`` overrides any ``task_id`` in ``td`` (adaptation relabels eval episodes).
    Tensors are shared with ``td``, not copied (``extend`` copies into the storage).
    """
    owner = "episode_to_replay"
    check_int(owner, "task_id", task_id, 0)
    check_int(owner, "episode_id", episode_id, 0)
    if not isinstance(td, TensorDictBase) or td.batch_dims != 1:
        raise ValueError(f"{owner}: expected a TensorDict with batch shape [n], got {getattr(td, 'batch_size', td)}")
    needed = [k for k in keys.STORED_KEYS if k not in (keys.TASK_ID, keys.EPISODE)]
    present = set(td.keys(include_nested=True, leaves_only=True))
    missing = [key_name(k) for k in needed if k not in present]
    if missing:
        raise ValueError(f"{owner}: missing keys {missing}")
    n = td.shape[0]
    step = td.get(keys.STEP_COUNT)
    if tuple(step.shape) == (n, 1):
        step = step.squeeze(-1)  # StepCounter writes [n, 1]; replay stores t as a scalar per transition
    if tuple(step.shape) != (n,):
        raise ValueError(f"{owner}: step_count has shape {list(step.shape)}; expected [n] or [n, 1]")
    if n > 1 and bool((step[1:] != step[:-1] + 1).any()):
        raise ValueError(f"{owner}: step_count is not consecutive, so td holds more than one episode; split it first")
    out = td.select(*needed).clone(recurse=False)
    out.set(keys.STEP_COUNT, step.to(torch.int64))
    out.set(keys.TASK_ID, torch.full((n,), task_id, dtype=torch.int64, device=td.device))
    out.set(keys.EPISODE, torch.full((n,), episode_id, dtype=torch.int64, device=td.device))
    return out


def batch_to_replay(td: TensorDictBase, first_episode_id: int) -> TensorDict:
    """A flat collector batch [n] of consecutive whole or cut episodes (each starting at
    ``step_count`` 0, or at row 0) -> the stored layout [n], episode ids counting up from
    ``first_episode_id`` in batch order, each episode keeping the ``task_id`` it was tagged with.
    One ``MultiTaskReplay.extend`` call then writes the whole batch."""
    owner = "batch_to_replay"
    check_int(owner, "first_episode_id", first_episode_id, 0)
    if not isinstance(td, TensorDictBase) or td.batch_dims != 1 or td.shape[0] == 0:
        raise ValueError(f"{owner}: expected a TensorDict with batch shape [n], n >= 1, got "
                         f"{getattr(td, 'batch_size', td)}")
    needed = [k for k in keys.STORED_KEYS if k != keys.EPISODE]
    present = set(td.keys(include_nested=True, leaves_only=True))
    missing = [key_name(k) for k in needed if k not in present]
    if missing:
        raise ValueError(f"{owner}: missing keys {missing}")
    step = td.get(keys.STEP_COUNT).reshape(td.shape[0], -1)[:, 0].to(torch.int64)
    starts = step == 0
    starts[0] = True
    out = td.select(*needed).clone(recurse=False)
    out.set(keys.STEP_COUNT, step)
    out.set(keys.TASK_ID, td.get(keys.TASK_ID).reshape(-1).to(torch.int64))
    out.set(keys.EPISODE, first_episode_id - 1 + starts.to(torch.int64).cumsum(0))
    return out
