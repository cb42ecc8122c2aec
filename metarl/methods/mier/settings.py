"""MIER's hyperparameter groups (sections of a MIER experiment YAML). Defaults are mier_public's
``configs/default.py`` and ``configs/exps/*.json`` (Mendonca et al. 2020, russellmendonca/mier_public);
per-env values are in the configs."""

from __future__ import annotations

import math
from dataclasses import dataclass


def _at_least(section: str, obj: object, names: tuple[str, ...], low: float) -> None:
    for name in names:
        if getattr(obj, name) < low:
            raise ValueError(f"{section}.{name} must be >= {low}, got {getattr(obj, name)}")


@dataclass(frozen=True)
class SACv2Settings:
    """MIER's SAC (softlearning port): twin Q, no V net, learned temperature."""

    gamma: float = 0.99  # sac_hyperparams discount_factor
    tau: float = 0.005  # target_update_rate (target_update_interval 1)
    reward_scale: float = 1.0  # sac_reward_scale
    target_entropy: float = -1.0  # target_entropy: -1 for every env, not -dim(A)
    alpha_lr: float = 3e-4  # softlearning's alpha lr = the policy lr
    log_alpha_init: float = 0.0  # softlearning initialises log alpha at 0; the config's -1 is unused

    def validate(self) -> None:
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"sac.gamma must be in [0, 1], got {self.gamma}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"sac.tau must be in (0, 1], got {self.tau}")
        if not (self.reward_scale > 0 and self.alpha_lr > 0):
            raise ValueError(f"sac.reward_scale and sac.alpha_lr must be > 0, got {self.reward_scale}, "
                             f"{self.alpha_lr}")
        if not (math.isfinite(self.target_entropy) and math.isfinite(self.log_alpha_init)):
            raise ValueError("sac.target_entropy and sac.log_alpha_init must be finite")


@dataclass(frozen=True)
class MIERCollectSettings:
    """Data collection per iteration (mier_public ``mier.py`` ``train`` / ``collect_data_for_metatraining``)."""

    initial_exploration_repeats: int = 1  # x num_steps_prior per train task with phi_0, before the first update
    num_tasks_sample: int = 5  # task visits per iteration, drawn uniformly with replacement
    num_steps_prior: int = 400  # per visit, context phi_0: replay and pre-adaptation buffer
    num_steps_updated_context: int = 600  # per visit, context phi_T (adapted on the prior data): replay only
    replay_size: int = 1_000_000  # replay, pooled over train tasks ([M]; mier_public: 1e6 per task)

    def validate(self) -> None:
        _at_least("collect", self, ("initial_exploration_repeats", "num_tasks_sample", "num_steps_prior",
                                    "replay_size"), 1)
        _at_least("collect", self, ("num_steps_updated_context",), 0)

    @property
    def steps_per_visit(self) -> int:
        return self.num_steps_prior + self.num_steps_updated_context


@dataclass(frozen=True)
class MIERAdaptSettings:
    """Meta-test adaptation. ``relabel: false`` is MIER-wR (mier_public ``eval_during_training``: the
    context steps of meta-training on the new task's phi_0 data, then act); ``relabel: true`` is MIER's
    extrapolation (Algorithm 2, ``mier.py`` ``extrapolate``): more context steps, model fine-tuning,
    cross-task relabeling and SAC on the relabeled data."""

    relabel: bool = False
    context_steps: int = 10  # num_fast_adapt_steps_for_context (relabel only; MIER-wR: the model's)
    context_lr_first: float = 0.01  # fast_adapt_lr for the first `model.context_steps` steps ...
    context_lr_rest: float = 0.001  # ... then this (fast_adapt_model)
    model_steps: int = 100  # num_extra_fast_adapt_steps_for_model (Adam on all model weights, phi fixed)
    train_fraction: float = 0.8  # train_val_ratio: the model fine-tunes on this part of the new data
    epochs: int = 10  # num_extrapol_epochs
    sac_steps_per_epoch: int = 1000  # num_sac_steps_per_epoch
    sac_repeats: int = 2  # num_sac_repeat_steps_for_extrapol: SAC updates per step
    relabel_interval: int = 250  # relabelling_interval: steps between refills of the model buffer
    num_cross_tasks: int = 20  # num_cross_tasks_for_relabelling
    rollout_batch_size: int = 100_000  # relabeled transitions per refill, split over the cross tasks
    model_buffer_size: int = 1_000_000  # replay_buffer_max_sample_size: the relabeled transitions kept
    real_ratio: float = 0.05  # model_real_ratio: share of the new task's data in a SAC batch
    sac_batch_size: int = 256  # batch_size (extrapolation's SAC batch)
    off_policy_relabel: bool = True  # reward-only relabeling (families whose tasks differ in reward only)
    relabel_during_fit: bool = False  # [M] fit's validation runs MIER-wR's protocol unless true; `test` relabels

    def validate(self) -> None:
        _at_least("adapt", self, ("context_steps", "epochs", "sac_repeats", "relabel_interval", "num_cross_tasks",
                                  "rollout_batch_size", "model_buffer_size", "sac_batch_size"), 1)
        _at_least("adapt", self, ("model_steps", "sac_steps_per_epoch"), 0)
        if not (self.context_lr_first > 0 and self.context_lr_rest > 0):
            raise ValueError("adapt.context_lr_first and adapt.context_lr_rest must be > 0")
        for name in ("train_fraction", "real_ratio"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"adapt.{name} must be in (0, 1], got {getattr(self, name)}")
