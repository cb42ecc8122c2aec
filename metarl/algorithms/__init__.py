"""The pure math of MQL (Fakoor et al., ICLR 2020): TD3 targets and losses, propensity scores, beta,
ESS and lambda, and the proximal term. No state, no side effects (``soft_update_`` aside).

PEARL's and MIER's pieces are imported from their modules (their names would be ambiguous here):
``metarl.algorithms.pearl`` (product of Gaussians, KL to the prior, reparameterised z) and
``metarl.algorithms.sac`` (SAC's V-form of PEARL, twin-Q form and temperature of MIER),
``metarl.algorithms.mier`` (MIER's model loss, context adaptation, meta-gradient and relabeling) and
``metarl.algorithms.mpc`` (random shooting and CEM over a learned model: GrBAL). The on-policy
pieces of RL² and MAML-PG likewise: ``metarl.algorithms.onpolicy`` (returns, linear baseline, GAE,
surrogates, Gaussian KL), ``metarl.algorithms.trpo`` (CG, Fisher-vector product, step scale, line
search) and ``metarl.algorithms.maml`` (inner step, meta-gradient through it, on ``torch.func``)."""

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
