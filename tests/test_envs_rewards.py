"""metarl.envs: the reward of a hand-set state and action equals the reference formula (restated
here from the reference code), observations are assembled as the references do, and termination
and truncation follow the references."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from metarl.envs import Task, TaskFamily, make_task_family

ACTION = {6: np.array([0.5, -0.3, 0.2, 1.0, -1.0, 0.1]), 8: np.array([0.3, -0.7, 0.9, -0.2, 0.4, 1.0, -0.5, 0.05]),
          17: np.linspace(-0.95, 0.95, 17), 2: np.array([0.6, -0.4])}


def hand_set(fam: TaskFamily, task: Task, qpos_shift: float = 0.03, **overrides: object):
    """A reset env with a deterministic, non-trivial state: init pose shifted, some velocity."""
    env = fam.make_env(task)
    env.reset(seed=0)
    u = env.unwrapped
    qpos = u.init_qpos + qpos_shift * np.sin(np.arange(u.model.nq) + 1.0)
    qvel = 0.5 * np.cos(np.arange(u.model.nv) + 1.0)
    for index, value in overrides.items():
        qpos[int(index[1:])] = value
    u.set_state(qpos, qvel)
    return env, u


def in_contact(fam: TaskFamily, task: Task, action: np.ndarray):
    """An env whose next step with ``action`` ends touching the floor: the first such state of a
    zero-action episode from reset(seed=0) (the ant's legs reach the floor only now and then)."""
    for settle in range(50):
        env = fam.make_env(task)
        env.reset(seed=0)
        for _ in range(settle):
            env.step(np.zeros(fam.act_dim))
        state = env.unwrapped.data.qpos.copy(), env.unwrapped.data.qvel.copy()
        env.step(action)
        if env.unwrapped.data.ncon:
            env.unwrapped.set_state(*state)
            return env, env.unwrapped
    raise AssertionError("never touched the floor")


def torso_xy(u: object) -> np.ndarray:
    return u.data.body("torso").xpos[:2].copy()


@pytest.mark.parametrize("name", ["cheetah-vel", "cheetah-vel-medium", "cheetah-vel-hard"])
def test_cheetah_vel_reward_and_obs(name: str) -> None:
    fam = make_task_family(name)
    task = fam.eval_tasks[4]
    env, u = hand_set(fam, task)
    x0 = u.data.qpos[0]
    obs, reward, terminated, truncated, _ = env.step(ACTION[6])
    v = (u.data.qpos[0] - x0) / 0.05
    assert reward == pytest.approx(-abs(v - task.params["velocity"]) - 0.05 * np.sum(ACTION[6] ** 2), rel=1e-12)
    assert (terminated, truncated) == (False, False)
    expected_obs = np.concatenate([u.data.qpos[1:], u.data.qvel, u.data.body("torso").xpos])
    np.testing.assert_array_equal(obs, expected_obs)


def test_cheetah_fb_reward_and_clipping() -> None:
    fam = make_task_family("cheetah-fb")
    for task in fam.train_tasks:
        env, u = hand_set(fam, task)
        x0 = u.data.qpos[0]
        action = ACTION[6] * 1.8  # beyond the box: clipped, as NormalizedBoxEnv clips
        _, reward, _, _, _ = env.step(action)
        clipped = np.clip(action, -1, 1)
        np.testing.assert_array_equal(u.data.ctrl, clipped)
        expected = task.params["direction"] * (u.data.qpos[0] - x0) / 0.05 - 0.05 * np.sum(clipped**2)
        assert reward == pytest.approx(expected, rel=1e-12)


def test_cheetah_negated_joints_reward() -> None:
    fam = make_task_family("cheetah-negated-joints")
    task = fam.eval_tasks[2]
    env, u = hand_set(fam, task)
    x0 = u.data.qpos[0]
    _, reward, _, _, _ = env.step(ACTION[6])
    masked = np.array(task.params["mask"]) * ACTION[6]
    np.testing.assert_array_equal(u.data.ctrl, masked)
    assert reward == pytest.approx((u.data.qpos[0] - x0) / 0.05 - 0.1 * np.sum(masked**2), rel=1e-12)


def ant_contact_cost(u: object) -> float:
    return 0.5e-3 * float(np.sum(np.clip(u.data.cfrc_ext, -1, 1) ** 2))


@pytest.mark.parametrize("zero_contact", [True, False])
@pytest.mark.parametrize("name", ["ant-fb", "ant-dir-ood", "ant-negated-joints"])
def test_ant_locomotion_reward(name: str, zero_contact: bool) -> None:
    fam = make_task_family(name, zero_contact_forces=zero_contact)
    task = fam.eval_tasks[-1]
    env, u = hand_set(fam, task) if zero_contact else in_contact(fam, task, ACTION[8])
    before = torso_xy(u)
    obs, reward, terminated, _, info = env.step(ACTION[8])
    theta = task.params.get("direction", 0.0)
    mask = np.array(task.params.get("mask", np.ones(8)))
    forward = np.dot((torso_xy(u) - before) / 0.05, (np.cos(theta), np.sin(theta)))
    contact = 0.0 if zero_contact else ant_contact_cost(u)
    expected = forward - 0.5 * np.sum((mask * ACTION[8]) ** 2) - contact + 1.0
    assert reward == pytest.approx(expected, rel=1e-12)
    assert (contact > 0) == (not zero_contact) and info["reward_contact"] == pytest.approx(-contact)
    np.testing.assert_array_equal(obs, np.concatenate([u.data.qpos[2:], u.data.qvel]))
    assert terminated is False


@pytest.mark.parametrize("zero_contact", [True, False])
def test_ant_goal_reward_and_obs(zero_contact: bool) -> None:
    fam = make_task_family("ant-goal", zero_contact_forces=zero_contact)
    task = fam.train_tasks[7]
    env, u = hand_set(fam, task) if zero_contact else in_contact(fam, task, ACTION[8])
    obs, reward, terminated, _, _ = env.step(ACTION[8])
    contact = 0.0 if zero_contact else ant_contact_cost(u)
    expected = -np.sum(np.abs(torso_xy(u) - task.params["goal"])) - 0.1 * np.sum(ACTION[8] ** 2) - contact
    assert reward == pytest.approx(expected, rel=1e-12)
    cfrc = np.zeros(84) if zero_contact else np.clip(u.data.cfrc_ext, -1, 1).ravel()
    np.testing.assert_array_equal(obs, np.concatenate([u.data.qpos, u.data.qvel, cfrc]))
    assert np.any(obs[29:] != 0) == (not zero_contact)
    assert terminated is False


def mass_center_xy(u: object) -> np.ndarray:
    mass = u.model.body_mass[:, None]
    return (np.sum(mass * u.data.xipos, 0) / np.sum(mass))[:2]


@pytest.mark.parametrize(("zero_contact", "obs_mode"), [(True, "reference"), (False, "reference"), (True, "v5")])
def test_humanoid_dir_reward_and_obs(zero_contact: bool, obs_mode: str) -> None:
    fam = make_task_family("humanoid-dir", zero_contact_forces=zero_contact, obs_mode=obs_mode)
    task = fam.train_tasks[5]
    env, u = hand_set(fam, task, qpos_shift=0.01, z2=1.25)  # low enough for the feet to touch the floor
    before = mass_center_xy(u)
    obs, reward, terminated, _, _ = env.step(ACTION[17])
    ctrl = 0.4 * ACTION[17]  # [-1, 1] onto the ctrl range [-0.4, 0.4]
    np.testing.assert_allclose(u.data.ctrl, ctrl, rtol=1e-15)
    theta = task.params["direction"]
    lin_vel = 0.25 * np.sum(np.array([np.cos(theta), np.sin(theta)]) * (mass_center_xy(u) - before)) / 0.003
    cfrc = np.zeros_like(u.data.cfrc_ext) if zero_contact else u.data.cfrc_ext
    impact = min(0.5e-6 * np.sum(cfrc**2), 10)
    assert reward == pytest.approx(lin_vel - 0.1 * np.sum(ctrl**2) - impact + 5.0, rel=1e-12)
    assert (impact > 0) == (not zero_contact)
    d = u.data
    if obs_mode == "reference":
        parts = [d.qpos[2:], d.qvel, d.cinert.ravel(), d.cvel.ravel(), d.qfrc_actuator, cfrc.ravel()]
    else:
        parts = [d.qpos[2:], d.qvel, d.cinert[1:].ravel(), d.cvel[1:].ravel(), d.qfrc_actuator[6:], cfrc[1:].ravel()]
    np.testing.assert_array_equal(obs, np.concatenate(parts))
    assert terminated is False


def test_walker_reward_and_obs() -> None:
    fam = make_task_family("walker-params")
    env, u = hand_set(fam, fam.eval_tasks[1], qpos_shift=0.01)
    x0 = u.data.qpos[0]
    obs, reward, terminated, _, _ = env.step(ACTION[6])
    assert u.dt == pytest.approx(0.016)
    assert reward == pytest.approx((u.data.qpos[0] - x0) / 0.016 + 1.0 - 1e-3 * np.sum(ACTION[6] ** 2), rel=1e-12)
    np.testing.assert_array_equal(obs, np.concatenate([u.data.qpos[1:], np.clip(u.data.qvel, -10, 10)]))
    assert terminated is False


def test_point_robot_reward() -> None:
    fam = make_task_family("point-robot")
    task = fam.train_tasks[3]
    env = fam.make_env(task)
    obs, _ = env.reset(seed=0)
    assert np.all(np.abs(obs) <= 1)  # start uniform in the unit square
    obs, reward, terminated, _, info = env.step(ACTION[2])
    np.testing.assert_allclose(obs, env.unwrapped._state)
    position = obs
    assert reward == pytest.approx(-np.linalg.norm(position - np.array(task.params["goal"])), rel=1e-12)
    np.testing.assert_allclose(position - 0.1 * ACTION[2], env.reset(seed=0)[0])
    assert terminated is False and info == {}


@pytest.mark.parametrize("evaluation", [False, True])
def test_sparse_point_robot_reward(evaluation: bool) -> None:
    fam = make_task_family("sparse-point-robot")
    goal = (0.0, 1.0)
    env = fam.make_env(Task(0, "eval", {"goal": goal}), evaluation=evaluation)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0.0, 0.0])  # always starts at the origin
    rewards = []
    for _ in range(10):  # straight up at full speed: 0.1 per step, inside the radius from step 9
        obs, reward, _, _, info = env.step(np.array([0.0, 1.0]))
        dist = np.linalg.norm(obs - goal)
        sparse = 1.0 - dist if dist <= 0.2 else 0.0
        assert info["dense_reward"] == pytest.approx(-dist, abs=1e-12)
        assert info["sparse_reward"] == pytest.approx(sparse, abs=1e-12)
        rewards.append(reward)
        assert reward == pytest.approx(sparse if evaluation else -dist, abs=1e-12)
    assert (rewards[-1] > 0.9) == evaluation


