"""Ant families: ant-fb (PEARL ``ant_dir.py`` with ``forward_backward=True``, as MQL runs it) and
ant-goal (PEARL ``ant_goal.py``), on gymnasium's ``ant.xml`` (PEARL's ant.xml plus a camera; same
physics).

Contact forces are zero by default, as the references' MuJoCo 2.0 returned them; the override
``zero_contact_forces=False`` uses the forces today's MuJoCo computes (docs/fidelity.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from metarl.envs.base import (
    TWO_PI,
    FamilySpec,
    Params,
    Task,
    check_keys,
    check_real,
    check_vector,
    contact_option,
    horizon_option,
    seed_option,
    split_options,
)
from metarl.envs.mujoco_base import MujocoTaskEnv, obs_box

LOCOMOTION_OBS_DIM = 27  # qpos[2:] (13) + qvel (14): gym's ant obs without contact forces
GOAL_OBS_DIM = 113  # qpos (15, x and y included) + qvel (14) + clip(cfrc_ext) of all 14 bodies (84)
CONTACT_COST = 0.5e-3
GOAL_RADIUS = 3.0


class AntBase(MujocoTaskEnv, AntEnv):
    """The shared Ant body: reset noise U(+-0.1) on qpos and 0.1 N(0, 1) on qvel, as gymnasium and PEARL."""

    obs_dim = LOCOMOTION_OBS_DIM

    def __init__(self, family: str, task: Task, options: Any, evaluation: bool = False,
                 render_mode: str | None = None) -> None:
        AntEnv.__init__(self, include_cfrc_ext_in_observation=False, render_mode=render_mode)
        self.observation_space = obs_box(self.obs_dim)
        self._torso = self.model.body("torso").id
        self._mask = np.ones(self.model.nu)
        self._direction = np.array([1.0, 0.0])
        self._init_mujoco_task_env(family, task, options, evaluation, render_mode,
                                   contact_forces=not options.get("zero_contact_forces", True))

    def _contact_cost(self) -> float:
        if not self._contact_forces:
            return 0.0
        return CONTACT_COST * float(np.square(np.clip(self.cfrc_ext(), -1.0, 1.0)).sum())

    def _get_obs(self) -> np.ndarray:
        return np.concatenate((self.data.qpos[2:], self.data.qvel))


class AntLocomotionEnv(AntBase):
    """r = v_torso_xy . (cos t, sin t) - 0.5 |a|^2 - 0.5e-3 |clip(cfrc_ext)|^2 + 1, the survive bonus
    paid on every step (the terminal one too); terminated once the state is not finite or the
    torso's z leaves [0.2, 1.0]. Used by ant-fb, ant-dir-ood and (direction 0, masked actions)
    ant-negated-joints."""

    def _apply_task(self, params: dict[str, Any]) -> None:
        theta = params["direction"]
        self._direction = np.array([math.cos(theta), math.sin(theta)])

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, float]]:
        ctrl = self._mask * self._ctrl(action)
        # PEARL measures the torso body's xpos (get_body_com), not qpos.
        xy_before = self.data.xpos[self._torso, :2].copy()
        self._simulate(ctrl)
        xy_velocity = (self.data.xpos[self._torso, :2] - xy_before) / self._dt
        forward = float(np.dot(xy_velocity, self._direction))
        ctrl_cost = 0.5 * float(np.square(ctrl).sum())
        contact_cost = self._contact_cost()
        reward = forward - ctrl_cost - contact_cost + 1.0
        qpos, qvel = self.data.qpos, self.data.qvel
        healthy = bool(np.isfinite(qpos).all() and np.isfinite(qvel).all() and 0.2 <= qpos[2] <= 1.0)
        info = {"reward_forward": forward, "reward_ctrl": -ctrl_cost, "reward_contact": -contact_cost,
                "reward_survive": 1.0, "x_velocity": float(xy_velocity[0]), "y_velocity": float(xy_velocity[1])}
        return self._get_obs(), reward, not healthy, False, info


class AntGoalEnv(AntBase):
    """r = -|xy_torso - goal|_1 - 0.1 |a|^2 - 0.5e-3 |clip(cfrc_ext)|^2; no survive bonus; never
    terminates."""

    obs_dim = GOAL_OBS_DIM

    def _apply_task(self, params: dict[str, Any]) -> None:
        self._goal = params["goal"]

    def _get_obs(self) -> np.ndarray:
        cfrc = np.clip(self.data.cfrc_ext, -1.0, 1.0).ravel() if self._contact_forces else self._zero_cfrc.ravel()
        return np.concatenate((self.data.qpos, self.data.qvel, cfrc))

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, float]]:
        ctrl = self._ctrl(action)
        self._simulate(ctrl)
        goal_reward = -float(np.abs(self.data.xpos[self._torso, :2] - self._goal).sum())
        ctrl_cost = 0.1 * float(np.square(ctrl).sum())
        contact_cost = self._contact_cost()
        reward = goal_reward - ctrl_cost - contact_cost
        info = {"reward_goal": goal_reward, "reward_ctrl": -ctrl_cost, "reward_contact": -contact_cost}
        return self._get_obs(), reward, False, False, info


def check_angle(params: Params) -> dict[str, Any]:
    check_keys(params, ("direction",))
    return {"direction": check_real(params, "direction", 0.0, TWO_PI)}


def check_goal(params: Params) -> dict[str, Any]:
    check_keys(params, ("goal",))
    goal = check_vector(params, "goal", 2, -GOAL_RADIUS, GOAL_RADIUS)
    if float(np.hypot(*goal)) > GOAL_RADIUS + 1e-9:
        raise ValueError(f"task param goal={params['goal']!r} is out of range; allowed: a point in the disk "
                         f"of radius {GOAL_RADIUS:g}")
    return {"goal": goal}


def forward_backward(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tasks = [{"direction": 0.0}, {"direction": math.pi}]  # forward_backward=True; eval = train
    return tasks, [dict(t) for t in tasks]


def sample_goals(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # PEARL/ProMP draw all angles, then all radii, from the global RNG; MQL seeds it with --seed
    # right before, so seed=s gives MQL's task list for --seed s.
    n_train, n_eval = options["n_train_tasks"], options["n_eval_tasks"]
    rng = np.random.RandomState(options["seed"])
    angle = rng.random_sample(n_train + n_eval) * TWO_PI
    radius = GOAL_RADIUS * rng.random_sample(n_train + n_eval) ** 0.5
    tasks = [{"goal": (float(r * np.cos(a)), float(r * np.sin(a)))} for a, r in zip(angle, radius, strict=True)]
    return tasks[:n_train], tasks[n_train:]


FAMILIES = {
    "ant-fb": FamilySpec(
        name="ant-fb",
        options={**contact_option(), **horizon_option(200)},
        sample=forward_backward, env_class=AntLocomotionEnv, check=check_angle,
        obs_dim=lambda _: LOCOMOTION_OBS_DIM, act_dim=8,
        reference="PEARL katerakelly/oyster rlkit/envs/ant_dir.py (forward_backward=True, as MQL "
                  "configs/pearl_envs.json)",
    ),
    "ant-goal": FamilySpec(
        name="ant-goal",
        options={**split_options(150, 30), "seed": seed_option(0, "seeds the reference's global-RNG draws"),
                 **contact_option(), **horizon_option(200)},
        sample=sample_goals, env_class=AntGoalEnv, check=check_goal,
        obs_dim=lambda _: GOAL_OBS_DIM, act_dim=8,
        reference="PEARL katerakelly/oyster rlkit/envs/ant_goal.py, configs/ant-goal.json (MQL: same code)",
    ),
}
