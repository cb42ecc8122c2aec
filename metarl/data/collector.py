"""The one place that names TorchRL's env and collector classes (they are renamed between releases).

Collection is in-process (``Collector``): the policy, the envs and the replay live in the trainer
process, so they are checkpointed together and need no weight sync. Every collector iteration
starts from a reset, so no episode is in flight between iterations and a checkpoint taken there
resumes exactly.

Two kinds of env: ``make_env`` (one env whose episodes follow a task schedule: the off-policy
methods) and ``make_batched_env`` (n envs stepped as one, env i on task i: the on-policy methods,
whose batch is ``[n_envs, horizon]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import torch
from torchrl.collectors import Collector
from torchrl.data import Unbounded
from torchrl.envs import Compose, DoubleToFloat, GymWrapper, InitTracker, StepCounter, Transform, TransformedEnv
from torchrl.envs.libs.gym import default_info_dict_reader

__all__ = ["StepCounter", "make_batched_collector", "make_batched_env", "make_collector", "make_env", "make_trial_env"]

from metarl.data.batched import TaskBatch
from metarl.data.history import HistoryTransform
from metarl.data.tasks import TaskIdTransform, TaskScheduleWrapper
from metarl.data.trial import TrialWrapper


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


def make_batched_env(
    family: Any,
    tasks: Sequence[Any],
    seed: int,
    evaluation: bool = False,
    wrap: Callable[[gym.Env], gym.Env] | None = None,
    track_init: bool = False,
    extra_transforms: Sequence[Transform] = (),
    info_keys: Sequence[str] = (),
    max_steps: int | None = None,
) -> tuple[TransformedEnv, TaskBatch]:
    """A TorchRL env of batch size ``[len(tasks)]`` whose env i runs ``tasks[i]`` (a gymnasium
    ``SyncVectorEnv`` under one ``GymWrapper``): one TorchRL step moves every env.

    Keys per env: the family's observation (float32) and ``step_count`` (steps since the env's last
    reset); with ``track_init``, ``is_init`` too (``InitTracker``: true on the first step after a reset,
    where a TorchRL ``GRUModule`` resets its hidden state; off by default, as each transform costs a
    step ~0.1 ms). ``wrap`` wraps each sub-env, e.g. RL²'s ``TrialWrapper``, whose env then resets
    (and sets ``is_init``) only at a trial's start. ``extra_transforms`` come last (a recurrent policy's
    ``make_tensordict_primer()``). ``info_keys`` are int64 entries of the sub-envs' ``info`` read into
    the data after each step (under ``next``; e.g. the trial's ``inner_episode``). ``max_steps`` cuts
    episodes by truncation at that many steps, as ``make_env``'s ``StepCounter`` does (the MQL cold
    start). Returns the env and the ``TaskBatch`` (tasks, RNGs).
    """
    batch = TaskBatch(family, tasks, seed, evaluation, wrap)
    transforms = [
        DoubleToFloat(),  # MuJoCo observes float64; the nets are float32
        # The episodes' own TimeLimit truncates; this counts, and truncates earlier with max_steps.
        StepCounter(max_steps=max_steps),
    ]
    if track_init:
        transforms.append(InitTracker())
    transforms.extend(extra_transforms)
    base = GymWrapper(batch.vector)
    if info_keys:
        specs = [Unbounded(shape=(batch.n_envs,), dtype=torch.int64) for _ in info_keys]
        base.set_info_dict_reader(default_info_dict_reader(list(info_keys), spec=specs))
    return TransformedEnv(base, Compose(*transforms)), batch


def make_trial_env(
    family: Any,
    tasks: Sequence[Any],
    n_episodes: int,
    seed: int,
    boundary: str = "paper",
    evaluation: bool = False,
    extra_transforms: Sequence[Transform] = (),
) -> tuple[TransformedEnv, TaskBatch]:
    """RL²'s batched env: env i runs trials of ``n_episodes`` episodes of ``tasks[i]`` (``TrialWrapper``),
    with ``is_init`` true only at a trial's start and ``("next", "inner_episode")`` per step. Pass the
    recurrent policy's ``make_tensordict_primer()`` in ``extra_transforms``."""
    wrap = partial(TrialWrapper, n_episodes=n_episodes, boundary=boundary)
    return make_batched_env(family, tasks, seed, evaluation, wrap, track_init=True,
                            extra_transforms=extra_transforms, info_keys=("inner_episode",))


def make_batched_collector(env: TransformedEnv, policy: Callable[..., Any], horizon: int) -> Collector:
    """An in-process collector of ``frames_per_batch = n_envs x horizon`` that resets every env at each
    iteration: each batch is ``[n_envs, horizon]``, every row starting a fresh episode (or trial)."""
    if horizon < 1:
        raise ValueError(f"make_batched_collector: horizon must be >= 1, got {horizon}")
    return Collector(
        env,
        policy,
        frames_per_batch=env.batch_size.numel() * horizon,
        total_frames=-1,
        reset_at_each_iter=True,
        # Rows are envs and step_count / done delimit their episodes: TorchRL's trajectory ids would be
        # per-step bookkeeping nobody reads.
        track_traj_ids=False,
        # A recurrent policy's primer belongs to the env the method builds, registered there explicitly
        # (pytorch/rl #4220: a silently missing primer zeroes the hidden state).
        auto_register_policy_transforms=False,
    )