# --- termination and truncation ---------------------------------------------------------------


def terminates(name: str, **qpos: float) -> bool:
    fam = make_task_family(name)
    env, _ = hand_set(fam, fam.train_tasks[0], qpos_shift=0.0, **qpos)
    return env.step(np.zeros(fam.act_dim))[2]


@pytest.mark.parametrize(
    ("name", "state", "expected"),
    [
        ("ant-fb", {}, False), ("ant-fb", {"z2": 1.5}, True), ("ant-fb", {"z2": 1.05}, True),
        ("ant-dir-ood", {"z2": 1.5}, True), ("ant-negated-joints", {"z2": 1.5}, True),
        ("ant-goal", {"z2": 1.5}, False),  # never terminates
        ("humanoid-dir", {}, False), ("humanoid-dir", {"z2": 2.5}, True), ("humanoid-dir", {"z2": 0.9}, True),
        ("walker-params", {}, False), ("walker-params", {"z1": 2.5}, True), ("walker-params", {"z2": 1.2}, True),
        ("walker-params", {"z2": -1.2}, True), ("walker-params", {"z1": 0.7}, True),
        ("cheetah-vel", {"z2": math.pi}, False), ("cheetah-fb", {"z1": 3.0}, False),
        ("cheetah-negated-joints", {"z2": math.pi}, False),
    ],
)
def test_termination_follows_the_reference(name: str, state: dict[str, float], expected: bool) -> None:
    assert terminates(name, **state) is expected


