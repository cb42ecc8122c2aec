"""What every metarl MuJoCo env adds to gymnasium's v5 envs: PEARL's [-1, 1] action box, a lean
step, and the choice between computed and zeroed contact forces."""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from metarl.envs.base import Task, TaskEnvMixin


class MujocoTaskEnv(TaskEnvMixin):
    """Mixed in before a gymnasium ``MujocoEnv`` subclass.

    Actions are mapped from [-1, 1] onto the actuators' ctrl range and clipped, as PEARL's
    ``NormalizedBoxEnv`` does, so every cost below is computed on the ctrl the model receives.
    """

    frame_skip: int
    model: mujoco.MjModel
    data: mujoco.MjData

    def _init_mujoco_task_env(
        self, family: str, task: Task, options: Any, evaluation: bool, render_mode: str | None,
        contact_forces: bool = False,
    ) -> None:
        # gymnasium's v5 constructors registered their own arguments for pickling; ours rebuild this env.
        EzPickle.__init__(self, family=family, task=task, options=dict(options), evaluation=evaluation,
                          render_mode=render_mode)
        low, high = self.model.actuator_ctrlrange.T.copy()
        self._ctrl_mid = (high + low) / 2.0
        self._ctrl_half = (high - low) / 2.0
        self._dt = float(self.model.opt.timestep * self.frame_skip)
        self._contact_forces = bool(contact_forces)
        # MuJoCo 2.0 (the references' simulator) left cfrc_ext at zero; reproduce that with a constant.
        self._zero_cfrc = np.zeros_like(self.data.cfrc_ext)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self._dt)}
        self._init_task(family, task, evaluation)

    def _set_action_space(self) -> spaces.Box:
        self.action_space = spaces.Box(-1.0, 1.0, (self.model.nu,), np.float32)
        return self.action_space

    def _ctrl(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self._ctrl_mid.shape:
            raise ValueError(f"{self.family_name}: action must have shape {self._ctrl_mid.shape}, got {a.shape}")
        return self._ctrl_mid + np.clip(a, -1.0, 1.0) * self._ctrl_half

    def _simulate(self, ctrl: np.ndarray) -> None:
        self.data.ctrl[:] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        if self._contact_forces:
            mujoco.mj_rnePostConstraint(self.model, self.data)

    def cfrc_ext(self) -> np.ndarray:
        """External contact forces per body [nbody, 6]: computed, or zero as under MuJoCo 2.0."""
        return self.data.cfrc_ext if self._contact_forces else self._zero_cfrc

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        super().set_state(qpos, qvel)  # type: ignore[misc]
        if self._contact_forces:
            # mj_forward leaves cfrc_ext stale; the first observation of an episode must not be.
            mujoco.mj_rnePostConstraint(self.model, self.data)


def obs_box(size: int) -> spaces.Box:
    return spaces.Box(-np.inf, np.inf, (size,), np.float64)
