"""Many tasks stepped at once for the on-policy methods (RL², MAML-PG): env i of one gymnasium
``SyncVectorEnv`` runs task i, so TorchRL's per-step cost (~0.5 ms, BENCHMARKS.md) is paid once per
vector step instead of once per env step.

The vector env uses gymnasium's ``AutoresetMode.DISABLED`` (TorchRL's preferred mode): an env whose
episode ended is reset by TorchRL alone, through ``reset_mask``, so the true final observation of an
episode is kept under ``next`` and no step is spent on gymnasium's own reset step.

Which task runs where is this module's concern (gymnasium side); the TorchRL env and collector around
it are built in ``collector.py``, the one place that names TorchRL's env and collector classes.

Task ids are not written by an env transform: a task changes only at a reset and every collection
starts from one, so each row of a batch has one task and ``BatchedRollouts`` tags it after
collecting, at no per-step cost (each TorchRL transform costs ~0.1 ms per step; benchmarks/
batched_collection.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from tensordict import TensorDictBase

from metarl import keys

__all__ = ["TaskBatch", "UniformPolicy", "sub_env_seeds"]


def sub_env_seeds(seed: int, n_envs: int) -> list[int]:
    """Independent seeds for the n sub-envs. gymnasium's ``reset(seed=s)`` would give env i the seed
    s + i, so batches seeded 0 and 1 would share n - 1 streams; a SeedSequence spawns unrelated ones."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n_envs)]


class TaskBatch:
    """A ``SyncVectorEnv`` of ``len(tasks)`` envs of one family, env i running ``tasks[i]``.

    ``set_tasks`` assigns new tasks; each env takes its task at its next reset (the family envs'
    ``set_task`` contract), so call it between collections, which start from a reset.
    ``wrap`` wraps every sub-env (e.g. RL²'s ``TrialWrapper``). The sub-envs' generators are seeded
    once here and continue their streams; ``state_dict`` holds them, and the tasks, for exact resume.
    """

    def __init__(
        self,
        family: Any,
        tasks: Sequence[Any],
        seed: int,
        evaluation: bool = False,
        wrap: Callable[[gym.Env], gym.Env] | None = None,
    ) -> None:
        if len(tasks) < 1:
            raise ValueError("TaskBatch: tasks must not be empty")
        self.family = family
        self.tasks = list(tasks)

        def factory(task: Any) -> Callable[[], gym.Env]:
            def make() -> gym.Env:
                env = family.make_env(task, evaluation=evaluation)
                return env if wrap is None else wrap(env)

            return make

        self.vector = SyncVectorEnv([factory(t) for t in self.tasks], autoreset_mode=AutoresetMode.DISABLED)
        self.task_ids = torch.tensor([int(t.index) for t in self.tasks], dtype=torch.int64)
        self.vector.reset(seed=sub_env_seeds(seed, self.n_envs))
        self.vector.action_space.seed(seed)

    @property
    def n_envs(self) -> int:
        return len(self.tasks)

    @property
    def sub_envs(self) -> list[gym.Env]:
        return list(self.vector.envs)

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Env i runs ``tasks[i]`` from its next reset on; the number of envs is fixed."""
        if len(tasks) != self.n_envs:
            raise ValueError(f"TaskBatch.set_tasks: got {len(tasks)} tasks for {self.n_envs} envs")
        for env, task in zip(self.vector.envs, tasks, strict=True):
            env.unwrapped.set_task(task)  # type: ignore[attr-defined]
        self.tasks = list(tasks)
        self.task_ids.copy_(torch.tensor([int(t.index) for t in self.tasks], dtype=torch.int64))

    def state_dict(self) -> dict[str, Any]:
        return {
            "tasks": [(t.split, int(t.index)) for t in self.tasks],
            "env_rngs": [env.unwrapped.np_random.bit_generator.state for env in self.vector.envs],
        }

    def load_state_dict(self, state: dict[str, Any], split_tasks: dict[str, Sequence[Any]]) -> None:
        """Restore the tasks (looked up by split name and index in ``split_tasks``) and the env RNGs."""
        rngs = state["env_rngs"]
        if len(rngs) != self.n_envs:
            raise ValueError(f"TaskBatch.load_state_dict: state has {len(rngs)} envs, this batch {self.n_envs}")
        self.set_tasks([split_tasks[split][index] for split, index in state["tasks"]])
        for env, rng in zip(self.vector.envs, rngs, strict=True):
            env.unwrapped.np_random.bit_generator.state = rng

    def close(self) -> None:
        self.vector.close()


class UniformPolicy:
    """Uniform random actions in the box ``[low, high]`` from its own generator: reproducible and
    checkpointable, never the global RNG. Cheaper per step than TorchRL's ``RandomPolicy``, whose
    ``Composite.rand`` builds a TensorDict (and looks up an import) at every call."""

    def __init__(self, low: torch.Tensor, high: torch.Tensor, generator: torch.Generator) -> None:
        if low.shape != high.shape or not bool((high > low).all()):
            raise ValueError(f"UniformPolicy: need low < high of one shape, got {low.tolist()} and {high.tolist()}")
        self.low, self.span = low.float(), (high - low).float()
        self.generator = generator

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        shape = (*tensordict.batch_size, *self.low.shape)
        u = torch.rand(shape, generator=self.generator)
        tensordict.set(keys.ACTION, self.low + self.span * u)
        return tensordict
