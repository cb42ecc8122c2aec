"""The settings every method shares: the ``model.init_args.eval`` section of an experiment YAML."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EvalSettings:
    """The validation loop: the meta-test protocol on held-out tasks every ``every_env_steps``."""

    every_env_steps: int = 10_000  # reference `eval_freq` (MQL), one epoch of PEARL's
    num_tasks: int | None = None  # None: every eval task; else the first k (adaptation is costly)
    episodes: int = 2  # reference `num_evals` (configs/pearl_envs.json): repeats of the protocol
    adapt: bool = True  # False: the return without adaptation (MQL: TD3-context, paper §4.3)
    at_start: bool = True  # also evaluate before any update, at env step 0 (both reference codes do)
    # Family options that change the eval tasks only (e.g. point-robot-ood's eval_split "in"); unlike
    # family_overrides, they apply to a trained checkpoint's meta-test.
    family_overrides: dict[str, Any] | None = None

    def validate(self) -> None:
        if self.every_env_steps < 1:
            raise ValueError(f"eval.every_env_steps must be >= 1, got {self.every_env_steps}")
        if self.num_tasks is not None and self.num_tasks < 1:
            raise ValueError(f"eval.num_tasks must be >= 1 or null, got {self.num_tasks}")
        if self.episodes < 1:
            raise ValueError(f"eval.episodes must be >= 1, got {self.episodes}")
