"""The 2-D point robots of PEARL ``point_robot.py``: point-robot (dense reward, goals in [-1, 1]^2)
and sparse-point-robot (goals on the unit semicircle, reward only within 0.2 of the goal); and metarl's
own: point-robot-ood, an out-of-distribution split of point-robot (eval goals beyond the train ones),
and point-robot-rotated, where the task is in the dynamics (the action is rotated by the task's angle)
and the reward is the same for every task (GrBAL's setting: the planner knows the reward).

PEARL meta-trains sparse-point-robot's policy on the dense reward and evaluates (and builds the
context) on the sparse one: ``evaluation=True`` makes the sparse reward the reward; ``info`` always
carries both.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from metarl.envs.base import (
    TWO_PI,
    FamilySpec,
    Option,
    Params,
    Task,
    TaskEnvMixin,
    check_keys,
    check_real,
    check_vector,
    horizon_option,
    one_of,
    seed_option,
    split_options,
)

MAX_STEP = 0.1  # the reference's action box; [-1, 1] is scaled onto it, as NormalizedBoxEnv does
GOAL_RADIUS = 0.2


class PointEnv(TaskEnvMixin, EzPickle, gym.Env):
    """Position control on the plane: p <- p + a; r = -|p - goal|_2; never terminates."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012  (gymnasium's class-level convention)

    def __init__(self, family: str, task: Task, options: Any, evaluation: bool = False,
                 render_mode: str | None = None) -> None:
        EzPickle.__init__(self, family=family, task=task, options=dict(options), evaluation=evaluation,
                          render_mode=render_mode)
        self.render_mode = render_mode
        self.sparse = family == "sparse-point-robot"
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._state = np.zeros(2)
        self._goal = np.zeros(2)
        self._init_task(family, task, evaluation)

    def _apply_task(self, params: dict[str, Any]) -> None:
        self._goal = params["goal"]

    def _displacement(self, action: np.ndarray) -> np.ndarray:
        return action * MAX_STEP

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed, options=options)
        # Dense: a uniform start in the unit square; sparse: always the origin.
        self._state = np.zeros(2) if self.sparse else self.np_random.uniform(-1.0, 1.0, size=2)
        return self._state.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, float]]:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (2,):
            raise ValueError(f"{self.family_name}: action must have shape (2,), got {a.shape}")
        self._state = self._state + self._displacement(np.clip(a, -1.0, 1.0))
        dx, dy = self._state - self._goal
        dense = -math.sqrt(dx * dx + dy * dy)
        if not self.sparse:
            return self._state.copy(), dense, False, False, {}
        # Reference: the dense reward masked to the goal radius, plus 1 inside it.
        sparse = dense + 1.0 if dense >= -GOAL_RADIUS else 0.0
        info = {"dense_reward": dense, "sparse_reward": sparse}
        return self._state.copy(), sparse if self.evaluation else dense, False, False, info


class RotatedPointEnv(PointEnv):
    """point-robot-rotated: p <- p + R(angle) a; r = -|p|_2 (the goal is the origin for every task)."""

    def _apply_task(self, params: dict[str, Any]) -> None:
        c, s = math.cos(params["angle"]), math.sin(params["angle"])
        self._rotation = np.array([[c, -s], [s, c]])

    def _displacement(self, action: np.ndarray) -> np.ndarray:
        # The clipped action is rotated: every task moves the same distance for the same action.
        return self._rotation @ action * MAX_STEP


def distance_reward(obs: Any, action: Any, next_obs: Any) -> Any:
    """point-robot-rotated's reward r(s, a, s') = -|s'|_2 on tensors ``[..., 2]`` -> ``[...]``: the
    same for every task, so a planner can use it (GrBAL's ``env.reward(obs, act, next_obs)``)."""
    return -next_obs.norm(dim=-1)


def check_goal(params: Params) -> dict[str, Any]:
    check_keys(params, ("goal",))
    return {"goal": check_vector(params, "goal", 2, -1.0, 1.0)}


