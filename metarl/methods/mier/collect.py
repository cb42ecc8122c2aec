"""MIER's data collection (mier_public ``mier.py`` ``train`` and ``collect_data_for_metatraining``).

Each visit of a train task collects

    ``num_steps_prior`` steps with φ₀                                     -> replay B_i and pre-adaptation buffer P_i
    φ_T = the model's context steps (eq. 3) on that data
    ``num_steps_updated_context`` steps with φ_T                          -> replay B_i only

with the stochastic policy. Before the first update every train task gets
``initial_exploration_repeats`` × ``num_steps_prior`` steps with φ₀ (both buffers). P_i is never cleared.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from metarl import keys
from metarl.data.replay import MultiTaskReplay, episode_to_replay
from metarl.data.rollouts import Rollouts, split_episodes
from metarl.envs.base import TaskFamily
from metarl.methods.mier.policy import ContextPolicy
from metarl.methods.mier.settings import MIERCollectSettings
from metarl.methods.mier.update import identify
from metarl.nets import ContextualGaussianModel


def collect_steps(rollouts: Rollouts, task: int, steps: int, mode: str = "explore") -> list[TensorDictBase]:
    """``steps`` env steps on task ``task`` (episodes cut at the remaining steps): the episodes."""
    episodes: list[TensorDictBase] = []
    sampler, remaining = rollouts.sampler, steps
    sampler.fixed = task
    try:
        while remaining > 0:
            frames = min(remaining, rollouts.max_episode_steps)
            episodes += split_episodes(rollouts.collect(frames, mode))
            remaining -= frames
    finally:
        sampler.fixed = None
    return episodes


class MIERCollection:
    """Data collection, mixed into MIERMetaTrain (which owns the attributes below)."""

    family: TaskFamily
    collect_cfg: MIERCollectSettings
    model: ContextualGaussianModel
    policy: ContextPolicy
    rollouts: Rollouts
    replay: MultiTaskReplay
    pre_replay: MultiTaskReplay
    env_steps: int
    num_episodes: int
    device: torch.device

    def collect(self, task: int, steps: int, context: torch.Tensor, to_pre: bool) -> tuple[list[float], TensorDictBase]:
        """``steps`` steps on ``task`` acting with ``context``; stored, counted. Returns the episodes'
        returns and the transitions ``[steps]`` in the replay's layout."""
        self.policy.set_context(context)
        returns, stored = [], []
        for ep in collect_steps(self.rollouts, task, steps):
            transitions = episode_to_replay(ep, int(ep[keys.TASK_ID][0]), self.num_episodes)
            self.replay.extend(transitions)
            if to_pre:
                self.pre_replay.extend(transitions)
            self.num_episodes += 1
            self.env_steps += ep.shape[0]
            returns.append(float(ep[keys.REWARD].sum()))
            stored.append(transitions)
        return returns, torch.cat(stored, dim=0)  # type: ignore[call-overload]

    def visit(self, task: int) -> list[float]:
        """One visit: φ₀ data to both buffers, then φ_T (adapted on it) data to the replay."""
        cfg = self.collect_cfg
        returns, prior = self.collect(task, cfg.num_steps_prior, self.model.context0, to_pre=True)
        if cfg.num_steps_updated_context > 0:
            context = identify(self.model, prior.unsqueeze(0).to(self.device))[0]
            returns += self.collect(task, cfg.num_steps_updated_context, context, to_pre=False)[0]
        return returns

    def initial_collection(self) -> None:
        steps = self.collect_cfg.initial_exploration_repeats * self.collect_cfg.num_steps_prior
        for task in range(len(self.family.train_tasks)):
            self.collect(task, steps, self.model.context0, to_pre=True)
