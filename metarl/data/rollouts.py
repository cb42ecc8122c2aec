"""Env, collectors and task schedule for one task split, as one checkpointable object.

Kept out of the LightningModule's module tree on purpose: TorchRL envs are nn.Modules, and
registering one would put its transforms into state_dicts and device moves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import torch
from tensordict import TensorDictBase

from metarl import keys
from metarl.data.batched import TaskBatch, UniformPolicy
from metarl.data.collector import (
    StepCounter,
    make_batched_collector,
    make_batched_env,
    make_collector,
    make_env,
    make_trial_env,
)
from metarl.data.policy import ActingPolicy
from metarl.data.tasks import TaskSampler


class Rollouts:
    """Runs the acting policy on the tasks of one split through a TorchRL collector."""

    def __init__(
        self,
        family: Any,
        tasks: list[Any],
        policy: ActingPolicy,
        history_len: int,
        seed: int,
        evaluation: bool = False,
    ) -> None:
        self.family = family
        self.tasks = tasks
        self.policy = policy
        self.sampler = TaskSampler(len(tasks), seed)
        self.env, self.schedule = make_env(family, tasks, self.sampler, history_len, seed, evaluation)
        self.max_episode_steps: int = family.max_episode_steps
        self._step_counter = next(t for t in self.env.transform if isinstance(t, StepCounter))
        self._iters: dict[int, Any] = {}

    def collect(self, frames: int, mode: str, episode_cap: int | None = None) -> TensorDictBase:
        """``frames`` env steps from a fresh reset; an episode that ends (or reaches ``episode_cap``
        steps) is followed by a new one on a newly drawn task. Returns the flat [frames] batch."""
        self.policy.set_mode(mode)
        self._step_counter.max_steps = min(episode_cap or self.max_episode_steps, self.max_episode_steps)
        if frames not in self._iters:
            # Building a collector resets the env and runs the policy once (to shape its buffers);
            # that must not consume task draws, env or noise randomness, or a resumed run would diverge.
            state, policy_state = self.state_dict(), self.policy.state_dict()
            self._iters[frames] = iter(make_collector(self.env, self.policy, frames))
            self.load_state_dict(state)
            self.policy.load_state_dict(policy_state)
        batch = next(self._iters[frames])
        if not self.schedule.stepped:
            # The batch's last step ended an episode and the collector reset the env at once; the next
            # batch resets it again before stepping, so that reset's task draw is handed back (else
            # each cold-start round would skip one task of the cycle). Done here, before any
            # checkpoint can be taken, so the sampler's state alone resumes exactly.
            self.sampler.give_back()
        return batch

    def run_episode(self, task_id: int, mode: str = "deterministic") -> TensorDictBase:
        """One whole episode on task ``task_id`` (up to the time limit, or the first termination)."""
        self.sampler.fixed = task_id
        try:
            batch = self.collect(self.max_episode_steps, mode)
        finally:
            self.sampler.fixed = None
        return split_episodes(batch)[0]

    def state_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler.state_dict(),
            "env_rng": self.schedule.unwrapped.np_random.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.schedule.unwrapped.np_random.bit_generator.state = state["env_rng"]


class BatchedRollouts:
    """On-policy collection over many tasks at once (RL², MAML-PG): env i runs ``tasks[i]`` and every
    ``collect()`` returns a fresh ``[n_envs, horizon]`` batch, each row starting from a reset, tagged
    with its task's index under ``task_id``.

    With ``trial_episodes`` = N every row runs RL² trials of N episodes (``make_trial_env``: ``is_init``
    only at a trial's start, ``("next", "inner_episode")`` per step); a horizon of k N T steps is k trials.
    ``max_steps`` truncates every episode at that many steps (``make_batched_env``).

    ``policy`` is a TensorDict callable (a TorchRL actor); ``None`` acts uniformly at random from a
    generator seeded with ``seed``. The policy object is bound to the collector, so MAML swaps adapted
    parameters *into* it (``TensorDict.to_module``) rather than passing another module. The collector is
    built here, once; building it resets the envs and may run the policy, so load a checkpoint's
    ``state_dict`` after construction.
    """

    def __init__(
        self,
        family: Any,
        tasks: Sequence[Any],
        horizon: int,
        seed: int,
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        evaluation: bool = False,
        wrap: Callable[[gym.Env], gym.Env] | None = None,
        track_init: bool = False,
        extra_transforms: Sequence[Any] = (),
        trial_episodes: int | None = None,
        trial_boundary: str = "paper",
        max_steps: int | None = None,
    ) -> None:
        self.family = family
        self.horizon = horizon
        self.task_batch: TaskBatch
        if trial_episodes is not None:
            if wrap is not None:
                raise ValueError("BatchedRollouts: pass either wrap or trial_episodes, not both")
            self.env, self.task_batch = make_trial_env(family, tasks, trial_episodes, seed, trial_boundary, evaluation,
                                                  extra_transforms)
        else:
            self.env, self.task_batch = make_batched_env(family, tasks, seed, evaluation, wrap, track_init,
                                                         extra_transforms, max_steps=max_steps)
        spec = self.env.action_spec
        self.random_policy = UniformPolicy(spec.space.low[0], spec.space.high[0], torch.Generator().manual_seed(seed))
        self.policy = self.random_policy if policy is None else policy
        self._iter = iter(make_batched_collector(self.env, self.policy, horizon))

    @property
    def n_envs(self) -> int:
        return self.task_batch.n_envs

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Env i runs ``tasks[i]`` from the next ``collect()`` on."""
        self.task_batch.set_tasks(tasks)

    def collect(self) -> TensorDictBase:
        """``[n_envs, horizon]`` steps from a fresh reset of every env, with ``task_id`` per step."""
        data = next(self._iter)
        # A task changes only at a reset, and this batch started from one: row i ran tasks[i] throughout.
        data.set(keys.TASK_ID, self.task_batch.task_ids[:, None].expand(data.batch_size).clone())
        return data

    def state_dict(self) -> dict[str, Any]:
        return {"batch": self.task_batch.state_dict(), "random_policy": self.random_policy.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], split_tasks: dict[str, Sequence[Any]]) -> None:
        self.task_batch.load_state_dict(state["batch"], split_tasks)
        self.random_policy.generator.set_state(state["random_policy"])

    def close(self) -> None:
        self.env.close()


def split_episodes(batch: TensorDictBase) -> list[TensorDictBase]:
    """Cut a flat collector batch at episode starts (step_count == 0)."""
    step = batch[keys.STEP_COUNT].reshape(-1)
    starts = torch.nonzero(step == 0).reshape(-1).tolist()
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    ends = [*starts[1:], batch.shape[0]]
    return [batch[s:e] for s, e in zip(starts, ends, strict=True)]


def episode_returns(batch: TensorDictBase) -> list[tuple[int, float, int]]:
    """(task_id, return, length) of every episode in a batch; the last one may be cut short."""
    out = []
    for ep in split_episodes(batch):
        out.append((int(ep[keys.TASK_ID][0]), float(ep[keys.REWARD].sum()), int(ep.shape[0])))
    return out
