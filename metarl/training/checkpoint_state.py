"""Everything a MetaTrainModule checkpoint carries besides weights and optimizer states, in a form
``torch.load(weights_only=True)`` accepts (LightningCLI reads ``--ckpt_path`` that way, so e.g. the
raw numpy RNG tuple, which holds an ndarray, travels as tensors instead).

A resumed run must continue exactly as if it had never stopped (docs/reliability.md): the replay,
the counters, every generator, and where the run is inside the current meta-training epoch.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from metarl.training.meta_train import MetaTrainModule

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


class EpochPosition:
    """Where the run is inside the current epoch (one evaluation period of meta-training).

    Lightning prefetches one batch, so the stream decides whether iteration k+1 happens before
    iteration k runs. A checkpoint taken after iteration k (mid-epoch) must therefore carry that
    decision and the epoch's first env step: re-deciding after a resume, with the env steps of
    iteration k, could end the epoch one iteration early and shift every later evaluation.
    """

    def __init__(self) -> None:
        self.start_env_steps = 0
        self.exhausted = False  # the stream has ended this epoch: validation and its checkpoint follow
        self._resume: int | None = None  # the epoch's start, when resuming in the middle of it
        self._carry_decision = False

    def start(self, env_steps: int) -> None:
        """A new iterator over the epoch's iterations: a new epoch, or the rest of a resumed one."""
        if self._resume is not None:
            self.start_env_steps, self._resume, self._carry_decision = self._resume, None, True
        else:
            self.start_env_steps = env_steps
        self.exhausted = False

    def decide(self, keep_going: Callable[[], bool]) -> bool:
        if self._carry_decision:
            # The decision made before the checkpoint: the iteration after it was to run.
            self._carry_decision = False
            return True
        go = keep_going()
        self.exhausted = not go
        return go

    def state_dict(self) -> dict[str, Any]:
        return {"start_env_steps": self.start_env_steps, "exhausted": self.exhausted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # An exhausted epoch was saved after its validation: the resumed run starts a new epoch.
        self._resume = None if state["exhausted"] else int(state["start_env_steps"])


def training_state(module: MetaTrainModule) -> dict[str, Any]:
    """The ``checkpoint["metarl"]`` section."""
    return {
        "version": STATE_VERSION,
        "family": module.family.name,
        "counters": {
            "env_steps": module.env_steps, "num_updates": module.num_updates,
            "num_episodes": module.num_episodes, "iteration": module.iteration,
        },
        "epoch": module.epoch_position.state_dict(),
        "replay": module.replay.state_dict(),
        "rollouts": module.rollouts.state_dict(),
        "eval_rollouts": module.eval_rollouts.state_dict(),
        "policy": module.policy.state_dict(),
        "sample_gen": module.sample_gen.get_state(),
        "noise_gen": module.noise_gen.get_state(),
        "rng": global_rng_state(),
    }


def load_training_state(module: MetaTrainModule, state: dict[str, Any] | None) -> None:
    """Restore :func:`training_state`; the global RNGs are only stored in ``module._pending_rng``:
    they are set at the first training step, because building dataloader iterators in between
    would consume draws (stack notes §4)."""
    if state is None:
        raise ValueError("checkpoint has no 'metarl' section: it was not written by metarl's MetaTrainModule")
    if state.get("version", STATE_VERSION) != STATE_VERSION:
        raise ValueError(f"checkpoint state version {state.get('version')} is not {STATE_VERSION}: "
                         "it was written by an incompatible metarl")
    if state["family"] != module.family.name:
        raise ValueError(
            f"checkpoint is from task family {state['family']!r}, but the config asks for {module.family.name!r}"
        )
    c = state["counters"]
    module.env_steps, module.num_updates = int(c["env_steps"]), int(c["num_updates"])
    module.num_episodes, module.iteration = int(c["num_episodes"]), int(c["iteration"])
    if "epoch" in state:
        module.epoch_position.load_state_dict(state["epoch"])
    module.replay.load_state_dict(state["replay"])
    module.rollouts.load_state_dict(state["rollouts"])
    module.eval_rollouts.load_state_dict(state["eval_rollouts"])
    module.policy.load_state_dict(state["policy"])
    module.sample_gen.set_state(state["sample_gen"])
    module.noise_gen.set_state(state["noise_gen"])
    module._pending_rng = state["rng"]
