"""The MQL cold start: uniform random actions, short episodes cycling through the train tasks, many
episodes stepped at once through the on-policy methods' batched env (``BatchedRollouts``).

One TorchRL step costs ~0.5 ms whatever the env (BENCHMARKS.md, "Cold-start collection"), more than a
MuJoCo step; stepping one env per TorchRL step ran the cold start at ~0.1x the raw gymnasium rate.
Random actions do not depend on the observation, so the cold start's episodes can run side by side:
row i of one ``[n_envs, cap]`` batch is one episode. What the replay receives is the single-env
path's data (``Rollouts.collect(frames, "random", episode_cap)`` in rounds; tests/test_cold_start_batched.py):

* the same episodes: lengths from the same rounds (``round_lengths``), tasks from the same cycle
  (the ``TaskSampler`` in "cycle" mode), truncated at the cap by the same ``StepCounter``;
* the same actions: episode-major draws from the same generator (``uniform_actions``), so the
  generator also leaves the cold start in the same state;
* the same keys, converted by the same ``batch_to_replay``.

What differs (docs/fidelity.md): each episode's reset noise comes from a generator seeded by
(seed, episode index) rather than from one env's stream, so the data do not depend on how many
episodes run together (``n_envs``) and a resumed run needs no env state; an episode that terminates
early is followed in its row by another episode of the same task (none of MQL's families terminates
but on a non-finite state); and one iteration collects several rounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from metarl import keys
from metarl.data.policy import uniform_actions
from metarl.data.rollouts import BatchedRollouts
from metarl.data.tasks import TaskSampler

#: Mixed into the per-episode reset seeds, so they differ from every other use of the run's seed.
_SEED_DOMAIN = 0xC01D


def round_lengths(frames: int, cap: int) -> list[int]:
    """The episodes of one single-env cold-start round of ``frames`` steps cut at ``cap``."""
    return [cap] * (frames // cap) + ([frames % cap] if frames % cap else [])


def cold_start_plan(env_steps: int, budget: int, round_frames: int, cap: int, stop: int, max_episodes: int) -> list[int]:
    """Episode lengths of the cold-start iteration that starts at ``env_steps``.

    The single-env cold start ran rounds of ``min(budget - s, round_frames)`` steps (one per
    iteration), cut into episodes of ``cap``. An iteration now runs whole rounds, from ``env_steps``
    up to ``stop`` (the next evaluation; a round that starts before it is run whole, as before), at
    most as many episodes as spread those left before ``stop`` evenly over iterations of at most
    ``max_episodes`` episodes (but at least one round). A function of ``env_steps`` alone, so a resumed
    run plans what the stopped one had planned.
    """
    rounds: list[list[int]] = []
    s = env_steps
    while s < min(budget, stop) or not rounds:
        frames = min(budget - s, round_frames - s % round_frames)
        rounds.append(round_lengths(frames, cap))
        s += frames
    total = sum(len(r) for r in rounds)
    target = math.ceil(total / math.ceil(total / max_episodes))  # episodes per iteration, spread evenly
    plan = rounds[0]
    for r in rounds[1:]:
        if len(plan) + len(r) > target:
            break
        plan = plan + r
    return plan


class PlannedActions:
    """The batched collector's policy: step t of row i takes ``actions[i, t]`` (drawn before the batch)."""

    def __init__(self, n_envs: int, horizon: int, act_dim: int) -> None:
        self.actions = torch.zeros(n_envs, horizon, act_dim)
        self.t = 0

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        td.set(keys.ACTION, self.actions[:, min(self.t, self.actions.shape[1] - 1)].clone())
        self.t += 1
        return td


class ColdStartRollouts:
    """Runs the cold start's episodes ``n_envs`` at a time (``BatchedRollouts`` with a ``StepCounter``
    cap). ``sampler`` (in "cycle" mode) gives each episode its task and ``generator`` its actions,
    both the single-env path's and both checkpointed by their owners; the envs hold no state that
    outlives a batch. Built lazily, at the first batch; ``close`` frees the envs."""

    def __init__(self, family: Any, tasks: Sequence[Any], sampler: TaskSampler, generator: torch.Generator,
                 seed: int, cap: int) -> None:
        self.family, self.tasks, self.sampler, self.generator = family, list(tasks), sampler, generator
        self.seed, self.cap = seed, cap
        self.rollouts: BatchedRollouts | None = None
        self.policy: PlannedActions | None = None

    def _envs(self, n: int) -> tuple[BatchedRollouts, PlannedActions]:
        if self.rollouts is None or self.policy is None or self.rollouts.n_envs < n:
            self.close()
            self.policy = PlannedActions(n, self.cap, self.family.act_dim)
            self.rollouts = BatchedRollouts(self.family, self.tasks[:1] * n, self.cap, self.seed, self.policy,
                                            max_steps=self.cap)
        return self.rollouts, self.policy

    def collect(self, lengths: Sequence[int], first_episode: int) -> TensorDictBase:
        """The episodes of ``lengths`` (each <= cap) on the next tasks of the cycle, in order, as one flat
        collector batch [sum(lengths)] (row-major: episode by episode). ``first_episode`` numbers the
        episodes for their reset seeds (the run's episode counter)."""
        k = len(lengths)
        if k == 0 or min(lengths) < 1 or max(lengths) > self.cap:
            raise ValueError(f"ColdStartRollouts.collect: need 1 <= length <= {self.cap}, got {list(lengths)}")
        rollouts, policy = self._envs(k)
        n = rollouts.n_envs
        task_ids = [self.sampler() for _ in range(k)]
        # Rows past k (a smaller last batch) run their previous task with zero actions and are dropped.
        rollouts.set_tasks([self.tasks[t] for t in task_ids] + rollouts.task_batch.tasks[k:])
        for i, env in enumerate(rollouts.task_batch.sub_envs[:k]):
            env.unwrapped.np_random = np.random.default_rng([_SEED_DOMAIN, self.seed, first_episode + i])
        steps = torch.arange(self.cap)
        keep = torch.zeros(n, self.cap, dtype=torch.bool)
        keep[:k] = steps[None, :] < torch.as_tensor(list(lengths))[:, None]
        policy.actions.zero_()
        policy.actions[keep] = uniform_actions((sum(lengths), self.family.act_dim), self.generator)
        policy.t = 0
        data = rollouts.collect()  # [n, cap], each row from a reset
        if policy.t != self.cap:
            raise RuntimeError(f"ColdStartRollouts: the collector ran the policy {policy.t} times, expected {self.cap}")
        return data[keep]

    def close(self) -> None:
        if self.rollouts is not None:
            self.rollouts.close()
        self.rollouts = self.policy = None
