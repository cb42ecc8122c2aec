"""The MQL cold start: uniform random actions, short episodes cycling through the train tasks, many
episodes stepped at once through the on-policy methods' batched env (``BatchedRollouts``).

One TorchRL step costs ~0.5 ms whatever the env (BENCHMARKS.md, "Cold-start collection"), more than a
MuJoCo step; stepping one env per TorchRL step ran the cold start at 0.06-0.26x the raw gymnasium rate.
Random actions do not depend on the observation, so the cold start's episodes can run side by side,
one per row of a ``[n_envs, cap]`` batch. What the replay receives is the single-env path's data
(``Rollouts.collect(frames, "random", episode_cap)`` in rounds; tests/test_cold_start_batched.py):

* the same episodes: the same rounds, filled in order with episodes on the tasks of the same cycle
  (the ``TaskSampler`` in "cycle" mode), cut at the cap by the same ``StepCounter``, at an early end
  or at the round's end;
* the same actions while every episode runs to the cap (the configs' cold starts, but on families
  that terminate early): draws from the same generator in the same order (``uniform_actions``);
* the same keys, converted by the same ``batch_to_replay``.

What differs (docs/fidelity.md): each episode's reset noise comes from a generator seeded by
(seed, episode index) rather than from one env's stream, and each episode takes ``cap`` action draws
whatever its length, so the data do not depend on how many episodes run together and a resumed run
needs no env state; one iteration collects several rounds.
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


def cold_start_plan(env_steps: int, budget: int, round_frames: int, cap: int, stop: int,
                    max_episodes: int) -> list[int]:
    """The rounds (their frames) of the cold-start iteration that starts at ``env_steps``.

    The single-env cold start ran one round of ``min(budget - s, round_frames)`` steps per iteration,
    cut into episodes of at most ``cap`` steps. An iteration now runs whole rounds, from ``env_steps``
    up to ``stop`` (the next evaluation; a round that starts before it is run whole, as before), at
    most as many full-length episodes' worth as spread those left before ``stop`` evenly over
    iterations of at most ``max_episodes`` episodes (but at least one round). A function of
    ``env_steps`` alone, so a resumed run plans what the stopped one had planned.
    """
    rounds: list[int] = []
    s = env_steps
    while s < min(budget, stop) or not rounds:
        rounds.append(min(budget - s, round_frames - s % round_frames))
        s += rounds[-1]
    total = sum(math.ceil(f / cap) for f in rounds)
    target = math.ceil(total / math.ceil(total / max_episodes))  # episodes per iteration, spread evenly
    plan, episodes = rounds[:1], math.ceil(rounds[0] / cap)
    for frames in rounds[1:]:
        episodes += math.ceil(frames / cap)
        if episodes > target:
            break
        plan.append(frames)
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
    """Runs the cold start's episodes many at a time (``BatchedRollouts`` with a ``StepCounter`` cap).

    Episode k of the cold start (k = the run's episode counter) is a function of k alone: its task is
    slot k of the cycle (``sampler`` in "cycle" mode), its reset noise comes from a generator seeded
    with (seed, k), and its actions are the ``cap`` draws of slot k from ``generator`` (the single-env
    path's; episode-major). A batch of envs runs the next episodes side by side, each row up to the
    cap or the episode's end; the rounds are then filled with them in order, as the single-env
    collector filled them one step at a time: an episode that ends early is followed by the next one
    and a round's end cuts its last episode. Episodes run but not needed are handed back (their task
    and action draws are undone) and run again by the next iteration, to the same data. The envs
    hold no state that outlives a call; ``sampler`` and ``generator`` are checkpointed by their
    owners. Built lazily, ``max_envs`` envs at most per batch; ``close`` frees them.
    """

    def __init__(self, family: Any, tasks: Sequence[Any], sampler: TaskSampler, generator: torch.Generator,
                 seed: int, cap: int, max_envs: int) -> None:
        self.family, self.tasks, self.sampler, self.generator = family, list(tasks), sampler, generator
        self.seed, self.cap, self.max_envs = seed, cap, max_envs
        # The envs: the first batch's size, and powers of two below it for the episodes that early ends
        # leave to run (a batch of a few episodes on a hundred envs would step them all).
        self.pool: list[tuple[BatchedRollouts, PlannedActions]] = []
        self.mean_length = float(cap)  # of the episodes run so far: sizes the batches (never the data)

    def _envs(self, wanted: int) -> tuple[BatchedRollouts, PlannedActions]:
        size = min(wanted, self.max_envs)
        if self.pool and size < self.pool[0][0].n_envs:
            size = 1 << (size - 1).bit_length()
        if self.pool and size >= self.pool[0][0].n_envs:
            return self.pool[0]
        for envs in self.pool:
            if envs[0].n_envs == size:
                return envs
        policy = PlannedActions(size, self.cap, self.family.act_dim)
        rollouts = BatchedRollouts(self.family, self.tasks[:1] * size, self.cap, self.seed, policy, max_steps=self.cap)
        self.pool.append((rollouts, policy))
        return rollouts, policy

    def _run(self, first_episode: int, wanted: int) -> list[TensorDictBase]:
        """Episodes ``first_episode``, ... (up to ``wanted``, as many as there are envs) from one batch."""
        rollouts, policy = self._envs(wanted)
        n = min(wanted, rollouts.n_envs)
        task_ids = [self.sampler() for _ in range(n)]
        # Rows past n (a smaller batch than the envs) run their previous task with zero actions, unread.
        rollouts.set_tasks([self.tasks[t] for t in task_ids] + rollouts.task_batch.tasks[n:])
        for i, env in enumerate(rollouts.task_batch.sub_envs[:n]):
            env.unwrapped.np_random = np.random.default_rng([_SEED_DOMAIN, self.seed, first_episode + i])
        policy.actions.zero_()
        policy.actions[:n] = uniform_actions((n, self.cap, self.family.act_dim), self.generator)
        policy.t = 0
        data = rollouts.collect()  # [n_envs, cap], each row from a reset
        if policy.t != self.cap:
            raise RuntimeError(f"ColdStartRollouts: the collector ran the policy {policy.t} times, expected {self.cap}")
        # A row's episode ends at its first done (the cap truncates the last step at the latest).
        lengths = data[keys.DONE][:n].reshape(n, self.cap).to(torch.int64).argmax(1) + 1
        self.mean_length = float(lengths.float().mean())
        return [data[i, : int(lengths[i])] for i in range(n)]

    def collect(self, rounds: Sequence[int], first_episode: int) -> TensorDictBase:
        """The rounds of ``rounds`` frames each, filled with the next episodes of the cold start
        (numbered from ``first_episode``), as one flat collector batch [sum(rounds)]."""
        if not rounds or min(rounds) < 1:
            raise ValueError(f"ColdStartRollouts.collect: rounds must be >= 1 frames each, got {list(rounds)}")
        sampler_state, generator_state = self.sampler.state_dict(), self.generator.get_state()
        episodes: list[TensorDictBase] = []
        parts: list[TensorDictBase] = []
        for r, frames in enumerate(rounds):
            room = frames
            while room > 0:
                if len(parts) == len(episodes):
                    left = room + sum(rounds[r + 1 :])
                    episodes += self._run(first_episode + len(episodes), math.ceil(left / self.mean_length))
                episode = episodes[len(parts)]
                parts.append(episode[: min(room, episode.shape[0])])
                room -= parts[-1].shape[0]
        # Hand back the draws of the episodes run but not used: the next call runs them again.
        self.sampler.load_state_dict(sampler_state)
        self.generator.set_state(generator_state)
        for _ in parts:
            self.sampler()
        uniform_actions((len(parts), self.cap, self.family.act_dim), self.generator)
        return torch.cat(parts)

    def close(self) -> None:
        for rollouts, _ in self.pool:
            rollouts.close()
        self.pool = []
