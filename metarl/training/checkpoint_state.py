"""Everything a metarl checkpoint carries besides weights and optimizer states, in a form
``torch.load(weights_only=True)`` accepts (LightningCLI reads ``--ckpt_path`` that way, so e.g. the
raw numpy RNG tuple, which holds an ndarray, travels as tensors instead).

A resumed run must continue exactly as if it had never stopped (docs/reliability.md): the counters
and the global generators are written here for every method; what is the method's own (its replay
buffers, envs, generators) comes from its ``method_state()``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

#: Bumped when the layout below changes incompatibly; a checkpoint of another version is refused.
STATE_VERSION = 1


def global_rng_state() -> dict[str, Any]:
    name, key_array, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name, "keys": torch.from_numpy(key_array.astype(np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


#: What an older checkpoint named the method; they all hold MQL.
LEGACY_METHOD = "mql"


def training_state(method: str, family: str, counters: dict[str, int], method_state: dict[str, Any]) -> dict[str, Any]:
    """The ``checkpoint["metarl"]`` section: who wrote it, the counters, the method's own state and
    the global generators."""
    return {"version": STATE_VERSION, "method": method, "family": family, "counters": dict(counters),
            **method_state, "rng": global_rng_state()}


def check_training_state(state: dict[str, Any] | None, method: str, family: str) -> dict[str, Any]:
    """The section of :func:`training_state`, after checking it fits a run of ``method`` on ``family``."""
    if state is None:
        raise ValueError("checkpoint has no 'metarl' section: it was not written by a metarl MetaTrainModule")
    if state.get("version", STATE_VERSION) != STATE_VERSION:
        raise ValueError(f"checkpoint state version {state.get('version')} is not {STATE_VERSION}: "
                         "it was written by an incompatible metarl")
    saved_method = state.get("method", LEGACY_METHOD)
    if saved_method != method:
        raise ValueError(f"checkpoint holds a {saved_method} run, but the config asks for {method}")
    if state["family"] != family:
        raise ValueError(f"checkpoint is from task family {state['family']!r}, but the config asks for {family!r}")
    return state


def mark_evaluation_pending(checkpoint: dict[str, Any]) -> None:
    """Make a checkpoint written before an evaluation read as written during its first task.

    Lightning restarts such a checkpoint by running the validation again, from its first task, before
    any training (its "restarted mid-evaluation" stage); the state is the one before the evaluation,
    so the rerun logs what the interrupted one would have. Without the mark, Lightning takes the
    checkpoint for one saved after the validation and skips it.
    """
    fit_loop = checkpoint.get("loops", {}).get("fit_loop", {})
    progress = fit_loop.get("epoch_loop.val_loop.batch_progress")
    if progress is None:
        raise RuntimeError("this Lightning version's checkpoints have no validation progress to mark")
    for counts in (progress["total"], progress["current"]):
        counts.update(ready=1, started=1, processed=0, completed=0)
    progress["is_last_batch"] = False


def evaluation_pending(checkpoint: dict[str, Any]) -> bool:
    """Whether a checkpoint was written before an evaluation (:func:`mark_evaluation_pending`)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.val_loop.batch_progress")
    return bool(progress) and progress["total"]["processed"] < progress["total"]["started"]
