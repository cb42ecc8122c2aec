"""MIER's out-of-distribution splits (russellmendonca/mier_public ``metalearning_envs``,
``configs/envs/ood``): the eval tasks lie outside the training distribution. Dynamics, rewards and
observations are those of the base families in cheetah.py and ant.py."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np

from metarl.envs.ant import LOCOMOTION_OBS_DIM, TWO_PI, AntLocomotionEnv, check_angle
from metarl.envs.base import (
    FamilySpec,
    Params,
    check_keys,
    check_vector,
    contact_option,
    horizon_option,
    seed_option,
    split_options,
)
from metarl.envs.cheetah import OBS_DIM as CHEETAH_OBS_DIM
from metarl.envs.cheetah import CheetahEnv, CheetahVelEnv, check_velocity

TaskLists = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def _velocity_split(train_range: tuple[float, float]) -> Any:
    def sample(options: dict[str, Any]) -> TaskLists:
        # MIER: np.random.seed(1337); train U(train_range), then eval U(2.5, 3.0), in one stream.
        rng = np.random.RandomState(options["seed"])
        train = rng.uniform(*train_range, size=(options["n_train_tasks"],))
        evals = rng.uniform(2.5, 3.0, size=(options["n_eval_tasks"],))
        return [{"velocity": float(v)} for v in train], [{"velocity": float(v)} for v in evals]

    return sample


def sample_ood_directions(options: dict[str, Any]) -> TaskLists:
    # MIER task_mode="ood": np.random.seed(42); train U(0, 1.5 pi); eval evenly spaced over the
    # unseen quadrant [1.5 pi, 2 pi] (its last direction, 2 pi, equals 0: kept as in MIER).
    train = np.random.RandomState(options["seed"]).uniform(0.0, 1.5 * math.pi, options["n_train_tasks"])
    evals = np.linspace(1.5 * math.pi, TWO_PI, options["n_eval_tasks"])
    return [{"direction": float(a)} for a in train], [{"direction": float(a)} for a in evals]


def negated_masks(n_joints: int, n_train_neg: int, n_test_neg: int, n_test: int) -> TaskLists:
    """Train masks negate ``n_train_neg`` of the first n_joints - 1 actuators; test masks negate the
    last actuator plus ``n_test_neg`` of the others (the first ``n_test`` combinations)."""
    train, test = [], []
    for idx in combinations(range(n_joints - 1), n_train_neg):
        train.append({"mask": tuple(-1.0 if j in idx else 1.0 for j in range(n_joints))})
    for idx in list(combinations(range(n_joints - 1), n_test_neg))[:n_test]:
        test.append({"mask": tuple(-1.0 if j in idx or j == n_joints - 1 else 1.0 for j in range(n_joints))})
    return train, test


class CheetahNegatedJointsEnv(CheetahEnv):
    """a <- mask * a; r = v_x - 0.1 |a|^2 (gym's standard run reward); never terminates."""

    def _apply_task(self, params: dict[str, Any]) -> None:
        self._mask = params["mask"]

    def _reward(self, x_velocity: float, ctrl: np.ndarray) -> tuple[float, dict[str, float]]:
        ctrl_cost = 0.1 * float(np.square(ctrl).sum())
        return x_velocity - ctrl_cost, {"reward_run": x_velocity, "reward_ctrl": -ctrl_cost}


class AntNegatedJointsEnv(AntLocomotionEnv):
    """a <- mask * a; the ant-fb reward with direction 0 (forward x velocity, survive 1, ctrl 0.5)."""

    def _apply_task(self, params: dict[str, Any]) -> None:
        self._mask = params["mask"]


def _check_mask(size: int) -> Any:
    def check(params: Params) -> dict[str, Any]:
        check_keys(params, ("mask",))
        mask = check_vector(params, "mask", size, -1.0, 1.0)
        if not np.all(np.abs(mask) == 1.0):
            raise ValueError(
                f"task param mask={params['mask']!r} is not allowed; allowed: {size} values, each +1 or -1"
            )
        return {"mask": mask}

    return check


def _cheetah_vel_ood(name: str, train_range: tuple[float, float]) -> FamilySpec:
    return FamilySpec(
        name=name,
        options={**split_options(100, 30), "seed": seed_option(1337, "MIER's fixed np.random.seed"),
                 **horizon_option(200)},
        sample=_velocity_split(train_range), env_class=CheetahVelEnv, check=check_velocity,
        obs_dim=lambda _: CHEETAH_OBS_DIM, act_dim=6,
        reference="MIER russellmendonca/mier_public metalearning_envs/half_cheetah_vel.py task_set="
                  f"{'medium_OOD' if train_range[1] == 2.5 else 'hard_OOD'}, configs/envs/ood/{name}.json",
    )


FAMILIES = {
    "cheetah-vel-medium": _cheetah_vel_ood("cheetah-vel-medium", (0.0, 2.5)),
    "cheetah-vel-hard": _cheetah_vel_ood("cheetah-vel-hard", (0.0, 1.5)),
    "ant-dir-ood": FamilySpec(
        name="ant-dir-ood",
        options={**split_options(100, 10), "seed": seed_option(42, "MIER's fixed np.random.seed"),
                 **contact_option(), **horizon_option(200)},
        sample=sample_ood_directions, env_class=AntLocomotionEnv, check=check_angle,
        obs_dim=lambda _: LOCOMOTION_OBS_DIM, act_dim=8,
        reference="MIER russellmendonca/mier_public metalearning_envs/ant_dir.py task_mode='ood', "
                  "configs/envs/ood/ant-dir.json",
    ),
    "cheetah-negated-joints": FamilySpec(
        name="cheetah-negated-joints",
        options=horizon_option(200),
        sample=lambda _: negated_masks(6, 3, 2, 10), env_class=CheetahNegatedJointsEnv, check=_check_mask(6),
        obs_dim=lambda _: CHEETAH_OBS_DIM, act_dim=6,
        reference="MIER russellmendonca/mier_public metalearning_envs/half_cheetah_negated_joints.py (type='mask'), "
                  "configs/envs/ood/cheetah-negated-joints.json",
    ),
    "ant-negated-joints": FamilySpec(
        name="ant-negated-joints",
        options={**contact_option(), **horizon_option(200)},
        sample=lambda _: negated_masks(8, 4, 3, 15), env_class=AntNegatedJointsEnv, check=_check_mask(8),
        obs_dim=lambda _: LOCOMOTION_OBS_DIM, act_dim=8,
        reference="MIER russellmendonca/mier_public metalearning_envs/ant_negated_joints.py (35 train + 15 test, "
                  "as the env builds them), configs/envs/ood/ant-negated-joints.json",
    ),
}
