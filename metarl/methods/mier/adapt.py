"""MIERAdapt: what adapting to a new task means for MIER (Mendonca et al. 2020, §4-5, Algorithm 2;
mier_public ``mier.py`` ``eval_during_training``, ``extrapolate``, ``fast_adapt_model``).

Model identification: φ_T = context steps (eq. 3) from φ₀ on the new task's data, collected with φ₀;
the policy then acts on [s, φ_T]. MIER-wR stops there. MIER (``relabel: true``, extrapolation) also

* takes ``context_steps`` steps (lr ``context_lr_first`` for the model's own number of steps, then
  ``context_lr_rest``) on a random ``train_fraction`` of the data, then ``model_steps`` Adam steps on
  all model weights with φ_T fixed;
* relabels transitions of ``num_cross_tasks`` meta-training tasks with the adapted model at φ_T
  (eq. 6): reward only (``off_policy_relabel``: s, a, s' kept) or a' ~ π(· | s, φ_T) and (s', r)
  sampled;
* continues SAC on batches of ``real_ratio`` new-task data and relabeled data, on [s, φ_T].

The adapter works on copies (adapting never changes the meta-trained module). All randomness comes
from its generator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor, nn

from metarl import keys
from metarl.algorithms.mier import GaussianPrediction, relabel
from metarl.data.replay import MultiTaskReplay
from metarl.methods.mier.settings import MIERAdaptSettings, SACv2Settings
from metarl.methods.mier.update import SACStep, identify, model_data, sac_step
from metarl.nets import ContextualGaussianModel, TanhGaussianActor, TwinCritic
from metarl.training.module import AdaptModule

#: ``(s, a, s') -> [..., 1]`` bool: a family's termination rule.
TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def never_terminates(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """The point robots' rule (time limit only)."""
    return torch.zeros(*obs.shape[:-1], 1, dtype=torch.bool, device=obs.device)


