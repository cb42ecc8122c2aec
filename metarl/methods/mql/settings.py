"""MQL's hyperparameter groups: TD3, data collection, adaptation (sections of an MQL experiment YAML).
Defaults follow the paper; the released code's behaviours are options (see docs/fidelity.md)."""

from __future__ import annotations

from dataclasses import dataclass

LAMBDA_MODES = ("ess", "fixed")
FEATURES = ("z", "obs_z")


@dataclass(frozen=True)
class TD3Settings:
    """TD3 hyperparameters (Fujimoto et al. 2018; values per env in paper Table 1)."""

    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.3
    noise_clip: float = 0.5
    policy_freq: int = 2

    def validate(self) -> None:
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"td3.gamma must be in [0, 1], got {self.gamma}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"td3.tau must be in (0, 1], got {self.tau}")
        for name in ("policy_noise", "noise_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"td3.{name} must be >= 0, got {getattr(self, name)}")
        if self.policy_freq < 1:
            raise ValueError(f"td3.policy_freq must be >= 1, got {self.policy_freq}")


@dataclass(frozen=True)
class CollectSettings:
    """How data is gathered during meta-training (MQL reference §2.4-2.6)."""

    episodes_per_iter: int = 5  # reference `num_tasks_sample`
    expl_noise: float = 0.3  # paper Table 1 "TD3 exploration noise"
    cold_start_steps: int = 10_000  # reference: max(num_initial_steps * n_train, burn_in)
    cold_start_episode_len: int = 50  # reference: max_path_length / 4 during the cold start
    # [M] episodes stepped together during the cold start (one batched env): a speed knob only, the
    # data do not depend on it (metarl.data.cold_start); each costs one env in memory.
    cold_start_envs: int = 128
    min_replay_for_full_updates: int = 100_000  # reference `min_buffer_size`
    replay_size: int = 1_000_000  # reference `replay_size` (pooled over tasks)
    snapshot_size: int = 2000  # reference `snapshot_size`: recent per-task data for the classifier

    def validate(self) -> None:
        for name in ("episodes_per_iter", "replay_size", "snapshot_size", "cold_start_envs"):
            if getattr(self, name) < 1:
                raise ValueError(f"collect.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("cold_start_steps", "cold_start_episode_len", "min_replay_for_full_updates"):
            if getattr(self, name) < 0:
                raise ValueError(f"collect.{name} must be >= 0, got {getattr(self, name)}")
        if self.expl_noise < 0:
            raise ValueError(f"collect.expl_noise must be >= 0, got {self.expl_noise}")


@dataclass(frozen=True)
class AdaptSettings:
    """Adaptation to a new task (MQL §3.2, eqs. 11-13, 18-19)."""

    new_data_updates: int = 10  # paper Table 1 "Adaptation parameter updates per episode (eq. 18)"
    old_data_updates: int = 100  # paper Table 1 "... (eq. 19)"; 0 turns eq. 19 off (paper §4.3)
    old_data_batch: int = 1280  # reference: sample_mult (5) x 256
    beta_clip: float = 1.0  # paper Table 1 "beta clipping": beta <= exp(beta_clip), as the reference
    beta_zero_below: float = 0.1  # reference: beta < 0.1 is set to 0 (paper silent)
    classifier_C: float = 0.1  # inverse L2 strength of eq. 11 (reference `lam_csc`)
    classifier_features: str = "z"  # "z" (paper §3.2) or "obs_z" (reference `enable_beta_obs_cxt`)
    classifier_max_iter: int = 2000  # reference `max_iter_logistic`
    lambda_mode: str = "ess"  # "ess": lambda = 1 - ESS (paper Remark 3); "fixed": fixed_lambda
    fixed_lambda: float = 0.1  # the released code's constant `prox_coef`
    prox_half: bool = True  # paper: (lambda/2)||theta - theta_meta||^2; reference: no 1/2
    prox_on_new_data: bool = True  # paper: proximal term in eq. 18 too; reference: only in eq. 19
    lr: float = 1e-3  # reference: fresh Adam at PyTorch's default lr for adaptation (paper silent)

    def validate(self) -> None:
        for name in ("new_data_updates", "old_data_updates"):
            if getattr(self, name) < 0:
                raise ValueError(f"adapt.{name} must be >= 0, got {getattr(self, name)}")
        if self.old_data_batch < 1:
            raise ValueError(f"adapt.old_data_batch must be >= 1, got {self.old_data_batch}")
        if self.beta_clip <= 0:
            raise ValueError(f"adapt.beta_clip must be > 0, got {self.beta_clip}")
        if self.beta_zero_below < 0:
            raise ValueError(f"adapt.beta_zero_below must be >= 0, got {self.beta_zero_below}")
        if self.classifier_C <= 0:
            raise ValueError(f"adapt.classifier_C must be > 0, got {self.classifier_C}")
        if self.classifier_features not in FEATURES:
            raise ValueError(f"adapt.classifier_features must be one of {FEATURES}, got {self.classifier_features!r}")
        if self.lambda_mode not in LAMBDA_MODES:
            raise ValueError(f"adapt.lambda_mode must be one of {LAMBDA_MODES}, got {self.lambda_mode!r}")
        if not 0 <= self.fixed_lambda:
            raise ValueError(f"adapt.fixed_lambda must be >= 0, got {self.fixed_lambda}")
        if self.lr <= 0:
            raise ValueError(f"adapt.lr must be > 0, got {self.lr}")
