"""MAML-PG's hyperparameter groups. Defaults are the point-robot check of methods-reference §8.4 (ProMP
``trpo_run_sweep.py`` / pytorch-maml-rl values); per-env values with sources are in the configs."""

from __future__ import annotations

from dataclasses import dataclass

INNER_OBJECTIVES = ("lvc", "log_likelihood")
OUTER_ALGORITHMS = ("trpo", "ppo")


@dataclass(frozen=True)
class MAMLSettings:
    """One iteration: ``tasks_per_iter`` tasks x ``episodes_per_task`` episodes, before and after the
    inner step; then one outer TRPO step."""

    tasks_per_iter: int = 20  # M (ProMP / pytorch-maml-rl 40; garage 20)
    episodes_per_task: int = 20  # K (ProMP / pytorch-maml-rl 20)
    inner_lr: float = 0.1  # alpha (every reference)
    inner_objective: str = "lvc"  # ProMP's LVC ("log_likelihood": garage / ProMP MAML)
    first_order: bool = False  # True: FOMAML (no Hessian through the inner step)
    gamma: float = 0.99
    gae_lambda: float = 1.0  # advantages R_t - b(s_t)
    outer: str = "trpo"  # MAML-TRPO (ProMP / pytorch-maml-rl); "ppo": garage MAMLPPO
    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    backtrack_ratio: float = 0.8
    max_backtracks: int = 15
    # PPO option (garage MAMLPPO: clip 0.5, Adam 1e-3; ProMP: 5 optimisation steps per batch)
    ppo_clip: float = 0.5
    ppo_lr: float = 1e-3
    ppo_steps: int = 5

    def validate(self) -> None:
        if self.outer not in OUTER_ALGORITHMS:
            raise ValueError(f"maml.outer must be one of {', '.join(OUTER_ALGORITHMS)}, got {self.outer!r}")
        for name in ("tasks_per_iter", "episodes_per_task", "cg_iters", "max_backtracks", "ppo_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"maml.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("inner_lr", "max_kl", "cg_damping", "ppo_clip", "ppo_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"maml.{name} must be > 0, got {getattr(self, name)}")
        if self.inner_objective not in INNER_OBJECTIVES:
            raise ValueError(f"maml.inner_objective must be one of {', '.join(INNER_OBJECTIVES)}, "
                             f"got {self.inner_objective!r}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"maml.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.backtrack_ratio < 1.0:
            raise ValueError(f"maml.backtrack_ratio must be in (0, 1), got {self.backtrack_ratio}")
