"""The one place that names TorchRL's env and collector classes (they are renamed between releases).

Collection is in-process (``Collector``): the policy, the envs and the replay live in the trainer
process, so they are checkpointed together and need no weight sync. Every collector iteration
starts from a reset, so no episode is in flight between iterations and a checkpoint taken there
resumes exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torchrl.collectors import Collector
from torchrl.envs import Compose, DoubleToFloat, GymWrapper, StepCounter, TransformedEnv

__all__ = ["StepCounter", "make_collector", "make_env"]

from metarl.data.history import HistoryTransform
from metarl.data.tasks import TaskIdTransform, TaskScheduleWrapper


def make_env(
    family: Any,
    tasks: Sequence[Any],
    next_task: Callable[[], int],
    history_len: int,
    seed: int,
    evaluation: bool = False,
) -> tuple[TransformedEnv, TaskScheduleWrapper]:
    """A TorchRL env over ``family.make_env`` whose every episode runs the task ``next_task()`` picks.

    Returns the env and the gymnasium wrapper that holds the task schedule (and the env's RNG).
    """
    schedule = TaskScheduleWrapper(family.make_env(tasks[0], evaluation=evaluation), tasks, next_task)
    schedule.reset(seed=seed)  # seeds the env's np_random once; later resets continue its stream
    env = TransformedEnv(
        GymWrapper(schedule),
        Compose(
            DoubleToFloat(),  # MuJoCo observes float64; the nets are float32
            # Also cuts episodes short when asked (the MQL cold start), by truncation.
            StepCounter(max_steps=family.max_episode_steps),
            TaskIdTransform(schedule),
            HistoryTransform(history_len, family.obs_dim, family.act_dim),
        ),
    )
    return env, schedule


def make_collector(env: TransformedEnv, policy: Callable[..., Any], frames_per_batch: int) -> Collector:
    """An in-process collector that resets at every iteration (whole episodes, exact resume)."""
    return Collector(
        env,
        policy,
        frames_per_batch=frames_per_batch,
        total_frames=-1,
        reset_at_each_iter=True,
        # History is a transform of the env, not of the policy: nothing to register.
        auto_register_policy_transforms=False,
    )
