"""Tasks, task families, the family registry and the task switching every metarl env shares.

Nothing here imports MuJoCo: ``import metarl.envs`` stays cheap, and a family's module (which
imports gymnasium's MuJoCo envs) is imported the first time that family is asked for.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import gymnasium as gym

# The public order: the MQL/PEARL benchmarks first, then MIER's out-of-distribution splits, then metarl's.
FAMILY_NAMES: tuple[str, ...] = (
    "ant-fb", "ant-goal", "cheetah-fb", "cheetah-vel", "humanoid-dir", "walker-params",
    "point-robot", "sparse-point-robot", "cheetah-vel-medium", "cheetah-vel-hard", "ant-dir-ood",
    "cheetah-negated-joints", "ant-negated-joints", "point-robot-ood", "point-robot-rotated",
)
_MODULE_OF: dict[str, str] = {
    "ant-fb": "ant", "ant-goal": "ant", "cheetah-fb": "cheetah", "cheetah-vel": "cheetah",
    "humanoid-dir": "humanoid", "walker-params": "walker", "point-robot": "point",
    "sparse-point-robot": "point", "cheetah-vel-medium": "ood", "cheetah-vel-hard": "ood",
    "ant-dir-ood": "ood", "cheetah-negated-joints": "ood", "ant-negated-joints": "ood",
    # metarl's own: no MuJoCo, so they live with the point robots (point-robot-ood is not in ood.py)
    "point-robot-ood": "point", "point-robot-rotated": "point",
}

TWO_PI = 2.0 * math.pi  # the direction and angle families' range [0, 2 pi]

Params = Mapping[str, Any]
ParamCheck = Callable[[Params], dict[str, Any]]


@dataclass(frozen=True)
class Task:
    """One task of a family: its position in its split list, the split, and the task parameters
    (JSON-serializable: floats and tuples of floats). ``family`` lets an env refuse a task of
    another family whose parameters happen to look valid (e.g. two direction families)."""

    index: int
    split: str
    params: dict[str, Any]
    family: str = ""


# ---------------------------------------------------------------------------------------------
# Overrides: each family declares the overrides it accepts, with the reference value as default.


@dataclass(frozen=True)
class Option:
    default: Any
    check: Callable[[str, Any], Any]
    doc: str


def int_at_least(lowest: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
            raise ValueError(f"override {name} must be an int >= {lowest}, got {value!r}")
        return int(value)

    return check


def positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"override {name} must be a finite float > 0, got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"override {name} must be true or false, got {value!r}")
    return bool(value)


def one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"override {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return str(value)

    return check


def seed_option(default: int, doc: str) -> Option:
    return Option(default, int_at_least(0), doc)


def split_options(n_train: int, n_eval: int) -> dict[str, Option]:
    return {
        "n_train_tasks": Option(n_train, int_at_least(1), "number of meta-training tasks"),
        "n_eval_tasks": Option(n_eval, int_at_least(1), "number of held-out evaluation tasks"),
    }


def contact_option() -> dict[str, Option]:
    return {"zero_contact_forces": Option(True, boolean, "cfrc_ext as the references' MuJoCo 2.0 returned it: zeros")}


def horizon_option(default: int) -> dict[str, Option]:
    return {"max_episode_steps": Option(default, int_at_least(1), "TimeLimit truncation length")}


# ---------------------------------------------------------------------------------------------
# Task-parameter checks: they return the values an env uses, or raise naming what is allowed.


def check_keys(params: Any, keys: Sequence[str]) -> None:
    if not isinstance(params, Mapping):
        raise ValueError(f"task params must be a dict with keys {list(keys)}, got {type(params).__name__}")
    if set(params) != set(keys):
        raise ValueError(f"task params must have exactly the keys {list(keys)}, got {sorted(params)}")


def check_real(params: Params, key: str, low: float, high: float) -> float:
    value = params[key]
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not low <= float(value) <= high:
        raise ValueError(f"task param {key}={value!r} is out of range; allowed: a float in [{low:g}, {high:g}]")
    return float(value)


def check_choice(params: Params, key: str, choices: Sequence[float]) -> float:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or value not in choices:
        raise ValueError(f"task param {key}={value!r} is not allowed; allowed: one of {list(choices)}")
    return float(value)


def check_vector(params: Params, key: str, size: int, low: float, high: float) -> np.ndarray:
    value = params[key]
    try:
        vec = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        vec = np.empty(0)
    if vec.shape != (size,) or not np.all((vec >= low) & (vec <= high)):
        raise ValueError(
            f"task param {key}={value!r} is out of range; allowed: {size} floats, each in [{low:g}, {high:g}]"
        )
    return vec


# ---------------------------------------------------------------------------------------------
# Families.


@dataclass(frozen=True)
class FamilySpec:
    """What a family module declares; ``make_task_family`` turns it into a TaskFamily."""

    name: str
    options: Mapping[str, Option]
    sample: Callable[[Mapping[str, Any]], tuple[list[dict[str, Any]], list[dict[str, Any]]]]
    env_class: Callable[..., gym.Env]
    check: ParamCheck
    obs_dim: Callable[[Mapping[str, Any]], int]
    act_dim: int
    reference: str
    # r(s, a, s') on tensors when no task parameter enters the reward (only the dynamics vary): what
    # GrBAL's planner takes (``env.reward``). None: the reward depends on the task.
    reward_fn: Callable[[Any, Any, Any], Any] | None = None


def family_spec(name: str) -> FamilySpec:
    if name not in _MODULE_OF:
        close = difflib.get_close_matches(name, FAMILY_NAMES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown task family {name!r}; {hint}known families: {', '.join(FAMILY_NAMES)}")
    module = importlib.import_module(f"metarl.envs.{_MODULE_OF[name]}")
    return module.FAMILIES[name]


class TaskFamily:
    """A task family with its fixed train and eval task lists (see ``make_task_family``)."""

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        spec = family_spec(name)
        self.name = name
        self.options: dict[str, Any] = dict(options)
        self.reference = spec.reference
        self.max_episode_steps: int = int(self.options["max_episode_steps"])
        self.obs_dim: int = spec.obs_dim(self.options)
        self.act_dim: int = spec.act_dim
        self.reward_fn = spec.reward_fn
        train, evals = spec.sample(self.options)
        self.train_tasks: list[Task] = [Task(i, "train", p, name) for i, p in enumerate(train)]
        self.eval_tasks: list[Task] = [Task(i, "eval", p, name) for i, p in enumerate(evals)]

    def make_env(self, task: Task, evaluation: bool = False) -> gym.Env:
        """A fresh env running ``task``, truncated (never terminated) at ``max_episode_steps``."""
        from gymnasium.wrappers import TimeLimit

        raw = make_raw_env(self.name, self.options, dataclasses.asdict(check_task(self.name, task)), evaluation)
        return TimeLimit(raw, self.max_episode_steps)

    def __repr__(self) -> str:
        return (f"TaskFamily({self.name!r}, train={len(self.train_tasks)}, eval={len(self.eval_tasks)}, "
                f"obs_dim={self.obs_dim}, act_dim={self.act_dim}, options={self.options})")


def make_task_family(name: str, **overrides: Any) -> TaskFamily:
    """The family ``name`` (one of ``FAMILY_NAMES``) with its reference defaults, changed by the
    family's documented ``overrides`` (see docs/envs.md)."""
    spec = family_spec(name)
    unknown = sorted(set(overrides) - set(spec.options))
    if unknown:
        raise ValueError(
            f"task family {name!r} has no override {', '.join(map(repr, unknown))}; "
            f"allowed overrides: {', '.join(spec.options) or 'none'}"
        )
    options = {key: opt.default for key, opt in spec.options.items()}
    for key, value in overrides.items():
        try:
            options[key] = spec.options[key].check(key, value)
        except ValueError as err:
            raise ValueError(f"task family {name!r}: {err}") from None
    return TaskFamily(name, options)


