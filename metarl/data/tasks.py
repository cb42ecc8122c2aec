"""Which task each episode runs: a seeded, checkpointable sampler and the env hooks that apply it.

The task of an episode is drawn when the env resets, so a collector that resets mid-batch (after an
early termination) still starts every episode on a freshly drawn task and tags every step with it.

A reset that starts no episode must not use up a draw: TorchRL's collector resets a finished env
right after the last step of a batch, and (``reset_at_each_iter``) again at the start of the next
batch, so the first of these two resets is never stepped. ``TaskScheduleWrapper.stepped`` tells
whether the env was stepped since its last reset, and ``TaskSampler.give_back()`` undoes the last
draw; ``Rollouts.collect`` calls it after every batch that ended on such a reset. Without it every
cold-start round skipped one slot of the task cycle (MQL's cold start visits the tasks in order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import torch
from tensordict import TensorDictBase
from torchrl.data import Unbounded
from torchrl.envs.transforms import Transform

from metarl import keys


class TaskSampler:
    """Draws train-task indices: uniformly with replacement (MQL main loop, §2.6 of the reference
    notes) or cycling in order (MQL cold start). All randomness comes from its own generator, whose
    state is checkpointed, so a resumed run draws the same tasks."""

    def __init__(self, n_tasks: int, seed: int) -> None:
        if n_tasks < 1:
            raise ValueError(f"TaskSampler: n_tasks must be >= 1, got {n_tasks}")
        self.n_tasks = n_tasks
        self.generator = torch.Generator().manual_seed(seed)
        self.mode = "uniform"
        self.fixed: int | None = None
        self._cursor = 0
        # What give_back() restores: the cursor and generator state before the last draw (None when
        # the last draw used nothing up: a fixed task, or a draw already given back).
        self._before_last: tuple[int, torch.Tensor | None] | None = None

    def __call__(self) -> int:
        if self.fixed is not None:
            self._before_last = None
            return self.fixed
        if self.mode == "cycle":
            self._before_last = (self._cursor, None)
            task = self._cursor % self.n_tasks
            self._cursor += 1
            return task
        self._before_last = (self._cursor, self.generator.get_state())
        return int(torch.randint(self.n_tasks, (1,), generator=self.generator).item())

    def give_back(self) -> None:
        """Undo the last draw (its reset started no episode): the next draw returns the same task
        and leaves the sampler where that draw alone would have. A no-op after a fixed task, or
        when called twice."""
        if self._before_last is None:
            return
        cursor, generator_state = self._before_last
        self._cursor = cursor
        if generator_state is not None:
            self.generator.set_state(generator_state)
        self._before_last = None

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "cursor": self._cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._cursor = int(state["cursor"])
        self._before_last = None


class TaskScheduleWrapper(gym.Wrapper):
    """Sets the task chosen by ``next_task()`` on the wrapped env at every reset."""

    def __init__(self, env: gym.Env, tasks: Sequence[Any], next_task: Callable[[], int]) -> None:
        super().__init__(env)
        self.tasks = list(tasks)
        self.next_task = next_task
        self.task_id = -1
        self.stepped = False  # stepped since the last reset: that reset started an episode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.task_id = self.next_task()
        self.stepped = False
        self.env.unwrapped.set_task(self.tasks[self.task_id])  # type: ignore[attr-defined]
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> Any:
        self.stepped = True
        return self.env.step(action)


class TaskIdTransform(Transform):
    """Writes the running episode's task index under ``task_id`` at reset and after every step."""

    def __init__(self, schedule: TaskScheduleWrapper) -> None:
        super().__init__(in_keys=[], out_keys=[keys.TASK_ID])
        self.schedule = schedule

    def _task_id(self, like: TensorDictBase) -> torch.Tensor:
        return torch.full(like.batch_size, self.schedule.task_id, dtype=torch.int64)

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        tensordict_reset.set(keys.TASK_ID, self._task_id(tensordict_reset))
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        next_tensordict.set(keys.TASK_ID, self._task_id(next_tensordict))
        return next_tensordict

    def transform_observation_spec(self, observation_spec):  # type: ignore[no-untyped-def]
        observation_spec[keys.TASK_ID] = Unbounded(
            shape=observation_spec.shape, dtype=torch.int64, device=observation_spec.device
        )
        return observation_spec
