"""The pure math of MQL (Fakoor et al., ICLR 2020): TD3 targets and losses, propensity scores, beta,
ESS and lambda, and the proximal term. No state, no side effects (``soft_update_`` aside)."""

from metarl.algorithms.propensity import (
    LogisticFit,
    beta_from_logits,
    effective_sample_size,
    fit_logistic,
    prox_coef,
)
from metarl.algorithms.proximal import proximal_penalty
from metarl.algorithms.td3 import (
    actor_loss,
    critic_loss,
    smooth_target_action,
    soft_update_,
    td3_target,
)

__all__ = [
    "LogisticFit",
    "actor_loss",
    "beta_from_logits",
    "critic_loss",
    "effective_sample_size",
    "fit_logistic",
    "prox_coef",
    "proximal_penalty",
    "smooth_target_action",
    "soft_update_",
    "td3_target",
]
