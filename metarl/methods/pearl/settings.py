"""PEARL's hyperparameter groups (sections of a PEARL experiment YAML). Defaults are oyster's
``configs/default.py`` (Rakelly et al. 2019, katerakelly/oyster); per-env values are in the configs."""

from __future__ import annotations

from dataclasses import dataclass


def _at_least(section: str, obj: object, names: tuple[str, ...], low: float) -> None:
    for name in names:
        if getattr(obj, name) < low:
            raise ValueError(f"{section}.{name} must be >= {low}, got {getattr(obj, name)}")


@dataclass(frozen=True)
class SACSettings:
    """The SAC of PEARL: V-function form, alpha fixed at 1 with the reward scale as temperature."""

    gamma: float = 0.99  # oyster `discount`
    tau: float = 0.005  # oyster `soft_target_tau` (config value; the class default is 1e-2)
    reward_scale: float = 5.0  # oyster `reward_scale` (100 for the point robots)
    policy_mean_reg: float = 1e-3  # oyster `policy_mean_reg_weight`
    policy_std_reg: float = 1e-3  # oyster `policy_std_reg_weight`
    policy_pre_activation_reg: float = 0.0  # oyster `policy_pre_activation_weight`

    def validate(self) -> None:
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"sac.gamma must be in [0, 1], got {self.gamma}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"sac.tau must be in (0, 1], got {self.tau}")
        if self.reward_scale <= 0:
            raise ValueError(f"sac.reward_scale must be > 0, got {self.reward_scale}")
        _at_least("sac", self, ("policy_mean_reg", "policy_std_reg", "policy_pre_activation_reg"), 0)


@dataclass(frozen=True)
class PEARLCollectSettings:
    """Data collection per iteration (oyster ``rl_algorithm.py`` ``train`` / ``collect_data``)."""

    num_initial_steps: int = 2000  # per train task, z ~ prior, before the first update (both buffers)
    num_tasks_sample: int = 5  # task visits per iteration, drawn uniformly with replacement
    num_steps_prior: int = 400  # per visit, z ~ prior: RL and encoder buffers
    num_steps_posterior: int = 0  # per visit, z ~ posterior: RL and encoder buffers
    num_extra_rl_steps_posterior: int = 400  # per visit, z ~ posterior: RL buffer only
    update_post_train: int = 1  # trajectories between posterior updates while collecting
    replay_size: int = 1_000_000  # RL replay, pooled over train tasks ([M]; oyster: 1e6 per task)

    def validate(self) -> None:
        # Every task's encoder buffer must hold data before the first update draws it.
        _at_least("collect", self, ("num_initial_steps", "num_tasks_sample", "update_post_train", "replay_size"), 1)
        _at_least("collect", self, ("num_steps_prior", "num_steps_posterior",
                                    "num_extra_rl_steps_posterior"), 0)
        if self.num_steps_prior + self.num_steps_posterior + self.num_extra_rl_steps_posterior < 1:
            raise ValueError("collect: num_steps_prior + num_steps_posterior + num_extra_rl_steps_posterior must "
                             "be >= 1 (an iteration must collect something)")

    @property
    def steps_per_visit(self) -> int:
        return self.num_steps_prior + self.num_steps_posterior + self.num_extra_rl_steps_posterior


@dataclass(frozen=True)
class PEARLAdaptSettings:
    """Adaptation at meta-test time = posterior inference from the task's own transitions
    (oyster ``collect_paths``)."""

    num_steps_per_eval: int = 600  # transitions per run of the protocol (whole trajectories)
    num_exp_traj_eval: int = 1  # trajectories with z ~ prior before the posterior is used

    def validate(self) -> None:
        _at_least("adapt", self, ("num_steps_per_eval", "num_exp_traj_eval"), 1)
