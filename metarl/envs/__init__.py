"""Meta-RL MuJoCo task families (PEARL / MQL / MIER) on gymnasium 1.x and MuJoCo 3+.

>>> fam = make_task_family("cheetah-vel")
>>> env = fam.make_env(fam.train_tasks[0])
>>> env.unwrapped.set_task(fam.eval_tasks[3])  # applied at the next reset

See docs/envs.md for every family and docs/fidelity.md for where they differ from the references.
"""

from metarl.envs.base import FAMILY_NAMES, Task, TaskFamily, make_task_family

__all__ = ["FAMILY_NAMES", "Task", "TaskFamily", "make_task_family"]
