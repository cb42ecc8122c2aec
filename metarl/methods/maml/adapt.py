"""MAMLAdapt: what adapting to a new task means for MAML-PG (Finn et al. 2017, §5.3; methods-reference
§5.1 step 9): K episodes with theta, one inner policy-gradient step (alpha) to phi, K episodes with phi.
``eval/return_pre_adapt`` is the mean return under theta, ``eval/return_post_adapt`` under phi."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metarl import keys
from metarl.data.rollouts import BatchedRollouts
from metarl.methods.maml.settings import MAMLSettings
from metarl.methods.maml.update import adapted_params, task_batches
from metarl.nets.gaussian_mlp import GaussianMLPPolicy, GroupActing
from metarl.training.module import AdaptModule


class MAMLAdapt(AdaptModule):
    """One inner step from the meta-trained theta on a new task. It holds the policy read-only: phi is a
    parameter dict (``functional_call``), the policy's own parameters never change."""

    def __init__(self, policy: GaussianMLPPolicy, settings: MAMLSettings) -> None:
        super().__init__()
        self.cfg = settings
        self.policy = policy

    def adapt(self, rollouts: BatchedRollouts, task: Any) -> tuple[float, float, dict[str, Tensor]]:
        """(mean return under theta, mean return under phi, phi) on ``task``; every env of ``rollouts``
        (whose policy is a :class:`GroupActing` of this policy) runs one episode of it per phase."""
        acting: GroupActing = rollouts.policy  # type: ignore[assignment]
        rollouts.set_tasks([task] * rollouts.n_envs)
        acting.params = None
        with torch.no_grad():
            pre = rollouts.collect()
        theta = {n: p.detach().requires_grad_(True) for n, p in self.policy.named_parameters()}
        cfg = self.cfg
        phi = {n: p.detach() for n, p in
               adapted_params(self.policy, theta, task_batches(pre, 1, cfg.gamma, cfg.gae_lambda, self.policy.device),
                              cfg)[0].items()}
        acting.params = [phi]
        try:
            with torch.no_grad():
                post = rollouts.collect()
        finally:
            acting.params = None
        n = rollouts.n_envs
        return float(pre[keys.REWARD].sum() / n), float(post[keys.REWARD].sum() / n), phi
