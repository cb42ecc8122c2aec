"""Batched on-policy collection (metarl.data.rollouts.BatchedRollouts over make_batched_env): a batch is
[n_envs, horizon], row i runs its own task throughout (tag *and* reward), episodes reset correctly
(together or each at its own time), and collection is seeded and resumable."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
import torch
from gymnasium.wrappers import TimeLimit
from tensordict import TensorDictBase

from metarl import keys
from metarl.data.collector import make_batched_collector
from metarl.data.rollouts import BatchedRollouts
from metarl.envs import make_task_family

POINT = make_task_family("point-robot")


class ShortEpisodes:
    """The point robot, but the env of task i truncates after 3 + i steps: every env resets at its own
    time, which exercises TorchRL's partial resets of the vector env."""

    def __init__(self) -> None:
        self.train_tasks = POINT.train_tasks
        self.max_episode_steps = POINT.max_episode_steps

    def make_env(self, task: Any, evaluation: bool = False) -> gym.Env:
        return TimeLimit(POINT.make_env(task, evaluation), 3 + task.index)


def _goals(tasks: list[Any]) -> torch.Tensor:
    return torch.tensor([t.params["goal"] for t in tasks], dtype=torch.float32)


def _check_rows(data: TensorDictBase, tasks: list[Any]) -> None:
    """Every row ran its own task at every step, and the point robot's dynamics hold inside episodes."""
    n, horizon = data.batch_size
    ids = torch.tensor([t.index for t in tasks])
    assert torch.equal(data[keys.TASK_ID], ids[:, None].expand(n, horizon))
    # The reward is the distance to *this row's* goal: r = -|p' - g_i|.
    goal = _goals(tasks)[:, None, :]
    assert torch.allclose(data[keys.REWARD], -(data[keys.NEXT_OBS] - goal).norm(dim=-1, keepdim=True), atol=1e-5)
    assert torch.allclose(data[keys.NEXT_OBS] - data[keys.OBS], 0.1 * data[keys.ACTION].clamp(-1, 1), atol=1e-5)
    done = data[keys.DONE].squeeze(-1)
    # Inside an episode the next step starts where this one ended; after an end, from a fresh reset.
    same = ~done[:, :-1]
    assert torch.equal(data[keys.OBS][:, 1:][same], data[keys.NEXT_OBS][:, :-1][same])
    assert not torch.isclose(data[keys.OBS][:, 1:][~same], data[keys.NEXT_OBS][:, :-1][~same]).all(-1).any()
    assert (data[keys.OBS][:, 1:][~same].abs() <= 1.0).all()  # a reset draws the start in [-1, 1]^2


def test_batch_is_envs_by_horizon_and_each_row_runs_its_own_task() -> None:
    tasks = [POINT.train_tasks[i] for i in (0, 5, 2)]
    ro = BatchedRollouts(POINT, tasks, horizon=45, seed=0)
    data = ro.collect()
    assert data.batch_size == (3, 45)
    _check_rows(data, tasks)
    steps = torch.arange(45) % 20  # 20-step episodes: two whole ones, then 5 steps of a third
    assert torch.equal(data[keys.STEP_COUNT].squeeze(-1), steps.expand(3, 45))
    truncated = data[keys.TRUNCATED].squeeze(-1)
    assert torch.equal(truncated, (steps == 19).expand(3, 45)) and not data[keys.TERMINATED].any()
    # The next batch starts from a reset again, every row on its task.
    again = ro.collect()
    assert torch.equal(again[keys.STEP_COUNT][:, 0], torch.zeros(3, 1, dtype=torch.int64))
    _check_rows(again, tasks)


def test_envs_that_end_at_different_times_reset_alone() -> None:
    family = ShortEpisodes()
    tasks = POINT.train_tasks[:3]  # episodes of 3, 4 and 5 steps
    data = BatchedRollouts(family, tasks, horizon=12, seed=1, track_init=True).collect()
    _check_rows(data, tasks)
    t = torch.arange(12)
    for i in range(3):
        length = 3 + i
        assert data[keys.STEP_COUNT][i].squeeze(-1).tolist() == (t % length).tolist()
        assert data[keys.TRUNCATED][i].squeeze(-1).tolist() == ((t + 1) % length == 0).tolist()
        assert data["is_init"][i].squeeze(-1).tolist() == (t % length == 0).tolist()


def test_set_tasks_takes_effect_at_the_next_collect() -> None:
    ro = BatchedRollouts(POINT, POINT.train_tasks[:2], horizon=5, seed=0)
    ro.collect()
    new = [POINT.eval_tasks[3], POINT.train_tasks[7]]
    ro.set_tasks(new)
    _check_rows(ro.collect(), new)
    with pytest.raises(ValueError, match="got 3 tasks for 2 envs"):
        ro.set_tasks(POINT.train_tasks[:3])


def test_collection_is_seeded_and_resumes_exactly() -> None:
    tasks = POINT.train_tasks[:4]
    a, b = BatchedRollouts(POINT, tasks, 25, seed=3), BatchedRollouts(POINT, tasks, 25, seed=3)
    first = a.collect()
    assert torch.equal(first[keys.OBS], b.collect()[keys.OBS])
    assert not torch.equal(first[keys.OBS], BatchedRollouts(POINT, tasks, 25, seed=4).collect()[keys.OBS])
    a.set_tasks(POINT.eval_tasks[:4])
    state = a.state_dict()
    expected = a.collect()
    c = BatchedRollouts(POINT, tasks, 25, seed=99)
    c.load_state_dict(state, {"train": POINT.train_tasks, "eval": POINT.eval_tasks})
    resumed = c.collect()
    for key in (keys.OBS, keys.ACTION, keys.REWARD, keys.TASK_ID):
        assert torch.equal(resumed[key], expected[key]), key


def test_a_tensordict_policy_acts_on_every_env_at_once() -> None:
    seen: list[tuple[int, ...]] = []

    def policy(td: TensorDictBase) -> TensorDictBase:
        seen.append(tuple(td.batch_size))
        td.set(keys.ACTION, torch.ones(*td.batch_size, 2))  # always up-right
        return td

    ro = BatchedRollouts(POINT, POINT.train_tasks[:3], horizon=4, seed=0, policy=policy)
    data = ro.collect()
    assert set(seen) == {(3,)}  # one call per step for all envs, never per env
    assert torch.equal(data[keys.ACTION], torch.ones(3, 4, 2))
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        make_batched_collector(ro.env, policy, 0)