class MIERAdapt(AdaptModule):
    """Model identification (and, with ``settings.relabel``, model fine-tuning, relabeling and SAC)
    on one new task, on copies of the meta-trained nets."""

    def __init__(self, model: ContextualGaussianModel, actor: TanhGaussianActor, critic: TwinCritic,
                 critic_target: TwinCritic, log_alpha: Tensor, settings: MIERAdaptSettings, sac: SACv2Settings,
                 generator: torch.Generator, termination_fn: TerminationFn = never_terminates) -> None:
        super().__init__()
        self.cfg, self.sac, self.generator, self.termination_fn = settings, sac, generator, termination_fn
        self.model = copy.deepcopy(model)
        self.actor = copy.deepcopy(actor) if settings.relabel else actor
        self.critic = copy.deepcopy(critic) if settings.relabel else critic
        self.critic_target = copy.deepcopy(critic_target) if settings.relabel else critic_target
        self.log_alpha = nn.Parameter(log_alpha.detach().clone())
        self._opts: list[torch.optim.Optimizer] | None = None
        self._blocks: list[TensorDict] = []
        self.model_buffer: TensorDict | None = None

    # ----------------------------------------------------------------------------- identification
    def context_lrs(self) -> list[float]:
        """Extrapolation's schedule: the model's rate for its own number of steps, then the rest rate."""
        first = min(self.model.context_steps, self.cfg.context_steps)
        return [self.cfg.context_lr_first] * first + [self.cfg.context_lr_rest] * (self.cfg.context_steps - first)

    def split(self, data: TensorDictBase) -> tuple[TensorDictBase, TensorDictBase]:
        """A random ``train_fraction`` of the rows (at least one) and the rest (fast_adapt_model's split)."""
        perm = torch.randperm(data.shape[0], generator=self.generator)
        n = max(1, round(self.cfg.train_fraction * data.shape[0]))
        return data[perm[:n]], data[perm[n:]]

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return next(self.model.parameters()).device

    def identify(self, data: TensorDictBase) -> Tensor:
        """φ_T ``[C]`` from the new task's transitions ``[N]``: MIER-wR takes the model's own context
        steps on all of them; extrapolation ``context_steps`` steps on the train split."""
        data = data.to(self.device)
        if not self.cfg.relabel:
            return identify(self.model, data.unsqueeze(0))[0]
        return identify(self.model, data.unsqueeze(0), self.cfg.context_steps, self.context_lrs())[0]

    @torch.no_grad()
    def model_loss(self, data: TensorDictBase, context: Tensor) -> float:
        obs, action, target = model_data(data.to(self.device))
        return float(self.model.loss(obs, action, context, target).total)

    def fine_tune_model(self, data: TensorDictBase, context: Tensor) -> list[float]:
        """``model_steps`` Adam steps (the model's lr) on all model weights, φ_T fixed: the losses."""
        obs, action, target = model_data(data.to(self.device))
        opt = torch.optim.Adam(self.model.parameters(), lr=self.model.lr)
        losses = []
        with torch.enable_grad():
            for _ in range(self.cfg.model_steps):
                loss = self.model.loss(obs, action, context.detach(), target).total
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        return losses

    # ----------------------------------------------------------------------------- relabeling
    @torch.no_grad()
    def relabel(self, batch: TensorDictBase, context: Tensor) -> TensorDict:
        """Eq. 6 on transitions ``[B]`` with the (adapted) model at ``context`` ``[C]``. The draws are
        made on the CPU with the adapter's generator (the result goes to the batch's device)."""
        batch, device = batch.to(self.device), self.device
        obs = batch[keys.OBS]
        if self.cfg.off_policy_relabel:
            action = batch[keys.ACTION]
        else:
            eps = torch.randn(obs.shape[0], self.actor.act_dim, generator=self.generator).to(device)
            action = self.actor(obs, context.expand(obs.shape[0], -1), eps).action
        pred = GaussianPrediction(*(t.cpu() for t in self.model(obs, action, context)))
        next_obs, reward, terminated = (t.to(device) for t in relabel(pred, obs.cpu(), action.cpu(),
                                                                       self.termination_fn, True, self.generator))
        if self.cfg.off_policy_relabel:
            next_obs, terminated = batch[keys.NEXT_OBS], batch[keys.TERMINATED]
        return TensorDict({keys.OBS: obs, keys.ACTION: action, keys.REWARD: reward, keys.NEXT_OBS: next_obs,
                           keys.TERMINATED: terminated.to(batch[keys.TERMINATED].dtype)}, batch_size=[obs.shape[0]])

    def relabel_cross_task(self, replay: MultiTaskReplay, context: Tensor) -> TensorDict:
        """One refill: ``rollout_batch_size`` transitions of ``num_cross_tasks`` meta-training tasks
        drawn with replacement (mier_public ``sample_data_for_relabelling``), relabeled at φ_T; added
        to the model buffer, which keeps the newest ``model_buffer_size`` rows (whole refills)."""
        k = self.cfg.num_cross_tasks
        tasks = torch.randint(replay.n_tasks, (k,), generator=self.generator)
        per_task = max(1, self.cfg.rollout_batch_size // k)
        block = self.relabel(replay.sample_per_task(tasks, per_task, self.generator).reshape(-1), context)
        self._blocks = [*self._blocks, block]
        while len(self._blocks) > 1 and len(self._blocks) * block.shape[0] > self.cfg.model_buffer_size:
            self._blocks.pop(0)
        self.model_buffer = torch.cat(self._blocks, dim=0)  # type: ignore[call-overload]
        return self.model_buffer

    # ----------------------------------------------------------------------------- SAC
    def sac_batch(self, real: TensorDictBase, relabeled: TensorDictBase) -> TensorDict:
        """``sac_batch_size`` rows: ``int(real_ratio * B)`` of the new task's data, the rest relabeled
        (mier_public ``get_sac_training_batch``), each drawn uniformly with replacement."""
        b = self.cfg.sac_batch_size
        n_real = int(self.cfg.real_ratio * b)
        fields = (keys.OBS, keys.ACTION, keys.REWARD, keys.NEXT_OBS, keys.TERMINATED)
        parts = []
        for source, n in ((real, n_real), (relabeled, b - n_real)):
            if n > 0:
                idx = torch.randint(source.shape[0], (n,), generator=self.generator)
                parts.append(TensorDict({f: source[f][idx] for f in fields}, batch_size=[n]).to(self.device))
        return torch.cat(parts, dim=0)  # type: ignore[call-overload]

    def sac_update(self, batch: TensorDictBase, context: Tensor) -> SACStep:
        if self._opts is None:
            self._opts = [self.critic.make_optimizer(), self.actor.make_optimizer(),
                          torch.optim.Adam([self.log_alpha], lr=self.sac.alpha_lr)]
        n, act_dim = batch.shape[0], self.actor.act_dim
        eps = torch.randn(n, act_dim, generator=self.generator).to(self.device)
        next_eps = torch.randn(n, act_dim, generator=self.generator).to(self.device)
        batch = batch.to(self.device)
        with torch.enable_grad():
            return sac_step(self, batch, context.expand(n, -1), eps, next_eps, self._opts, self.sac,
                            lambda loss: loss.backward())
