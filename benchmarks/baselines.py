"""Reference returns without learning, to read a learning curve against (computed, not logged).

For the point robot (dense reward −‖p − goal‖ over 20 steps, p ← p + 0.1·clip(a)), on the eval tasks
from the eval env's random starts:

- ``no action``: stay at the start (random actions score about the same);
- ``go to the centre``: the best a policy that ignores the task can roughly do (the goals are
  uniform on the square);
- ``oracle``: moves straight at the true goal, the upper bound a meta-learner approaches once it
  has inferred the goal.

For point-robot-rotated (the action rotated by the task's angle, the goal at the origin): no action
and an oracle that knows the angle.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np

Policy = Callable[[np.ndarray], np.ndarray]
PolicyFor = Callable[[dict], Policy]  # a task's params -> the policy that acts on it
STEP = 0.1  # metarl.envs.point.MAX_STEP: an action of 1 moves 0.1


def _mean_return(family_name: str, policy_for: PolicyFor, starts_per_task: int, seed: int,
                 **options: object) -> float:
    from metarl.envs import make_task_family

    family = make_task_family(family_name, **options)
    returns = []
    for task in family.eval_tasks:
        env = family.make_env(task, evaluation=True)
        env.reset(seed=seed)
        policy = policy_for(task.params)
        for _ in range(starts_per_task):
            obs, _ = env.reset()
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy(obs).astype(np.float32))
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
    return statistics.fmean(returns)


def _stay(params: dict) -> Policy:
    return lambda obs: np.zeros(2)


def point_robot(starts_per_task: int = 20, seed: int = 0, family: str = "point-robot",
                centre: tuple[float, float] = (0.0, 0.0), **options: object) -> dict[str, float]:
    """The three policies on ``family``'s eval tasks (``options``: its options, e.g. point-robot-ood's
    ``eval_split``); the task-blind one heads for ``centre``, the centre of the training goals."""

    def toward(target: np.ndarray | None) -> PolicyFor:
        def policy_for(params: dict) -> Policy:
            goal = np.asarray(params["goal"]) if target is None else target
            return lambda obs: np.clip((goal - obs) / STEP, -1.0, 1.0)

        return policy_for

    def score(policy_for: PolicyFor) -> float:
        return _mean_return(family, policy_for, starts_per_task, seed, **options)

    blind = "go to the centre (ignores the task)" if centre == (0.0, 0.0) else \
        f"go to the train goals' centre {centre} (ignores the task)"
    return {"no action": score(_stay), blind: score(toward(np.asarray(centre))),
            "oracle (knows the goal)": score(toward(None))}


def point_robot_rotated(starts_per_task: int = 20, seed: int = 0) -> dict[str, float]:
    """point-robot-rotated (p ← p + 0.1·R(angle)·clip(a), r = −‖p‖): ``no action`` is the best policy
    that ignores the task (on average over the angles an action moves nowhere, and any move away from
    the straight line costs), the oracle knows the angle and heads for the origin."""

    def oracle(params: dict) -> Policy:
        c, s = np.cos(params["angle"]), np.sin(params["angle"])
        inverse = np.array([[c, s], [-s, c]])
        # Scaled (not clipped) into the action box, so the rotated move points at the origin.
        return lambda obs: (a := inverse @ (-obs / STEP)) / max(1.0, float(np.abs(a).max()))

    return {"no action (ignores the task)": _mean_return("point-robot-rotated", _stay, starts_per_task, seed),
            "oracle (knows the angle)": _mean_return("point-robot-rotated", oracle, starts_per_task, seed)}


#: Config name -> its eval tasks' fixed policies (the same tasks for every method on one family).
BASELINES: dict[str, Callable[[], dict[str, float]]] = {
    "point_robot": point_robot, "mier_point_robot": point_robot, "maml_model_point_robot_rotated": point_robot_rotated}
