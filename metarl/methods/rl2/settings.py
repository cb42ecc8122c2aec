"""RL²'s hyperparameter groups (sections of an RL² experiment YAML). Defaults are the point-robot
values of methods-reference §8.4 (ProMP ``rl2_run_sweep.py`` / garage ``rl2_ppo_halfcheetah.py``);
per-env values, each with its source, are in the configs."""

from __future__ import annotations

from dataclasses import dataclass

OUTER_ALGORITHMS = ("ppo", "trpo")
BOUNDARIES = ("paper", "zeros")


@dataclass(frozen=True)
class TrialSettings:
    """What one iteration collects: ``tasks_per_iter`` trials (one per env of one batched env), each of
    ``episodes_per_trial`` episodes of one train task."""

    tasks_per_iter: int = 64  # trials per iteration (ProMP: 100 tasks; garage: 10)
    episodes_per_trial: int = 2  # N (ProMP full_code and VariBAD: 2; garage's example: 4)
    boundary: str = "paper"  # inner boundary input: "paper" (last a, r and d = 1) or "zeros" (garage/ProMP)

    def validate(self) -> None:
        if self.tasks_per_iter < 1:
            raise ValueError(f"trial.tasks_per_iter must be >= 1, got {self.tasks_per_iter}")
        if self.episodes_per_trial < 1:
            raise ValueError(f"trial.episodes_per_trial must be >= 1, got {self.episodes_per_trial}")
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"trial.boundary must be one of {', '.join(BOUNDARIES)}, got {self.boundary!r}")


@dataclass(frozen=True)
class OuterSettings:
    """The outer (policy) update on a batch of trials: PPO by default, TRPO as an option."""

    algorithm: str = "ppo"  # "ppo" (ProMP / garage RL2PPO) or "trpo" (garage rl2_trpo_halfcheetah.py)
    gamma: float = 0.99  # ProMP and garage
    gae_lambda: float = 0.95  # garage RL2PPO (ProMP: 1.0)
    normalize_advantages: bool = True  # ProMP (garage's example: center_adv=False)
    # PPO
    clip_eps: float = 0.2  # ProMP and garage's example (the RL2PPO class default 0.01 is a trap)
    epochs: int = 5  # ProMP (garage: 10)
    minibatches: int = 1  # ProMP: 1 (garage: minibatches of 32 trials)
    entropy_coef: float = 0.0  # ProMP: none (garage: 0.02 "max" entropy, in the reward)
    # TRPO
    max_kl: float = 0.01  # garage / TRPO
    cg_iters: int = 10
    cg_damping: float = 1e-5
    backtrack_ratio: float = 0.8
    max_backtracks: int = 15

    def validate(self) -> None:
        if self.algorithm not in OUTER_ALGORITHMS:
            raise ValueError(f"outer.algorithm must be one of {', '.join(OUTER_ALGORITHMS)}, got {self.algorithm!r}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"outer.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("clip_eps", "max_kl", "cg_damping"):
            if not getattr(self, name) > 0:
                raise ValueError(f"outer.{name} must be > 0, got {getattr(self, name)}")
        for name in ("epochs", "minibatches", "cg_iters", "max_backtracks"):
            if getattr(self, name) < 1:
                raise ValueError(f"outer.{name} must be >= 1, got {getattr(self, name)}")
        if self.entropy_coef < 0:
            raise ValueError(f"outer.entropy_coef must be >= 0, got {self.entropy_coef}")
        if not 0.0 < self.backtrack_ratio < 1.0:
            raise ValueError(f"outer.backtrack_ratio must be in (0, 1), got {self.backtrack_ratio}")


@dataclass(frozen=True)
class RL2AdaptSettings:
    """Meta-test: one trial per run on the eval task from a zero hidden state, no parameter update."""

    deterministic: bool = False  # False: sample actions (exploration is the policy's; garage samples)

    def validate(self) -> None:
        pass
