"""MPC over a model (metarl.algorithms.mpc): returns of action sequences by hand, the action box,
the elite choice of CEM, and, with the point robot's true model and reward, that random shooting
and CEM beat random actions on the point robot (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

from metarl.algorithms.mpc import cem, known_reward, random_shooting, sequence_returns
from metarl.envs import make_task_family
from metarl.envs.point import MAX_STEP

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sequence_returns_by_hand() -> None:
    # s' = s + a, r = s'[0]: from s = 1 with actions (1, 2, 3): s' = 2, 4, 7, return 2 + 0.5 * 4 + 0.25 * 7.
    step = known_reward(lambda s, a: s + a, lambda s, a, n: n[:, 0])
    obs = torch.tensor([[1.0]], dtype=F64)
    actions = torch.tensor([[[[1.0], [2.0], [3.0]], [[0.0], [0.0], [-1.0]]]], dtype=F64)  # [M=1, N=2, H=3, A=1]
    torch.testing.assert_close(sequence_returns(step, obs, actions, 0.5),
                               torch.tensor([[2 + 0.5 * 4 + 0.25 * 7, 1 + 0.5 + 0.25 * 0]], dtype=F64))
    with pytest.raises(ValueError, match="reward must be"):
        sequence_returns(lambda s, a: (s + a, torch.zeros(5)), obs, actions)


def one_d(target: float):  # type: ignore[no-untyped-def]
    """Horizon-1 toy: r = -(a - target)^2; the model checks it only ever sees actions in the box."""

    def step(s: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        assert (a >= -1).all() and (a <= 1).all(), "the model must see clipped actions"
        return s, -(a[:, 0] - target).square()

    return step


@pytest.mark.parametrize("planner", [random_shooting, cem])
def test_planners_find_the_best_action_inside_the_box(planner) -> None:  # type: ignore[no-untyped-def]
    obs = torch.zeros(1, dtype=F64)
    inside = planner(one_d(0.7), obs, act_dim=1, generator=gen(1), horizon=1, n_candidates=200)
    assert inside.shape == (1,) and inside.item() == pytest.approx(0.7, abs=0.03)
    edge = planner(one_d(5.0), obs, act_dim=1, generator=gen(1), horizon=1, n_candidates=200)
    assert 0.99 <= edge.item() <= 1.0  # the optimum lies outside: the planner reaches the edge, not beyond
    # (learning_to_adapt's CEM returns 0.9 here: its last iteration's samples collapse onto a smoothed mean)
    batch = planner(one_d(-0.3), torch.zeros(3, 1, dtype=F64), act_dim=1, generator=gen(2), horizon=2,
                    n_candidates=100)
    assert batch.shape == (3, 1)
    again = planner(one_d(-0.3), torch.zeros(3, 1, dtype=F64), act_dim=1, generator=gen(2), horizon=2,
                    n_candidates=100)
    torch.testing.assert_close(batch, again)  # all randomness from the generator


def test_cem_elites_are_the_best_candidates() -> None:
    # With few candidates and one iteration, CEM's answer is random shooting's; over iterations its
    # distribution must concentrate on the optimum (an elite choice by index, as in learning_to_adapt's
    # argsort mask, would not), so 5 iterations of 30 beat 1 iteration of 30 by a wide margin.
    errors = {1: [], 5: []}
    for seed in range(8):
        for it in errors:
            a = cem(one_d(0.37), torch.zeros(1, dtype=F64), act_dim=1, generator=gen(seed), horizon=1,
                    n_candidates=30, iterations=it, elite_frac=0.2)
            errors[it].append(abs(a.item() - 0.37))
    assert np.mean(errors[5]) < 0.2 * np.mean(errors[1]) and max(errors[5]) < 0.05


def point_model(goal: Tensor):  # type: ignore[no-untyped-def]
    """The point robot's true dynamics and reward as an MPC model."""
    return known_reward(lambda s, a: s + MAX_STEP * a.clamp(-1, 1), lambda s, a, n: -(n - goal).norm(dim=-1))


def episode_return(policy, task_index: int) -> float:  # type: ignore[no-untyped-def]
    fam = make_task_family("point-robot")
    task = fam.eval_tasks[task_index]
    env = fam.make_env(task)
    obs, _ = env.reset(seed=task_index)
    total, done = 0.0, False
    while not done:
        action = policy(torch.as_tensor(obs, dtype=F64), torch.tensor(task.params["goal"], dtype=F64))
        obs, reward, terminated, truncated, _ = env.step(np.asarray(action))
        total, done = total + reward, terminated or truncated
    return total


def test_mpc_with_the_true_model_beats_random_actions_on_the_point_robot() -> None:
    g = gen(0)
    uniform = lambda s, goal: torch.rand(2, generator=g, dtype=F64) * 2 - 1  # noqa: E731
    rs = lambda s, goal: random_shooting(point_model(goal), s, 2, g, horizon=10, n_candidates=200)  # noqa: E731
    ce = lambda s, goal: cem(point_model(goal), s, 2, g, horizon=10, n_candidates=100, iterations=3)  # noqa: E731
    tasks = range(4)
    returns = {name: np.mean([episode_return(p, t) for t in tasks]) for name, p in
               (("random", uniform), ("rs", rs), ("cem", ce))}
    # benchmarks: random actions about -20, the goal-knowing oracle about -4.9 (methods-reference §8.4).
    assert returns["rs"] > returns["random"] + 5 and returns["rs"] > -8, returns
    assert returns["cem"] > returns["random"] + 5 and returns["cem"] > -8, returns