def sample_square(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # PEARL: np.random.seed(1337), then per goal one x draw and one y draw.
    n_train, n_eval = options["n_train_tasks"], options["n_eval_tasks"]
    rng = np.random.RandomState(options["seed"])
    tasks = [{"goal": (float(rng.uniform(-1.0, 1.0)), float(rng.uniform(-1.0, 1.0)))} for _ in range(n_train + n_eval)]
    return tasks[:n_train], tasks[n_train:]


def sample_semicircle(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # PEARL: evenly spaced angles on [0, pi], rows shuffled after np.random.seed(1337).
    n_train, n_eval = options["n_train_tasks"], options["n_eval_tasks"]
    angles = np.linspace(0.0, np.pi, num=n_train + n_eval)
    goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.random.RandomState(options["seed"]).shuffle(goals)
    tasks = [{"goal": (float(x), float(y))} for x, y in goals]
    return tasks[:n_train], tasks[n_train:]


OOD_TRAIN_X = (-1.0, 0.0)  # point-robot-ood: training goals on the left half of the square ...
OOD_EVAL_X = (0.5, 1.0)  # ... eval goals beyond them, with a gap so none is near a training goal's x


def sample_ood_halves(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # metarl's own split (methods-reference §8.4), drawn as the MIER velocity splits are: one seeded
    # stream, the train goals first, then the eval goals; x then y per goal, y ~ U(-1, 1) for both.
    rng = np.random.RandomState(options["seed"])

    def goals(n: int, x_range: tuple[float, float]) -> list[dict[str, Any]]:
        return [{"goal": (float(rng.uniform(*x_range)), float(rng.uniform(-1.0, 1.0)))} for _ in range(n)]

    train = goals(options["n_train_tasks"], OOD_TRAIN_X)
    # eval_split "in": held-out goals from the training distribution (the same train tasks), for the
    # in-distribution column of an OOD comparison (MIER paper §6.2).
    return train, goals(options["n_eval_tasks"], OOD_EVAL_X if options["eval_split"] == "ood" else OOD_TRAIN_X)


def check_rotation(params: Params) -> dict[str, Any]:
    check_keys(params, ("angle",))
    return {"angle": check_real(params, "angle", 0.0, TWO_PI)}


def sample_angles(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # One seeded stream, train angles first, then eval angles, all uniform on the circle.
    rng = np.random.RandomState(options["seed"])
    angles = rng.uniform(0.0, TWO_PI, size=options["n_train_tasks"] + options["n_eval_tasks"])
    tasks = [{"angle": float(a)} for a in angles]
    return tasks[: options["n_train_tasks"]], tasks[options["n_train_tasks"]:]


def _options() -> dict[str, Any]:
    return {**split_options(80, 20), "seed": seed_option(1337, "PEARL's fixed np.random.seed"), **horizon_option(20)}


FAMILIES = {
    "point-robot": FamilySpec(
        name="point-robot", options=_options(), sample=sample_square, env_class=PointEnv, check=check_goal,
        obs_dim=lambda _: 2, act_dim=2,
        reference="PEARL katerakelly/oyster rlkit/envs/point_robot.py PointEnv, configs/point-robot.json",
    ),
    "sparse-point-robot": FamilySpec(
        name="sparse-point-robot", options=_options(), sample=sample_semicircle, env_class=PointEnv,
        check=check_goal, obs_dim=lambda _: 2, act_dim=2,
        reference="PEARL katerakelly/oyster rlkit/envs/point_robot.py SparsePointEnv, configs/sparse-point-robot.json",
    ),
    "point-robot-ood": FamilySpec(
        name="point-robot-ood",
        options={**_options(), "seed": seed_option(1337, "as the point robots"),
                 "eval_split": Option("ood", one_of("ood", "in"), "eval goals beyond the train ones (ood: x in "
                                      "[0.5, 1]) or held out from the train distribution (in: x in [-1, 0])")},
        sample=sample_ood_halves, env_class=PointEnv, check=check_goal, obs_dim=lambda _: 2, act_dim=2,
        reference="metarl's own OOD split of PEARL's point-robot (methods-reference §8.4): train goals x in "
                  "[-1, 0], eval goals x in [0.5, 1]",
    ),
    "point-robot-rotated": FamilySpec(
        name="point-robot-rotated",
        options={**_options(), "seed": seed_option(1337, "as the point robots")},
        sample=sample_angles, env_class=RotatedPointEnv, check=check_rotation, obs_dim=lambda _: 2, act_dim=2,
        reference="metarl's dynamics-varying point robot for GrBAL (methods-reference §6.4: a dynamics-varying "
                  "family with the known reward): PEARL's point robot with the goal at the origin and the "
                  "action rotated by the task's angle, uniform on [0, 2 pi)",
        reward_fn=distance_reward,
    ),
}