def test_ant_survive_bonus_is_paid_on_the_terminal_step() -> None:
    fam = make_task_family("ant-fb")
    env, _ = hand_set(fam, fam.train_tasks[0], qpos_shift=0.0, z2=1.5)
    _, reward, terminated, _, info = env.step(np.zeros(8))
    assert terminated and info["reward_survive"] == 1.0
    assert reward == pytest.approx(info["reward_forward"] + 1.0)


@pytest.mark.parametrize("name", ["cheetah-vel", "ant-goal", "point-robot", "sparse-point-robot"])
def test_truncation_at_the_time_limit(name: str) -> None:
    fam = make_task_family(name)
    env = fam.make_env(fam.train_tasks[0])
    env.reset(seed=0)
    flags: list[tuple[bool, bool]] = []
    for _ in range(fam.max_episode_steps):
        _, _, terminated, truncated, _ = env.step(np.zeros(fam.act_dim))
        flags.append((terminated, truncated))
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


@pytest.mark.parametrize("name", ["ant-fb", "humanoid-dir", "walker-params"])
def test_terminating_families_are_truncated_not_terminated_at_the_limit(name: str) -> None:
    fam = make_task_family(name, max_episode_steps=3)
    env = fam.make_env(fam.train_tasks[0])
    env.reset(seed=0)
    step: Callable[[], tuple[bool, bool]] = lambda: env.step(np.zeros(fam.act_dim))[2:4]  # noqa: E731
    assert [step() for _ in range(3)] == [(False, False), (False, False), (False, True)]
