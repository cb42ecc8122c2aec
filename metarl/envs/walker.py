"""walker-params: Walker2d with randomised physics (rand_param_envs ``walker2d_rand_params.py`` and
``base.py`` RandomEnv, used by PEARL and MQL as walker-rand-params).

The reference's MuJoCo 1.31 XML (``coordinate="global"``) no longer loads; gymnasium's converted
``walker2d.xml`` is the same body (feet friction 0.9 / 1.9, not v5's 1.9 / 1.9). Its timestep is
set to the reference's 0.004 s, so with frame_skip 4 one step is 0.016 s (override ``timestep``;
0.002 gives gymnasium's 0.008 s).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from metarl.envs.base import (
    FamilySpec,
    Option,
    Params,
    Task,
    check_keys,
    check_vector,
    horizon_option,
    positive_float,
    seed_option,
    split_options,
)
from metarl.envs.mujoco_base import MujocoTaskEnv, obs_box

OBS_DIM = 17  # qpos[1:] (8) + clip(qvel, +-10) (9)
LOG_SCALE_LIMIT = 3.0
# RandomEnv's parameters in the order it draws them per task, each with its log base and element
# count in the walker model (nbody 8, nbody x 3, nv 9, ngeom x 3; the 1.31 model has the same sizes).
RAND_PARAMS: tuple[tuple[str, float, int], ...] = (
    ("body_mass", 1.5, 8),
    ("body_inertia", 1.5, 24),
    ("dof_damping", 1.3, 9),
    ("geom_friction", 1.5, 24),
)


class WalkerParamsEnv(MujocoTaskEnv, Walker2dEnv):
    """r = dx/dt + 1 - 1e-3 |a|^2 (the bonus paid on every step); terminated unless
    0.8 < height < 2.0 and -1 < angle < 1. Reset noise U(+-0.005) on qpos and qvel."""

    def __init__(self, family: str, task: Task, options: Any, evaluation: bool = False,
                 render_mode: str | None = None) -> None:
        Walker2dEnv.__init__(self, xml_file="walker2d.xml", frame_skip=4, render_mode=render_mode)
        self.model.opt.timestep = options.get("timestep", 0.004)
        self.observation_space = obs_box(OBS_DIM)
        # Tasks scale these nominal values; keep them so switching tasks never compounds.
        self._nominal = {name: getattr(self.model, name).copy() for name, _, _ in RAND_PARAMS}
        self._init_mujoco_task_env(family, task, options, evaluation, render_mode)

    def _apply_task(self, params: dict[str, Any]) -> None:
        for name, nominal in self._nominal.items():
            getattr(self.model, name)[:] = nominal * params[name].reshape(nominal.shape)
        # Masses and inertias feed derived constants (subtree masses, inverse weights); recompute
        # them. MuJoCo 1.31 left them stale (docs/fidelity.md).
        mujoco.mj_setConst(self.model, self.data)

    def _get_obs(self) -> np.ndarray:
        return np.concatenate((self.data.qpos[1:], np.clip(self.data.qvel, -10.0, 10.0)))

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, float]]:
        ctrl = self._ctrl(action)
        x_before = self.data.qpos[0]
        self._simulate(ctrl)
        x_after, height, angle = self.data.qpos[0:3]
        forward = float((x_after - x_before) / self._dt)
        ctrl_cost = 1e-3 * float(np.square(ctrl).sum())
        reward = forward + 1.0 - ctrl_cost
        terminated = not (0.8 < height < 2.0 and -1.0 < angle < 1.0)
        info = {"reward_forward": forward, "reward_ctrl": -ctrl_cost, "reward_survive": 1.0, "x_velocity": forward}
        return self._get_obs(), reward, bool(terminated), False, info


def check_multipliers(params: Params) -> dict[str, Any]:
    check_keys(params, [name for name, _, _ in RAND_PARAMS])
    out = {}
    for name, base, size in RAND_PARAMS:
        # A relative margin: the drawn exponents reach the limits only up to rounding.
        low, high = base ** -LOG_SCALE_LIMIT * (1 - 1e-12), base**LOG_SCALE_LIMIT * (1 + 1e-12)
        out[name] = check_vector(params, name, size, low, high)
    return out


def sample_multipliers(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # RandomEnv.sample_tasks: per task, mass, inertia, damping, friction, each base ** U(-3, 3) per
    # element, from the global RNG (MQL seeds it with --seed just before).
    n_train, n_eval = options["n_train_tasks"], options["n_eval_tasks"]
    rng = np.random.RandomState(options["seed"])
    tasks = []
    for _ in range(n_train + n_eval):
        tasks.append({
            name: tuple(float(m) for m in np.array(base) ** rng.uniform(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT, size=size))
            for name, base, size in RAND_PARAMS
        })
    return tasks[:n_train], tasks[n_train:]


FAMILIES = {
    "walker-params": FamilySpec(
        name="walker-params",
        options={**split_options(40, 10), "seed": seed_option(0, "seeds the reference's global-RNG draws"),
                 "timestep": Option(0.004, positive_float, "MuJoCo timestep; 4 substeps per env step"),
                 **horizon_option(200)},
        sample=sample_multipliers, env_class=WalkerParamsEnv, check=check_multipliers,
        obs_dim=lambda _: OBS_DIM, act_dim=6,
        reference="dennisl88/rand_param_envs walker2d_rand_params.py + base.py via PEARL "
                  "rlkit/envs/walker_rand_params_wrapper.py, configs/walker_rand_params.json (MQL: same code)",
    ),
}
