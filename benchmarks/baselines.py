"""Reference returns without learning, to read a learning curve against (computed, not logged).

For the point robot (dense reward −‖p − goal‖ over 20 steps, p ← p + 0.1·clip(a)), on the eval tasks
from the eval env's random starts:

- ``no action``: stay at the start (random actions score about the same);
- ``go to the centre``: the best a policy that ignores the task can roughly do (the goals are
  uniform on the square);
- ``oracle``: moves straight at the true goal, the upper bound a meta-learner approaches once it
  has inferred the goal.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np

Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _mean_return(family_name: str, policy: Policy, starts_per_task: int, seed: int, **options: object) -> float:
    from metarl.envs import make_task_family

    family = make_task_family(family_name, **options)
    returns = []
    for task in family.eval_tasks:
        env = family.make_env(task, evaluation=True)
        env.reset(seed=seed)
        goal = np.asarray(task.params["goal"])
        for _ in range(starts_per_task):
            obs, _ = env.reset()
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy(obs, goal).astype(np.float32))
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
    return statistics.fmean(returns)


def point_robot(starts_per_task: int = 20, seed: int = 0, family: str = "point-robot",
                centre: tuple[float, float] = (0.0, 0.0), **options: object) -> dict[str, float]:
    """The three policies on ``family``'s eval tasks (``options``: its options, e.g. point-robot-ood's
    ``eval_split``); the task-blind one heads for ``centre``, the centre of the training goals."""
    step = 0.1  # metarl.envs.point.MAX_STEP: an action of 1 moves 0.1

    def toward(target: np.ndarray | None) -> Policy:
        return lambda obs, goal: np.clip(((goal if target is None else target) - obs) / step, -1.0, 1.0)

    def score(policy: Policy) -> float:
        return _mean_return(family, policy, starts_per_task, seed, **options)

    blind = "go to the centre (ignores the task)" if centre == (0.0, 0.0) else \
        f"go to the train goals' centre {centre} (ignores the task)"
    return {"no action": score(lambda obs, goal: np.zeros(2)), blind: score(toward(np.asarray(centre))),
            "oracle (knows the goal)": score(toward(None))}


BASELINES: dict[str, Callable[[], dict[str, float]]] = {"point_robot": point_robot}
