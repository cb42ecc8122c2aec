"""Settings that are each valid but contradict each other, or cannot train (docs/reliability.md,
"Bad input"). Each is settled as an error (exit code 2, before anything is written) or as a
one-line warning that says what metarl does instead.

They read the built module through attributes every method keeps (``family``, ``eval_cfg``,
``total_env_steps``) and, where a method has them, its replay and collection settings
(``replay``, ``batch_size``, ``collect_cfg``); a check whose attributes a method lacks is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from metarl.cli_errors import ConfigError

INT64_MAX = 2**63 - 1


class ContradictionError(ConfigError):
    """Settings that cannot train together; the message names them."""


def _walk(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        items = node.items()
    elif hasattr(node, "__dict__") and type(node).__name__ == "Namespace":
        items = vars(node).items()
    elif isinstance(node, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        yield prefix, node
        return
    for key, value in items:
        if str(key).startswith("_"):
            continue
        yield from _walk(value, f"{prefix}.{key}" if prefix else str(key))


def check_numbers(model_cfg: Any, prefix: str = "model") -> None:
    """Integers that no tensor can hold and non-finite floats, named by their key."""
    for key, value in _walk(model_cfg, prefix):
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and abs(value) > INT64_MAX:
            raise ContradictionError(f"{key}: {value} is too large (at most {INT64_MAX:,}, a 64-bit integer)")
        if isinstance(value, float) and not math.isfinite(value):
            raise ContradictionError(f"{key}: {value} is not a finite number")


def check_module(module: Any) -> list[str]:
    """Errors raise :class:`ContradictionError`; returns the warnings (one line each)."""
    warnings: list[str] = []
    family = getattr(module, "family", None)
    eval_cfg = getattr(module, "eval_cfg", None)
    total = getattr(module, "total_env_steps", None)

    eval_tasks = getattr(family, "eval_tasks", None)
    asked = getattr(eval_cfg, "num_tasks", None)
    if eval_tasks is not None and isinstance(asked, int) and asked > len(eval_tasks):
        warnings.append(f"eval.num_tasks={asked}, but task family {family.name} has {len(eval_tasks)} eval tasks: "
                        f"evaluating on all {len(eval_tasks)}")
    every = getattr(eval_cfg, "every_env_steps", None)
    if isinstance(every, int) and isinstance(total, int) and every > total:
        warnings.append(f"eval.every_env_steps={every:,} is more than the budget total_env_steps={total:,}: the "
                        "only evaluation is the one at the end of the run")

    collect = getattr(module, "collect_cfg", None)
    replay = getattr(module, "replay", None)
    batch = getattr(module, "batch_size", None)
    if replay is not None and collect is not None and isinstance(batch, int):
        capacity = int(getattr(replay, "n_tasks", 0)) * int(getattr(replay, "capacity_per_task", 0))
        asked_size = getattr(collect, "replay_size", None)
        if isinstance(asked_size, int) and capacity > asked_size:
            warnings.append(f"collect.replay_size={asked_size:,} is less than one episode per train task: the replay "
                            f"holds {capacity:,} transitions instead (one {family.max_episode_steps}-step episode "
                            f"for each of {replay.n_tasks} tasks)" if family is not None else
                            f"collect.replay_size={asked_size:,} was raised to {capacity:,}")
        if capacity < batch:
            raise ContradictionError(
                f"batch_size={batch:,} is larger than the whole replay ({capacity:,} transitions, "
                f"collect.replay_size={asked_size:,}): every batch would repeat transitions; make the replay larger "
                "or the batch smaller"
            )
        full = getattr(collect, "min_replay_for_full_updates", None)
        if isinstance(full, int) and full > capacity:
            raise ContradictionError(
                f"collect.min_replay_for_full_updates={full:,} is larger than the replay ({capacity:,} transitions): "
                "full updates would never start; lower it or make collect.replay_size larger"
            )
        cold = getattr(collect, "cold_start_steps", None)
        if isinstance(cold, int) and isinstance(total, int) and cold >= total and \
                int(getattr(module, "env_steps", 0) or 0) < cold:
            raise ContradictionError(
                f"collect.cold_start_steps={cold:,} is not less than the budget total_env_steps={total:,}: the "
                "whole run would be random actions, with no training update"
            )
        adapt = getattr(module, "adapt_cfg", None)
        old_batch = getattr(adapt, "old_data_batch", None)
        if isinstance(old_batch, int) and old_batch > capacity:
            warnings.append(f"adapt.old_data_batch={old_batch:,} is larger than the replay ({capacity:,} "
                            "transitions): adaptation batches will repeat transitions")
    return warnings
