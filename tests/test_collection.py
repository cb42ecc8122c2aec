"""Collection through the TorchRL collector: one task per episode, tagged on every step, and the
acting-time GRU window equal to the one the replay rebuilds at sample time."""

from __future__ import annotations

import numpy as np
import torch

from metarl import keys
from metarl.data.policy import ActingPolicy
from metarl.data.replay import MultiTaskReplay, episode_to_replay
from metarl.data.rollouts import Rollouts, split_episodes
from metarl.envs import make_task_family
from metarl.nets import Actor, ContextEncoder


def _rollouts(family: str = "point-robot", history_len: int = 4) -> Rollouts:
    fam = make_task_family(family)
    encoder = ContextEncoder(fam.obs_dim, fam.act_dim, 8)
    actor = Actor(fam.obs_dim, fam.act_dim, 8, hidden_sizes=(16,))
    policy = ActingPolicy(actor, encoder, fam.act_dim, 0.1, torch.Generator().manual_seed(0))
    return Rollouts(fam, fam.train_tasks, policy, history_len, seed=0)


def test_each_episode_runs_one_task_and_is_tagged_with_it() -> None:
    ro = _rollouts()
    ro.sampler.mode = "cycle"
    batch = ro.collect(100, "random")
    episodes = split_episodes(batch)
    assert [int(ep[keys.TASK_ID][0]) for ep in episodes] == [0, 1, 2, 3, 4]
    for ep in episodes:
        task = ro.tasks[int(ep[keys.TASK_ID][0])]
        assert (ep[keys.TASK_ID] == task.index).all()
        # The reward is the distance to *this* task's goal (point-robot: r = -||p' - g||).
        goal = torch.tensor(task.params["goal"], dtype=torch.float32)
        expected = -(ep[keys.NEXT_OBS] - goal).norm(dim=-1, keepdim=True)
        assert torch.allclose(ep[keys.REWARD], expected, atol=1e-5)
        assert ep[keys.STEP_COUNT].reshape(-1).tolist() == list(range(20))
        assert bool(ep[keys.TRUNCATED][-1]) and not bool(ep[keys.TERMINATED].any())


def test_episode_cap_truncates_and_starts_a_new_task() -> None:
    ro = _rollouts()
    ro.sampler.mode = "cycle"
    batch = ro.collect(20, "random", episode_cap=5)
    episodes = split_episodes(batch)
    assert [ep.shape[0] for ep in episodes] == [5, 5, 5, 5]
    assert all(bool(ep[keys.TRUNCATED][-1]) for ep in episodes)
    assert len({int(ep[keys.TASK_ID][0]) for ep in episodes}) == 4


def test_acting_window_equals_the_replay_window() -> None:
    ro = _rollouts(history_len=4)
    ro.sampler.mode = "cycle"
    batch = ro.collect(40, "explore")
    fam = ro.family
    replay = MultiTaskReplay(len(fam.train_tasks), 100, fam.obs_dim, fam.act_dim, 4)
    for i, ep in enumerate(split_episodes(batch)):
        replay.extend(episode_to_replay(ep, int(ep[keys.TASK_ID][0]), i))
    sample = replay.sample(256, torch.Generator().manual_seed(0))
    flat = {(int(t), int(s)): h for t, s, h in zip(batch[keys.TASK_ID], batch[keys.STEP_COUNT].reshape(-1),
                                                     batch[keys.HISTORY], strict=True)}
    for t, s, h in zip(sample[keys.TASK_ID], sample[keys.STEP_COUNT], sample[keys.HISTORY], strict=True):
        assert torch.equal(flat[(int(t), int(s))], h)


def test_rollouts_state_round_trip_replays_the_same_data() -> None:
    a = _rollouts()
    a.collect(40, "explore")
    state = a.state_dict()
    policy_state = a.policy.state_dict()
    first = a.collect(40, "explore")
    b = _rollouts()
    b.load_state_dict(state)
    b.policy.load_state_dict(policy_state)
    b.policy.use(a.policy.actor, a.policy.encoder)
    second = b.collect(40, "explore")
    assert torch.equal(first[keys.OBS], second[keys.OBS])
    assert torch.equal(first[keys.ACTION], second[keys.ACTION])
    assert np.array_equal(first[keys.TASK_ID].numpy(), second[keys.TASK_ID].numpy())
