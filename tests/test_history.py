"""History windows: the pure gather, the acting-time transform, and their exact equivalence."""

from __future__ import annotations

import itertools

import pytest
import torch
from torchrl.envs import Compose, DoubleToFloat, GymEnv, StepCounter, TransformedEnv
from torchrl.envs.utils import check_env_specs

from metarl import keys
from metarl.data.history import HistoryTransform, gather_history, window_transitions
from metarl.data.replay import MultiTaskReplay, episode_to_replay


def test_window_transitions_are_the_episodes_newest_steps_without_the_padding() -> None:
    # H = 3, act_dim 1, obs_dim 2; step k of the episode is (a_k, r_k, o_k) = (k, 10 k, (k, -k)).
    steps = [torch.tensor([k, 10.0 * k, k, -k]) for k in range(5)]
    obs_t = lambda t: torch.tensor([float(t), -float(t)])  # noqa: E731
    at_2 = torch.stack([torch.zeros(4), steps[0], steps[1]])  # t = 2: one zero row of padding
    o, a, r, o2 = window_transitions(at_2, obs_t(2), 2, act_dim=1)
    assert torch.equal(o, torch.tensor([[0.0, 0.0], [1.0, -1.0]])) and torch.equal(a, torch.tensor([[0.0], [1.0]]))
    assert torch.equal(r, torch.tensor([[0.0], [10.0]])) and torch.equal(o2, torch.tensor([[1.0, -1.0], [2.0, -2.0]]))
    o, a, r, o2 = window_transitions(torch.stack(steps[2:5]), obs_t(5), 5, act_dim=1)  # t = 5 > H: the newest 3
    assert torch.equal(a[:, 0], torch.tensor([2.0, 3.0, 4.0])) and torch.equal(o2[-1], obs_t(5))
    assert all(x.shape[0] == 0 for x in window_transitions(torch.zeros(3, 4), obs_t(0), 0, act_dim=1))


def test_gather_history_hand_computed() -> None:
    # Two regions of capacity 4. Region 0 ring (positions 0..3): episode 7 steps 1, 2, then
    # episode 8 steps 0, 1 -- the write of episode 8 wrapped round onto episode 7's step 0.
    # Region 1: episode 9 step 0, then three never-written rows (episode -1).
    action = torch.arange(8.0)[:, None] * 10
    reward = torch.arange(8.0)[:, None] * 100
    obs = torch.arange(8.0)[:, None].repeat(1, 2)
    step = torch.tensor([1, 2, 0, 1, 0, 0, 0, 0])
    episode = torch.tensor([7, 7, 8, 8, 9, -1, -1, -1])
    hist, next_hist = gather_history(action, reward, obs, step, episode, torch.tensor([1, 3, 4]), 4, 3)

    def row(i: int) -> list[float]:
        return [10.0 * i, 100.0 * i, float(i), float(i)]

    zero = [0.0] * 4
    # slot 1 (ep 7, step 2): steps 0, 1 -> slot 0 holds step 1; step 0 was overwritten (slot 3 is ep 8).
    assert hist[0].tolist() == [zero, zero, row(0)]
    assert next_hist[0].tolist() == [zero, row(0), row(1)]
    # slot 3 (ep 8, step 1): step 0 at slot 2; slot 1 (ep 7) and slot 0 are not its episode.
    assert hist[1].tolist() == [zero, zero, row(2)]
    assert next_hist[1].tolist() == [zero, row(2), row(3)]
    # slot 4 (ep 9, step 0): nothing before; never-written rows never match.
    assert hist[2].tolist() == [zero, zero, zero]
    assert next_hist[2].tolist() == [zero, zero, row(4)]


def _pendulum(h: int, max_steps: int) -> TransformedEnv:
    env = TransformedEnv(
        GymEnv("Pendulum-v1"),
        Compose(DoubleToFloat(), StepCounter(max_steps=max_steps), HistoryTransform(h, 3, 1)),
    )
    env.set_seed(0)
    return env


def test_transform_spec_reset_and_first_step() -> None:
    h = 4
    env = _pendulum(h, 10)
    check_env_specs(env, seed=0)
    assert env.observation_spec[keys.HISTORY].shape == (h, 1 + 1 + 3)
    td = env.reset()
    assert torch.equal(td[keys.HISTORY], torch.zeros(h, 5))
    td.set(keys.ACTION, torch.tensor([0.5]))
    out = env.step(td)
    expected = torch.cat([td[keys.ACTION], out[keys.REWARD], td[keys.OBS]])
    assert torch.equal(out[keys.NEXT_HISTORY][-1], expected)
    assert torch.equal(out[keys.NEXT_HISTORY][:-1], torch.zeros(h - 1, 5))


@pytest.mark.parametrize("h", [3, 9])
def test_transform_windows_equal_replay_windows(h: int) -> None:
    """Roll out Pendulum (auto-reset every 7 steps), store the rollout, and compare every window
    the policy saw with what the replay reconstructs, through the gather and through sample()."""
    env = _pendulum(h, 7)
    torch.manual_seed(0)  # rollout's random actions only; the replay never uses the global RNG
    rollout = env.rollout(40, break_when_any_done=False)
    starts = [*(rollout[keys.STEP_COUNT].reshape(-1) == 0).nonzero().reshape(-1).tolist(), 40]
    assert len(starts) == 7  # 6 episodes, the last one cut short by the rollout length
    replay = MultiTaskReplay(2, 64, 3, 1, h)
    for ep, (s, e) in enumerate(itertools.pairwise(starts)):
        replay.extend(episode_to_replay(rollout[s:e], 1, ep))
    assert replay.size(1) == 40

    slots = 64 + torch.arange(40)  # task 1's region, written in rollout order
    d = replay._data
    hist, next_hist = gather_history(
        d[keys.ACTION], d[keys.REWARD], d[keys.OBS], d[keys.STEP_COUNT], d[keys.EPISODE], slots, 64, h
    )
    assert torch.equal(hist, rollout[keys.HISTORY])
    assert torch.equal(next_hist, rollout[keys.NEXT_HISTORY])

    batch = replay.sample(200, torch.Generator().manual_seed(0))
    flat = torch.tensor(starts[:-1])[batch[keys.EPISODE]] + batch[keys.STEP_COUNT]  # rollout row
    assert torch.equal(batch[keys.OBS], rollout[keys.OBS][flat])
    assert torch.equal(batch[keys.HISTORY], rollout[keys.HISTORY][flat])
    assert torch.equal(batch[keys.NEXT_HISTORY], rollout[keys.NEXT_HISTORY][flat])


def test_transform_argument_errors() -> None:
    for args in ((0, 3, 1), (4, 0, 1), (4, 3, 1.5)):
        with pytest.raises(ValueError, match="HistoryTransform"):
            HistoryTransform(*args)  # type: ignore[arg-type]
