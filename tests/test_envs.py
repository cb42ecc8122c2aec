"""metarl.envs: the public API, task lists (sizes, reference values, determinism across processes),
spaces, gymnasium's env checker, task switching, and a 1000-step random rollout of every family."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from metarl.envs import FAMILY_NAMES, Task, TaskFamily, make_task_family

REPO = Path(__file__).resolve().parent.parent
# name -> (obs_dim, act_dim, n_train, n_eval, max_episode_steps)
EXPECTED = {
    "ant-fb": (27, 8, 2, 2, 200),
    "ant-goal": (113, 8, 150, 30, 200),
    "cheetah-fb": (20, 6, 2, 2, 200),
    "cheetah-vel": (20, 6, 100, 30, 200),
    "humanoid-dir": (376, 17, 100, 30, 200),
    "walker-params": (17, 6, 40, 10, 200),
    "point-robot": (2, 2, 80, 20, 20),
    "sparse-point-robot": (2, 2, 80, 20, 20),
    "cheetah-vel-medium": (20, 6, 100, 30, 200),
    "cheetah-vel-hard": (20, 6, 100, 30, 200),
    "ant-dir-ood": (27, 8, 100, 10, 200),
    "cheetah-negated-joints": (20, 6, 10, 10, 200),
    "ant-negated-joints": (27, 8, 35, 15, 200),
    "point-robot-ood": (2, 2, 80, 20, 20),
    "point-robot-rotated": (2, 2, 80, 20, 20),
}
# Families whose tasks change only the reward (goal, velocity, direction), not the dynamics.
DYNAMICS_ONLY = ("walker-params", "cheetah-negated-joints", "ant-negated-joints", "point-robot-rotated")
REWARD_ONLY = [n for n in FAMILY_NAMES if n not in DYNAMICS_ONLY]


@pytest.fixture(scope="module")
def families() -> dict[str, TaskFamily]:
    return {name: make_task_family(name) for name in FAMILY_NAMES}


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter, away from the checkout: MuJoCo writes MUJOCO_LOG.TXT into the working
    directory when it warns."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd, env=env)


def task_lists(fam: TaskFamily) -> str:
    return json.dumps([dataclasses.asdict(t) for t in fam.train_tasks + fam.eval_tasks])


def test_names_match_the_interface() -> None:
    assert set(FAMILY_NAMES) == set(EXPECTED)
    assert len(FAMILY_NAMES) == 15


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_sizes_and_spaces(families: dict[str, TaskFamily], name: str) -> None:
    fam = families[name]
    obs_dim, act_dim, n_train, n_eval, horizon = EXPECTED[name]
    assert fam.name == name
    assert (fam.obs_dim, fam.act_dim, fam.max_episode_steps) == (obs_dim, act_dim, horizon)
    assert (len(fam.train_tasks), len(fam.eval_tasks)) == (n_train, n_eval)
    for split, tasks in (("train", fam.train_tasks), ("eval", fam.eval_tasks)):
        assert [t.index for t in tasks] == list(range(len(tasks)))
        assert {t.split for t in tasks} == {split} and {t.family for t in tasks} == {name}
        json.dumps([t.params for t in tasks])  # JSON-serializable
    env = fam.make_env(fam.eval_tasks[-1])
    assert isinstance(env, gym.wrappers.TimeLimit) and env._max_episode_steps == horizon
    assert env.observation_space.shape == (obs_dim,)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (obs_dim,) and obs in env.observation_space
    assert env.unwrapped.task == fam.eval_tasks[-1]


def test_same_lists_in_another_process_and_cheap_import(families: dict[str, TaskFamily], tmp_path: Path) -> None:
    code = (
        "import sys, json, dataclasses\n"
        "import metarl.envs as E\n"
        "print(json.dumps('mujoco' in sys.modules))\n"
        "for n in E.FAMILY_NAMES:\n"
        "    f = E.make_task_family(n)\n"
        "    print(json.dumps([dataclasses.asdict(t) for t in f.train_tasks + f.eval_tasks]))\n"
    )
    out = run_python(code, tmp_path).stdout.splitlines()
    assert out[0] == "false", "importing metarl.envs must not import MuJoCo"
    assert out[1:] == [task_lists(families[n]) for n in FAMILY_NAMES]


def test_reference_task_values(families: dict[str, TaskFamily]) -> None:
    # cheetah-vel: U(0, 3) after seed 1337 (benchmarks-reference §1.3).
    vel = families["cheetah-vel"]
    train = np.array([t.params["velocity"] for t in vel.train_tasks])
    evals = np.array([t.params["velocity"] for t in vel.eval_tasks])
    assert train.mean() == pytest.approx(1.525, abs=5e-4)
    assert (evals.mean(), evals.min(), evals.max()) == pytest.approx((1.418, 0.083, 2.978), abs=5e-4)
    # The fixed two-task families: eval = train.
    for name, values in (("ant-fb", [0.0, math.pi]), ("cheetah-fb", [-1.0, 1.0])):
        fam = families[name]
        assert [t.params["direction"] for t in fam.train_tasks] == values
        assert [t.params for t in fam.eval_tasks] == [t.params for t in fam.train_tasks]
    # ant-goal: the reference's draws (angles, then radii) after np.random.seed(seed); default seed 0.
    rng = np.random.RandomState(0)
    angle, radius = rng.random_sample(180) * 2 * np.pi, 3 * rng.random_sample(180) ** 0.5
    goals = np.array([t.params["goal"] for t in families["ant-goal"].train_tasks + families["ant-goal"].eval_tasks])
    np.testing.assert_array_equal(goals, np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1))
    # point robots: seed 1337; sparse goals on the unit upper semicircle.
    rng = np.random.RandomState(1337)
    first = [rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)]
    assert families["point-robot"].train_tasks[0].params["goal"] == tuple(first)
    sparse = np.array([t.params["goal"] for t in families["sparse-point-robot"].train_tasks])
    np.testing.assert_allclose(np.linalg.norm(sparse, axis=1), 1.0)
    assert (sparse[:, 1] >= 0).all() and not np.all(np.diff(np.arctan2(sparse[:, 1], sparse[:, 0])) > 0)
    # MIER OOD splits.
    for name, train_high in (("cheetah-vel-medium", 2.5), ("cheetah-vel-hard", 1.5)):
        fam = families[name]
        assert all(0 <= t.params["velocity"] <= train_high for t in fam.train_tasks)
        assert all(2.5 <= t.params["velocity"] <= 3.0 for t in fam.eval_tasks)
    ood = families["ant-dir-ood"]
    assert all(0 <= t.params["direction"] < 1.5 * math.pi for t in ood.train_tasks)
    np.testing.assert_allclose([t.params["direction"] for t in ood.eval_tasks], np.linspace(1.5 * np.pi, 2 * np.pi, 10))
    for name, last, n_neg in (("cheetah-negated-joints", 5, 3), ("ant-negated-joints", 7, 4)):
        fam = families[name]
        assert all(t.params["mask"][last] == 1 and t.params["mask"].count(-1.0) == n_neg for t in fam.train_tasks)
        assert all(t.params["mask"][last] == -1 and t.params["mask"].count(-1.0) == n_neg for t in fam.eval_tasks)
        masks = {t.params["mask"] for t in fam.train_tasks + fam.eval_tasks}
        assert len(masks) == len(fam.train_tasks) + len(fam.eval_tasks)
    walker = families["walker-params"]
    for t in walker.train_tasks + walker.eval_tasks:
        sizes = {k: len(v) for k, v in t.params.items()}
        assert sizes == {"body_mass": 8, "body_inertia": 24, "dof_damping": 9, "geom_friction": 24}
        assert 1.5**-3 <= min(t.params["body_mass"]) and max(t.params["body_mass"]) <= 1.5**3


def test_point_robot_ood_split(families: dict[str, TaskFamily]) -> None:
    fam = families["point-robot-ood"]
    train = np.array([t.params["goal"] for t in fam.train_tasks])
    evals = np.array([t.params["goal"] for t in fam.eval_tasks])
    assert train.shape == (80, 2) and evals.shape == (20, 2)
    assert (train[:, 0] >= -1).all() and (train[:, 0] <= 0).all()  # train: the left half
    assert (evals[:, 0] >= 0.5).all() and (evals[:, 0] <= 1).all()  # eval: beyond, with a gap
    assert (np.abs(np.r_[train[:, 1], evals[:, 1]]) <= 1).all()
    assert train[:, 1].min() < -0.5 < 0.5 < train[:, 1].max()  # y spans the square
    # One stream from RandomState(1337): the train goals (x then y), then the eval goals.
    rng = np.random.RandomState(1337)
    draws = [(rng.uniform(-1, 0), rng.uniform(-1, 1)) for _ in range(80)] + [
        (rng.uniform(0.5, 1), rng.uniform(-1, 1)) for _ in range(20)]
    np.testing.assert_array_equal(np.r_[train, evals], np.array(draws))
    again = make_task_family("point-robot-ood")
    assert again.train_tasks == fam.train_tasks and again.eval_tasks == fam.eval_tasks
    assert make_task_family("point-robot-ood", seed=1).train_tasks != fam.train_tasks
    small = make_task_family("point-robot-ood", n_train_tasks=10, n_eval_tasks=3)
    assert [t.params for t in small.train_tasks] == [t.params for t in fam.train_tasks[:10]]
    # eval_split "in": the same train tasks, eval goals held out from the train distribution.
    held_out = make_task_family("point-robot-ood", eval_split="in")
    assert held_out.train_tasks == fam.train_tasks
    inside = np.array([t.params["goal"] for t in held_out.eval_tasks])
    assert (inside[:, 0] >= -1).all() and (inside[:, 0] <= 0).all() and not np.isin(inside, train).any()
    with pytest.raises(ValueError, match="override eval_split must be one of 'ood', 'in', got 'out'"):
        make_task_family("point-robot-ood", eval_split="out")
    # The env is the dense point robot: r = -|p' - g| with the task's goal.
    env = fam.make_env(fam.eval_tasks[0])
    obs, _ = env.reset(seed=0)
    nxt, reward, terminated, truncated, _ = env.step(np.array([1.0, -1.0], np.float32))
    np.testing.assert_allclose(nxt, obs + np.array([0.1, -0.1]))
    assert reward == pytest.approx(-np.linalg.norm(nxt - evals[0])) and not (terminated or truncated)


def test_overrides(families: dict[str, TaskFamily]) -> None:
    small = make_task_family("cheetah-vel", n_train_tasks=3, n_eval_tasks=2)
    assert [t.params for t in small.train_tasks] == [t.params for t in families["cheetah-vel"].train_tasks[:3]]
    assert len(small.eval_tasks) == 2
    assert make_task_family("ant-goal", seed=1).train_tasks != families["ant-goal"].train_tasks
    assert make_task_family("humanoid-dir", obs_mode="v5").obs_dim == 348
    short = make_task_family("point-robot", max_episode_steps=7)
    assert short.max_episode_steps == 7 and short.make_env(short.train_tasks[0])._max_episode_steps == 7
    walker = make_task_family("walker-params", timestep=0.002)
    assert walker.make_env(walker.train_tasks[0]).unwrapped.dt == pytest.approx(0.008)
    assert families["walker-params"].make_env(walker.train_tasks[0]).unwrapped.dt == pytest.approx(0.016)


def test_bad_input_names_the_problem(families: dict[str, TaskFamily]) -> None:
    with pytest.raises(ValueError, match=r"unknown task family 'cheetah'.*cheetah-vel.*ant-negated-joints"):
        make_task_family("cheetah")
    with pytest.raises(ValueError, match=r"no override 'velocity'.*allowed overrides: n_train_tasks, n_eval_tasks"):
        make_task_family("cheetah-vel", velocity=2.0)
    with pytest.raises(ValueError, match=r"n_train_tasks must be an int >= 1, got 0"):
        make_task_family("cheetah-vel", n_train_tasks=0)
    with pytest.raises(ValueError, match=r"obs_mode must be one of 'reference', 'v5'"):
        make_task_family("humanoid-dir", obs_mode="full")
    vel = families["cheetah-vel"]
    env = vel.make_env(vel.train_tasks[0]).unwrapped
    with pytest.raises(ValueError, match=r"from family 'point-robot'"):
        env.set_task(families["point-robot"].train_tasks[0])
    with pytest.raises(ValueError, match=r"velocity=4.0 is out of range; allowed: a float in \[0, 3\]"):
        env.set_task(Task(0, "eval", {"velocity": 4.0}))
    with pytest.raises(ValueError, match=r"exactly the keys \['velocity'\]"):
        env.set_task(Task(0, "train", {}))
    with pytest.raises(ValueError, match=r"split 'test' is not allowed"):
        env.set_task(Task(0, "test", {"velocity": 1.0}))
    with pytest.raises(ValueError, match=r"from family 'cheetah-vel'"):
        families["humanoid-dir"].make_env(vel.train_tasks[0])
    bad = {
        "ant-goal": {"goal": (3.0, 3.0)},
        "cheetah-fb": {"direction": 0.5},
        "walker-params": {**families["walker-params"].train_tasks[0].params, "dof_damping": (5.0,) * 9},
        "ant-negated-joints": {"mask": (1.0,) * 7 + (0.0,)},
        "point-robot": {"goal": (0.0, 1.5)},
    }
    for name, params in bad.items():
        with pytest.raises(ValueError, match=r"out of range|not allowed"):
            families[name].make_env(Task(0, "train", params))
    env.set_task(Task(0, "eval", {"velocity": 2.5}))  # a hand-made task without family is fine


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_gymnasium_env_checker(families: dict[str, TaskFamily], name: str) -> None:
    env = families[name].make_env(families[name].train_tasks[0]).unwrapped
    with warnings.catch_warnings():
        warnings.filterwarnings("error")
        warnings.filterwarnings("ignore", message=".*infinity.*")  # unbounded observations, as the references
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_random_rollout_1000_steps(families: dict[str, TaskFamily], name: str) -> None:
    fam = families[name]
    env = fam.make_env(fam.train_tasks[0])
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    length, lengths = 0, []
    for step in range(1000):
        if step % 200 == 0:  # also exercise switching across the split lists
            tasks = fam.train_tasks + fam.eval_tasks
            env.unwrapped.set_task(tasks[step // 200 % len(tasks)])
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        length += 1
        assert obs.shape == (fam.obs_dim,) and np.isfinite(obs).all() and math.isfinite(reward)
        assert isinstance(terminated, bool) and isinstance(truncated, bool) and isinstance(info, dict)
        assert not (truncated and length != fam.max_episode_steps)
        if terminated or truncated:
            lengths.append(length)
            length = 0
            obs, _ = env.reset()
    assert all(n <= fam.max_episode_steps for n in lengths)


def rollout(env: gym.Env, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(seed).uniform(-1, 1, (n, env.action_space.shape[0]))
    observations, rewards = [obs], []
    for a in actions:
        obs, r, terminated, _, _ = env.step(a)
        observations.append(obs)
        rewards.append(r)
        if terminated:
            break
    return np.array(observations), np.array(rewards)


@pytest.mark.parametrize("name", REWARD_ONLY)
def test_switching_task_changes_the_reward_only(families: dict[str, TaskFamily], name: str) -> None:
    fam = families[name]
    a, b = fam.train_tasks[0], fam.train_tasks[-1] if len(fam.train_tasks) > 1 else fam.eval_tasks[-1]
    env = fam.make_env(a)
    obs_a, rew_a = rollout(env, 3, 15)
    env.unwrapped.set_task(b)
    assert env.unwrapped.task == b
    obs_b, rew_b = rollout(env, 3, 15)
    np.testing.assert_array_equal(obs_a, obs_b)  # same dynamics, same observations
    assert not np.allclose(rew_a, rew_b)
    env.unwrapped.set_task(a)
    np.testing.assert_array_equal(rollout(env, 3, 15)[1], rew_a)


def test_set_task_takes_effect_at_the_next_reset(families: dict[str, TaskFamily]) -> None:
    fam = families["cheetah-vel"]
    env = fam.make_env(fam.train_tasks[0])
    env.reset(seed=0)
    env.unwrapped.set_task(Task(0, "eval", {"velocity": 3.0}))
    _, _, _, _, info = env.step(np.zeros(6))
    assert info["reward_forward"] == pytest.approx(-abs(info["x_velocity"] - fam.train_tasks[0].params["velocity"]))
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(6))
    assert info["reward_forward"] == pytest.approx(-abs(info["x_velocity"] - 3.0))


PHYSICS = ("body_mass", "body_inertia", "dof_damping", "geom_friction")
# Constants mj_setConst derives from masses and inertias.
DERIVED = ("actuator_acc0", "body_invweight0", "body_subtreemass", "cam_poscom0", "dof_M0", "dof_invweight0",
           "light_poscom0")


def model_arrays(model: object) -> dict[str, np.ndarray]:
    out = {"opt.timestep": np.array(model.opt.timestep), "opt.gravity": model.opt.gravity.copy()}
    for name in dir(model):
        value = getattr(model, name) if not name.startswith("_") else None
        if isinstance(value, np.ndarray) and value.dtype != object:
            out[name] = value.copy()
    return out


def test_walker_task_switch_changes_the_physics_only(families: dict[str, TaskFamily]) -> None:
    fam = families["walker-params"]
    env = fam.make_env(fam.train_tasks[0])
    model = env.unwrapped.model
    first = model_arrays(model)
    nominal = {k: first[k] / np.reshape(fam.train_tasks[0].params[k], first[k].shape) for k in PHYSICS}
    task = fam.eval_tasks[3]
    env.unwrapped.set_task(task)
    assert model_arrays(model)["body_mass"].tolist() == first["body_mass"].tolist()  # not before the reset
    env.reset(seed=0)
    second = model_arrays(model)
    changed = {k for k in first if not np.array_equal(first[k], second[k])}
    assert set(PHYSICS) <= changed <= set(PHYSICS) | set(DERIVED)
    for k in PHYSICS:
        np.testing.assert_allclose(second[k], nominal[k] * np.reshape(task.params[k], nominal[k].shape), rtol=1e-12)
    env.unwrapped.set_task(fam.train_tasks[0])
    env.reset(seed=0)
    assert all(np.array_equal(v, model_arrays(model)[k]) for k, v in first.items())  # no compounding
    assert second["opt.timestep"] == 0.004


@pytest.mark.parametrize("name", ["cheetah-negated-joints", "ant-negated-joints"])
def test_negated_joints_switch_changes_the_actuation_only(families: dict[str, TaskFamily], name: str) -> None:
    fam = families[name]
    env = fam.make_env(fam.train_tasks[0])
    before = model_arrays(env.unwrapped.model)
    for task in (fam.train_tasks[0], fam.eval_tasks[0]):
        env.unwrapped.set_task(task)
        env.reset(seed=0)
        action = np.linspace(-0.9, 0.9, fam.act_dim)
        env.step(action)
        np.testing.assert_array_equal(env.unwrapped.data.ctrl, np.array(task.params["mask"]) * action)
    after = model_arrays(env.unwrapped.model)
    assert all(np.array_equal(v, after[k]) for k, v in before.items())


def test_rotated_point_robot_rotates_the_action_and_its_known_reward_is_the_envs(
        families: dict[str, TaskFamily]) -> None:
    fam = families["point-robot-rotated"]
    assert [n for n in FAMILY_NAMES if make_task_family(n).reward_fn is not None] == ["point-robot-rotated"]
    angles = [t.params["angle"] for t in fam.train_tasks + fam.eval_tasks]
    assert all(0.0 <= a < 2 * math.pi for a in angles) and len(set(angles)) == len(angles)
    env = fam.make_env(fam.eval_tasks[0])
    for angle in (0.0, math.pi / 2, 3.0):
        env.unwrapped.set_task(Task(0, "eval", {"angle": angle}))
        start, _ = env.reset(seed=1)
        obs, reward, *_ = env.step(np.array([1.0, 0.5]))
        np.testing.assert_allclose(obs - start, 0.1 * np.array([math.cos(angle) - 0.5 * math.sin(angle),
                                                                 math.sin(angle) + 0.5 * math.cos(angle)]))
        assert reward == pytest.approx(-np.linalg.norm(obs))  # the goal is the origin for every task
    obs_a, rew_a = rollout(env, 3, 15)
    known = fam.reward_fn(torch.as_tensor(obs_a[:-1]), None, torch.as_tensor(obs_a[1:]))
    np.testing.assert_allclose(known.numpy(), rew_a, rtol=1e-12)
    with pytest.raises(ValueError, match="angle"):
        env.unwrapped.set_task(Task(0, "eval", {"angle": 7.0}))


def test_walker_model_sizes_match_the_reference_draws(families: dict[str, TaskFamily]) -> None:
    fam = families["walker-params"]
    model = fam.make_env(fam.train_tasks[0]).unwrapped.model
    assert (model.nbody, model.nv, model.ngeom) == (8, 9, 8)  # as the MuJoCo 1.31 walker2d.xml
    # The feet keep the reference's frictions 0.9 / 1.9 (gymnasium's walker2d_v5.xml has 1.9 / 1.9).
    nominal = model.geom_friction / np.reshape(fam.train_tasks[0].params["geom_friction"], (8, 3))
    feet = nominal[model.geom("foot_geom").id, 0], nominal[model.geom("foot_left_geom").id, 0]
    assert feet == pytest.approx((0.9, 1.9))


def test_cheetah_loads_without_the_settotalmass_warning(tmp_path: Path) -> None:
    code = (
        "import numpy as np, metarl.envs as E\n"
        "f = E.make_task_family('cheetah-vel'); m = f.make_env(f.train_tasks[0]).unwrapped.model\n"
        "print(np.array2string(np.r_[m.body_mass, m.body_inertia.ravel()], precision=17, max_line_width=10**6))\n"
        "import mujoco, os, gymnasium.envs.mujoco as g\n"
        "r = mujoco.MjModel.from_xml_path(os.path.join(os.path.dirname(g.__file__), 'assets', 'half_cheetah.xml'))\n"
        "print(np.array2string(np.r_[r.body_mass, r.body_inertia.ravel()], precision=17, max_line_width=10**6))\n"
    )
    proc = run_python(code, tmp_path)
    ours, gyms = proc.stdout.splitlines()
    assert ours == gyms  # identical masses and inertias (total 14)
    assert proc.stderr.count("settotalmass") == 1  # only gymnasium's own load above warned


def test_pickle_and_spec_rebuild(families: dict[str, TaskFamily]) -> None:
    import pickle

    fam = families["ant-goal"]
    env = fam.make_env(fam.eval_tasks[2])
    rebuilt = env.unwrapped.spec.make()
    assert rebuilt.unwrapped.task == fam.eval_tasks[2]
    copy = pickle.loads(pickle.dumps(env.unwrapped))
    assert copy.task == fam.eval_tasks[2]
    obs = [e.reset(seed=5)[0] for e in (env, rebuilt, copy)]
    assert all(np.array_equal(obs[0], o) for o in obs[1:])
    assert pickle.loads(pickle.dumps(fam)).train_tasks == fam.train_tasks


def test_split_sizes_are_consecutive_draws(families: dict[str, TaskFamily]) -> None:
    # train = the first n_train of one list, eval = the last n_eval (PEARL launch_experiment.py).
    for name in ("cheetah-vel", "humanoid-dir", "point-robot"):
        fam = families[name]
        bigger = make_task_family(name, n_train_tasks=len(fam.train_tasks) + len(fam.eval_tasks) - 1, n_eval_tasks=1)
        assert [t.params for t in bigger.train_tasks] == [t.params for t in fam.train_tasks + fam.eval_tasks[:-1]]
        assert bigger.eval_tasks[0].params == fam.eval_tasks[-1].params


def test_walker_reference_timestep_is_stable_on_every_task(families: dict[str, TaskFamily]) -> None:
    # The 0.004 s timestep is twice gymnasium's; check MuJoCo 4 stays stable under every task.
    fam = families["walker-params"]
    env = fam.make_env(fam.train_tasks[0])
    rng = np.random.default_rng(0)
    for task in fam.train_tasks + fam.eval_tasks:
        env.unwrapped.set_task(task)
        env.reset(seed=int(rng.integers(1 << 30)))
        for _ in range(40):
            obs, _, terminated, _, _ = env.step(rng.uniform(-1, 1, 6))
            assert np.isfinite(obs).all()
            if terminated:
                env.reset()
        assert sum(w.number for w in env.unwrapped.data.warning) == 0
