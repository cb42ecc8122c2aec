"""RL2Adapt: what adapting to a new task means for RL² (Duan et al. 2016, §2.2; the lecture's
"black-box meta-RL"): no parameter update; the policy's hidden state, zeroed at the trial's start and
carried across its N episodes, is the adaptation.

Meta-test protocol, per eval task (the paper's; not garage's ``MetaEvaluator``, which restores the
post-exploration hidden state at every test episode)::

    ``runs`` trials at once (one env each) on the task, from h = 0, N episodes each
    the return of episode k, averaged over the runs, is ``eval/return_episode_<k>``;
    pre-adaptation = episode 1, post-adaptation = episode N (the paper-style metric).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor

from metarl import keys
from metarl.data.rollouts import BatchedRollouts
from metarl.methods.rl2.settings import RL2AdaptSettings
from metarl.nets.recurrent_policy import RecurrentGaussianPolicy
from metarl.training.module import AdaptModule

__all__ = ["RL2Adapt", "inner_episode_returns"]


def inner_episode_returns(data: TensorDictBase, n_episodes: int) -> Tensor:
    """``[n_envs, N]``: each row's return of inner episode k of its first trial (a row that starts a
    second trial after an early termination counts only its first)."""
    reward = data[keys.REWARD].squeeze(-1)
    done = data[keys.DONE].squeeze(-1).long()
    first_trial = (done.cumsum(-1) - done) == 0
    inner = data[("next", "inner_episode")].reshape(reward.shape)
    out = torch.zeros(reward.shape[0], n_episodes, dtype=reward.dtype)
    return out.scatter_add(1, inner.clamp(max=n_episodes - 1), reward * first_trial)


class RL2Adapt(AdaptModule):
    """Runs trials of the meta-trained recurrent policy on one new task. It holds the policy read-only
    (adaptation takes no gradient step, so there is nothing to copy)."""

    def __init__(self, policy: RecurrentGaussianPolicy, settings: RL2AdaptSettings) -> None:
        super().__init__()
        self.cfg = settings
        self.policy = policy

    def run_trials(self, rollouts: BatchedRollouts, task: Any, n_episodes: int) -> Tensor:
        """One trial per env of ``rollouts`` (acting with this policy) on ``task``: ``[runs, N]`` returns."""
        rollouts.set_tasks([task] * rollouts.n_envs)
        with torch.no_grad():
            data = rollouts.collect()
        return inner_episode_returns(data, n_episodes)
