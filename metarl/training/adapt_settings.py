"""Adaptation hyperparameters (MQL §3.2). Defaults follow the paper; the released code's
behaviours are options (see docs/fidelity.md)."""

from __future__ import annotations

from dataclasses import dataclass

LAMBDA_MODES = ("ess", "fixed")
FEATURES = ("z", "obs_z")


@dataclass(frozen=True)
class AdaptSettings:
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
