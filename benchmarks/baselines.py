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


def _mean_return(family_name: str, policy: Policy, starts_per_task: int, seed: int) -> float:
    from metarl.envs import make_task_family

    family = make_task_family(family_name)
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


def point_robot(starts_per_task: int = 20, seed: int = 0) -> dict[str, float]:
    step = 0.1  # metarl.envs.point.MAX_STEP: an action of 1 moves 0.1

    def toward(target: np.ndarray | None) -> Policy:
        return lambda obs, goal: np.clip(((goal if target is None else target) - obs) / step, -1.0, 1.0)

    return {
        "no action": _mean_return("point-robot", lambda obs, goal: np.zeros(2), starts_per_task, seed),
        "go to the centre (ignores the task)": _mean_return("point-robot", toward(np.zeros(2)), starts_per_task,
                                                             seed),
        "oracle (knows the goal)": _mean_return("point-robot", toward(None), starts_per_task, seed),
    }


BASELINES: dict[str, Callable[[], dict[str, float]]] = {"point_robot": point_robot}
