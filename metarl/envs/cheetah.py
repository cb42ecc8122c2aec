"""HalfCheetah families: cheetah-vel and cheetah-fb (PEARL ``half_cheetah_vel.py``/``half_cheetah_dir.py``,
copied unchanged by MQL).

Both use PEARL's 20-dim observation (gym's 17 plus the torso's COM, absolute x included) and a
control cost of 0.05, on gymnasium's ``half_cheetah.xml``; episodes never terminate.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from metarl.envs.base import (
    FamilySpec,
    Params,
    Task,
    check_choice,
    check_keys,
    check_real,
    horizon_option,
    seed_option,
    split_options,
)
from metarl.envs.mujoco_base import MujocoTaskEnv, obs_box

# The mass gym's half_cheetah.xml sets with `settotalmass`, which MuJoCo 4 deprecates (and prints a
# C-level warning for). Loading without the attribute and scaling here gives identical masses and
# inertias, and keeps them if a later XML drops the attribute.
TOTAL_MASS = 14.0
OBS_DIM = 20
CTRL_COST = 0.05  # PEARL's `0.5 * 1e-1`; gymnasium's default is 0.1
VELOCITY_RANGE = (0.0, 3.0)  # the code's U(0, 3); its docstring's [0, 2] is stale


class CheetahEnv(MujocoTaskEnv, HalfCheetahEnv):
    """The shared HalfCheetah body; subclasses define the task reward."""

    def __init__(self, family: str, task: Task, options: Any, evaluation: bool = False,
                 render_mode: str | None = None) -> None:
        HalfCheetahEnv.__init__(self, render_mode=render_mode)
        self.observation_space = obs_box(OBS_DIM)
        self._torso = self.model.body("torso").id
        self._mask = np.ones(self.model.nu)
        self._init_mujoco_task_env(family, task, options, evaluation, render_mode)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        xml = re.sub(r'\s+settotalmass="[^"]*"', "", Path(self.fullpath).read_text())
        model = mujoco.MjModel.from_xml_string(xml)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        data = mujoco.MjData(model)
        mujoco.mj_setTotalmass(model, TOTAL_MASS)
        mujoco.mj_setConst(model, data)
        return model, data

    def _get_obs(self) -> np.ndarray:
        data = self.data
        return np.concatenate((data.qpos[1:], data.qvel, data.xpos[self._torso]))

    def _reward(self, x_velocity: float, ctrl: np.ndarray) -> tuple[float, dict[str, float]]:
        raise NotImplementedError

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, float]]:
        ctrl = self._mask * self._ctrl(action)
        x_before = self.data.qpos[0]
        self._simulate(ctrl)
        x_velocity = float((self.data.qpos[0] - x_before) / self._dt)
        reward, info = self._reward(x_velocity, ctrl)
        info["x_velocity"] = x_velocity
        return self._get_obs(), reward, False, False, info


class CheetahVelEnv(CheetahEnv):
    """r = -|v_x - v_goal| - 0.05 |a|^2."""

    _goal_velocity = 0.0

    def _apply_task(self, params: dict[str, Any]) -> None:
        self._goal_velocity = params["velocity"]

    def _reward(self, x_velocity: float, ctrl: np.ndarray) -> tuple[float, dict[str, float]]:
        forward = -abs(x_velocity - self._goal_velocity)
        ctrl_cost = CTRL_COST * float(np.square(ctrl).sum())
        return forward - ctrl_cost, {"reward_forward": forward, "reward_ctrl": -ctrl_cost}


class CheetahDirEnv(CheetahEnv):
    """r = d * v_x - 0.05 |a|^2, d = +1 (forward) or -1 (backward)."""

    _goal_direction = 1.0

    def _apply_task(self, params: dict[str, Any]) -> None:
        self._goal_direction = params["direction"]

    def _reward(self, x_velocity: float, ctrl: np.ndarray) -> tuple[float, dict[str, float]]:
        forward = self._goal_direction * x_velocity
        ctrl_cost = CTRL_COST * float(np.square(ctrl).sum())
        return forward - ctrl_cost, {"reward_forward": forward, "reward_ctrl": -ctrl_cost}


def check_velocity(params: Params) -> dict[str, Any]:
    check_keys(params, ("velocity",))
    return {"velocity": check_real(params, "velocity", *VELOCITY_RANGE)}


def check_direction(params: Params) -> dict[str, Any]:
    check_keys(params, ("direction",))
    return {"direction": check_choice(params, "direction", (-1.0, 1.0))}


def sample_velocities(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # PEARL draws all n_tasks at once after np.random.seed(1337); train = first, eval = last.
    n_train, n_eval = options["n_train_tasks"], options["n_eval_tasks"]
    velocities = np.random.RandomState(options["seed"]).uniform(*VELOCITY_RANGE, size=(n_train + n_eval,))
    tasks = [{"velocity": float(v)} for v in velocities]
    return tasks[:n_train], tasks[n_train:]


def fixed_directions(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tasks = [{"direction": -1.0}, {"direction": 1.0}]  # PEARL's fixed list; eval = train
    return tasks, [dict(t) for t in tasks]


FAMILIES = {
    "cheetah-vel": FamilySpec(
        name="cheetah-vel",
        options={**split_options(100, 30), "seed": seed_option(1337, "PEARL's fixed np.random.seed"),
                 **horizon_option(200)},
        sample=sample_velocities, env_class=CheetahVelEnv, check=check_velocity,
        obs_dim=lambda _: OBS_DIM, act_dim=6,
        reference="PEARL katerakelly/oyster rlkit/envs/half_cheetah_vel.py, configs/cheetah-vel.json (MQL: same code)",
    ),
    "cheetah-fb": FamilySpec(
        name="cheetah-fb",
        options=horizon_option(200),
        sample=fixed_directions, env_class=CheetahDirEnv, check=check_direction,
        obs_dim=lambda _: OBS_DIM, act_dim=6,
        reference="PEARL katerakelly/oyster rlkit/envs/half_cheetah_dir.py, configs/cheetah-dir.json (MQL: same code)",
    ),
}