def check_task(family: str, task: Any) -> Task:
    """``task`` if it is a valid task of ``family``; a ValueError naming the problem otherwise."""
    if not isinstance(task, Task):
        raise ValueError(f"{family}: expected a metarl.envs.Task, got {type(task).__name__}")
    if task.family and task.family != family:
        raise ValueError(f"{family}: the task is from family {task.family!r}; this env runs {family!r}")
    if task.split not in ("train", "eval"):
        raise ValueError(f"{family}: task split {task.split!r} is not allowed; allowed: 'train', 'eval'")
    try:
        family_spec(family).check(task.params)
    except (ValueError, KeyError) as err:
        raise ValueError(f"{family}: {err}") from None
    return task


def make_raw_env(
    family: str, options: Mapping[str, Any], task: Mapping[str, Any], evaluation: bool = False,
    render_mode: str | None = None,
) -> gym.Env:
    """The unwrapped env; also the entry point of its ``spec``, so ``env.spec.make()`` rebuilds it."""
    from gymnasium.envs.registration import EnvSpec

    spec = family_spec(family)
    env = spec.env_class(family=family, task=Task(**task), options=options, evaluation=evaluation,
                         render_mode=render_mode)
    env.spec = EnvSpec(
        id=f"metarl/{family}-v0", entry_point=make_raw_env, max_episode_steps=int(options["max_episode_steps"]),
        kwargs={"family": family, "options": dict(options), "task": dict(task), "evaluation": evaluation},
    )
    return env


class TaskEnvMixin:
    """Task switching for metarl envs: ``set_task`` validates at once and applies at the next reset,
    so an episode never changes task half-way."""

    family_name: str
    evaluation: bool
    _task: Task
    _pending: dict[str, Any] | None

    def _init_task(self, family: str, task: Task, evaluation: bool) -> None:
        self.family_name = family
        self.evaluation = bool(evaluation)
        self._check: ParamCheck = family_spec(family).check
        self.set_task(task)
        self._apply_pending()

    @property
    def task(self) -> Task:
        """The task set last: the one the current episode runs, or the next reset will start."""
        return self._task

    def set_task(self, task: Task) -> None:
        check_task(self.family_name, task)
        self._pending = self._check(task.params)
        self._task = task

    def _apply_pending(self) -> None:
        if self._pending is not None:
            self._apply_task(self._pending)
            self._pending = None

    def _apply_task(self, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self._apply_pending()
        return super().reset(seed=seed, options=options)  # type: ignore[misc]
