"""MQLAdapt: MQL adaptation to a new task (paper §3.2, eqs. 2, 11-13, 18-19).

For one new task::

    collect one episode with the meta-trained policy (the new-task data D_new)
    fit the logistic classifier of eq. 11: D_new against recent meta-training data, on the context z
    lambda = 1 - ESS of the meta-training sample's beta (Remark 3), or a fixed value
    eq. 18: TD3 updates on D_new with the proximal term (lambda/2)||theta - theta_meta||^2
    eq. 19: TD3 updates on the meta-training replay, each sample weighted by its beta (clipped,
            Remark 4), with the same proximal term; lambda from each minibatch's ESS
    evaluate the adapted policy

The module is a copy: adapting never changes the MetaTrainModule it was built from.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from tensordict import TensorDictBase
from torch import Tensor

from metarl import keys
from metarl.algorithms.propensity import (
    LogisticFit,
    beta_from_logits,
    effective_sample_size,
    fit_logistic,
    prox_coef,
)
from metarl.data.replay import MultiTaskReplay, episode_to_replay
from metarl.methods.mql.settings import AdaptSettings, CollectSettings, TD3Settings
from metarl.methods.mql.td3_nets import TD3ContextNets
from metarl.nets.optim import adam
from metarl.training.module import AdaptModule


class MetaTrained(Protocol):
    """What adaptation reads from a meta-trained MQL module (MQLMetaTrain has all of it)."""

    adapt_cfg: AdaptSettings
    td3: TD3Settings
    collect_cfg: CollectSettings
    shared_encoder: bool
    obs_dim: int
    act_dim: int
    history_len: int
    replay: MultiTaskReplay
    device: torch.device

    def __getattr__(self, name: str) -> Any: ...  # the nets: actor, critic, their encoders and targets


@dataclass
class AdaptStats:
    """What one adaptation measured (logged as adapt/*)."""

    lambda_: float
    ess: float
    beta: Tensor  # the betas of the last eq. 19 minibatch (or of the classifier's meta sample)
    classifier_acc: float
    n_new: int
    lambdas: list[float] = field(default_factory=list)


class MQLAdapt(TD3ContextNets, AdaptModule):
    """A copy of a meta-trained module's nets that adapts to one new task."""

    def __init__(self, source: MetaTrained, settings: AdaptSettings | None = None, seed: int = 0) -> None:
        super().__init__()
        self.cfg = settings if settings is not None else source.adapt_cfg
        self.td3: TD3Settings = source.td3
        self.shared_encoder = source.shared_encoder
        self.obs_dim, self.act_dim = source.obs_dim, source.act_dim
        for name in ("actor", "critic", "critic_encoder", "actor_target", "critic_target", "critic_encoder_target"):
            setattr(self, name, copy.deepcopy(getattr(source, name)))
        if self.shared_encoder:
            self.actor_encoder, self.actor_encoder_target = self.critic_encoder, self.critic_encoder_target
        else:
            self.actor_encoder = copy.deepcopy(source.actor_encoder)
            self.actor_encoder_target = copy.deepcopy(source.actor_encoder_target)
        self.to(source.device)
        self.meta_replay = source.replay  # read only
        self.history_len = source.history_len
        self.snapshot_size = source.collect_cfg.snapshot_size
        self.anchor = self.anchor_params()  # theta_meta
        self.generator = torch.Generator().manual_seed(seed)

    # ----------------------------------------------------------------------------- eq. 11-13
    def _features(self, batch: TensorDictBase) -> Tensor:
        z = self.actor_encoder.features(batch[keys.HISTORY].to(self.device))
        if self.cfg.classifier_features == "obs_z":
            return torch.cat([batch[keys.OBS].to(self.device), z], dim=-1)
        return z

    def fit_classifier(self, new_data: MultiTaskReplay) -> tuple[LogisticFit, Tensor]:
        """Eq. 11 on D_new (all of it) against recent meta-training data; returns the fit and the
        meta sample's beta (for the first lambda)."""
        n_new = len(new_data)
        new_batch = new_data.sample(n_new, self.generator)
        # The reference draws int(n_new / n_tasks) + 2 recent transitions per meta-training task.
        n_tasks = self.meta_replay.n_tasks
        n_meta = n_tasks * (n_new // n_tasks + 2)
        meta_batch = self.meta_replay.sample(n_meta, self.generator, recent=self.snapshot_size)
        fit = fit_logistic(
            self._features(new_batch).double().cpu(), self._features(meta_batch).double().cpu(),
            C=self.cfg.classifier_C, max_iter=self.cfg.classifier_max_iter,
        )
        return fit, self.beta(fit, meta_batch)

    def beta(self, fit: LogisticFit, batch: TensorDictBase) -> Tensor:
        """Eq. 12 with the clip of Remark 4, on features from the *current* actor encoder."""
        logits = fit.logits(self._features(batch).double().cpu())
        return beta_from_logits(logits, self.cfg.beta_clip, self.cfg.beta_zero_below).float()

    def _lambda(self, beta: Tensor) -> tuple[float, float]:
        ess = float(effective_sample_size(beta))
        lam = float(prox_coef(ess)) if self.cfg.lambda_mode == "ess" else self.cfg.fixed_lambda
        return lam, ess

    # ----------------------------------------------------------------------------- eqs. 18-19
    def adapt(self, episode: TensorDictBase) -> AdaptStats:
        """Adapt to the task that produced ``episode`` (one episode of D_new, collector layout)."""
        cfg = self.cfg
        new_data = MultiTaskReplay(1, max(episode.shape[0], 1), self.obs_dim, self.act_dim, self.history_len)
        new_data.extend(episode_to_replay(episode, 0, 0))
        fit, beta = self.fit_classifier(new_data)
        lam, ess = self._lambda(beta)
        lambdas = [lam]
        opts = [
            adam(self._critic_side_params(), lr=cfg.lr),
            adam(self._actor_side_params(), lr=cfg.lr),
        ]
        n_new = len(new_data)
        for i in range(cfg.new_data_updates):
            batch = new_data.sample(n_new, self.generator).to(self.device)
            coef = lam if cfg.prox_on_new_data else None
            self._update(batch, i, opts, None, coef)
        for i in range(cfg.old_data_updates):
            batch = self.meta_replay.sample(cfg.old_data_batch, self.generator).to(self.device)
            beta = self.beta(fit, batch)
            lam, ess = self._lambda(beta)
            lambdas.append(lam)
            self._update(batch, i, opts, beta.to(self.device).unsqueeze(-1), lam)
        return AdaptStats(
            lambda_=sum(lambdas) / len(lambdas), ess=ess, beta=beta, classifier_acc=fit.accuracy,
            n_new=n_new, lambdas=lambdas,
        )

    def _update(
        self, batch: TensorDictBase, i: int, opts: list[torch.optim.Optimizer], weight: Tensor | None,
        coef: float | None,
    ) -> None:
        noise = torch.randn(batch.shape[0], self.act_dim, generator=self.generator).to(self.device)
        anchor = self.anchor if coef is not None else None
        self.td3_update(batch, i, opts[0], opts[1], self.td3, noise, weight, coef, anchor, self.cfg.prox_half)
