"""humanoid-dir (PEARL ``humanoid_dir.py``, copied by MQL) on gymnasium's ``humanoid.xml``.

The observation is PEARL's 376 dims by default (``obs_mode="reference"``: every body row of
cinert/cvel/cfrc_ext and all of qfrc_actuator); ``obs_mode="v5"`` gives gymnasium v5's 348 (world
body and root dofs dropped). Contact forces are zero by default, as under the references'
MuJoCo 2.0 (docs/fidelity.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv

from metarl.envs.base import (
    TWO_PI,
    FamilySpec,
    Option,
    Params,
    Task,
    check_keys,
    check_real,
    contact_option,
    horizon_option,
    one_of,
    seed_option,
    split_options,
)
from metarl.envs.mujoco_base import MujocoTaskEnv, obs_box

OBS_DIMS = {"reference": 376, "v5": 348}


class HumanoidDirEnv(MujocoTaskEnv, HumanoidEnv):
    """r = 0.25 (cos t, sin t) . d(com_xy) / timestep - 0.1 |ctrl|^2 - min(0.5e-6 |cfrc_ext|^2, 10) + 5.

    The reference divides by the model timestep, not dt = 5 timesteps: the velocity weight is
    1.25 per dt, as in gym's Humanoid. The alive bonus is paid on every step, the terminal one
    too; terminated once qpos z leaves [1, 2]. Reset noise U(+-0.01) on qpos and qvel.
    """

    def __init__(self, family: str, task: Task, options: Any, evaluation: bool = False,
                 render_mode: str | None = None) -> None:
        HumanoidEnv.__init__(self, render_mode=render_mode)
        self._v5_obs = options.get("obs_mode", "reference") == "v5"
        self.observation_space = obs_box(OBS_DIMS["v5" if self._v5_obs else "reference"])
        self._mass = self.model.body_mass.copy()
        self._mass_total = float(self._mass.sum())
        self._direction = np.array([1.0, 0.0])
        self._init_mujoco_task_env(family, task, options, evaluation, render_mode,
                                   contact_forces=not options.get("zero_contact_forces", True))

    def _apply_task(self, params: dict[str, Any]) -> None:
        theta = params["direction"]
        self._direction = np.array([math.cos(theta), math.sin(theta)])

    def _mass_center_xy(self) -> np.ndarray:
        return (self._mass @ self.data.xipos)[:2] / self._mass_total

    def _get_obs(self) -> np.ndarray:
        d = self.data
        if self._v5_obs:
            parts = (d.qpos[2:], d.qvel, d.cinert[1:].ravel(), d.cvel[1:].ravel(), d.qfrc_actuator[6:],
                     self.cfrc_ext()[1:].ravel())
        else:
            parts = (d.qpos[2:], d.qvel, d.cinert.ravel(), d.cvel.ravel(), d.qfrc_actuator, self.cfrc_ext().ravel())
        return np.concatenate(parts)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, float]]:
        ctrl = self._ctrl(action)
        com_before = self._mass_center_xy()
        self._simulate(ctrl)
        com_after = self._mass_center_xy()
        lin_vel = 0.25 * float(np.dot(self._direction, com_after - com_before)) / self.model.opt.timestep
        ctrl_cost = 0.1 * float(np.square(ctrl).sum())
        impact_cost = min(0.5e-6 * float(np.square(self.data.cfrc_ext).sum()), 10.0) if self._contact_forces else 0.0
        reward = lin_vel - ctrl_cost - impact_cost + 5.0
        z = self.data.qpos[2]
        terminated = bool(z < 1.0 or z > 2.0)
        info = {"reward_linvel": lin_vel, "reward_quadctrl": -ctrl_cost, "reward_impact": -impact_cost,
                "reward_alive": 5.0}
        return self._get_obs(), reward, terminated, False, info


def check_angle(params: Params) -> dict[str, Any]:
    check_keys(params, ("direction",))
    return {"direction": check_real(params, "direction", 0.0, TWO_PI)}


def sample_directions(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # The reference draws from the global RNG (unseeded in PEARL, --seed in MQL).
    n_train, n_eval = options["n_train_tasks"], options["n_eval_tasks"]
    angles = np.random.RandomState(options["seed"]).uniform(0.0, TWO_PI, size=(n_train + n_eval,))
    tasks = [{"direction": float(a)} for a in angles]
    return tasks[:n_train], tasks[n_train:]


FAMILIES = {
    "humanoid-dir": FamilySpec(
        name="humanoid-dir",
        options={**split_options(100, 30), "seed": seed_option(0, "seeds the reference's global-RNG draws"),
                 **contact_option(),
                 "obs_mode": Option("reference", one_of("reference", "v5"), "376-dim PEARL obs or 348-dim v5 obs"),
                 **horizon_option(200)},
        sample=sample_directions, env_class=HumanoidDirEnv, check=check_angle,
        obs_dim=lambda options: OBS_DIMS[options["obs_mode"]], act_dim=17,
        reference="PEARL katerakelly/oyster rlkit/envs/humanoid_dir.py, configs/humanoid-dir.json (MQL: same code)",
    ),
}
