"""TD3ContextNets: what MQL's meta-training and adaptation share — the networks and the TD3 update.

A mixin of both MQL modules (MQLMetaTrain, MQLAdapt). The nets are LightningModules built from
factories (dependency injection: the config gives their hyperparameters, this class their sizes).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from tensordict import TensorDictBase
from torch import Tensor

from metarl import keys
from metarl.algorithms.proximal import proximal_penalty
from metarl.algorithms.td3 import actor_loss, critic_loss, smooth_target_action, soft_update_, td3_target
from metarl.methods.mql.settings import TD3Settings
from metarl.nets import Actor, ContextEncoder, TwinCritic
from metarl.training.module import backward


@dataclass
class UpdateResult:
    loss_critic: Tensor
    loss_actor: Tensor | None


class TD3ContextNets:
    """Builds the context encoders, actor, twin critics and their target copies, and updates them
    with TD3. Mixed into a LightningModule (the nets become its submodules)."""

    actor: Actor
    critic: TwinCritic
    critic_encoder: ContextEncoder
    actor_encoder: ContextEncoder

    def build_nets(
        self,
        obs_dim: int,
        act_dim: int,
        encoder: Callable[[int, int], ContextEncoder],
        actor: Callable[[int, int, int], Actor],
        critic: Callable[[int, int, int], TwinCritic],
        shared_encoder: bool,
    ) -> None:
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.shared_encoder = shared_encoder
        # The reference code gives actor and critic a GRU each (MQL issue #3); sharing is an option.
        self.critic_encoder = encoder(obs_dim, act_dim)
        self.actor_encoder = self.critic_encoder if shared_encoder else encoder(obs_dim, act_dim)
        z_dim = self.critic_encoder.hidden_size
        self.actor = actor(obs_dim, act_dim, z_dim)
        self.critic = critic(obs_dim, act_dim, z_dim)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_encoder_target = copy.deepcopy(self.critic_encoder).requires_grad_(False)
        self.actor_encoder_target = (
            self.critic_encoder_target
            if shared_encoder
            else copy.deepcopy(self.actor_encoder).requires_grad_(False)
        )

    def make_optimizers(self) -> list[torch.optim.Optimizer]:
        """[critic optimizer, actor optimizer]; with a shared encoder the TD loss alone trains it."""
        critic_opt = self.critic.make_optimizer([self.critic_encoder])
        actor_extra = [] if self.shared_encoder else [self.actor_encoder]
        return [critic_opt, self.actor.make_optimizer(actor_extra)]

    def online_params(self) -> list[Tensor]:
        mods = [self.actor, self.critic, self.critic_encoder]
        if not self.shared_encoder:
            mods.append(self.actor_encoder)
        return [p for m in mods for p in m.parameters()]

    def _target_pairs(self) -> tuple[list[Tensor], list[Tensor]]:
        pairs = [
            (self.actor_target, self.actor),
            (self.critic_target, self.critic),
            (self.critic_encoder_target, self.critic_encoder),
        ]
        if not self.shared_encoder:
            pairs.append((self.actor_encoder_target, self.actor_encoder))
        targets = [p for t, _ in pairs for p in t.parameters()]
        sources = [p for _, s in pairs for p in s.parameters()]
        return targets, sources

    def td3_update(
        self,
        batch: TensorDictBase,
        update_index: int,
        critic_opt: pl.core.optimizer.LightningOptimizer | torch.optim.Optimizer,
        actor_opt: pl.core.optimizer.LightningOptimizer | torch.optim.Optimizer,
        td3: TD3Settings,
        noise: Tensor,
        weight: Tensor | None = None,
        prox_coef: Tensor | float | None = None,
        anchor: tuple[list[Tensor], list[Tensor]] | None = None,
        prox_half: bool = True,
    ) -> UpdateResult:
        """One TD3 step: clipped double-Q critic update; every ``policy_freq`` steps an actor update
        and Polyak averaging of every target. ``weight`` is the per-sample beta of MQL eq. 19;
        ``prox_coef`` with ``anchor`` = (critic-side, actor-side) theta_meta adds the proximal term
        of eqs. 18-19 to each loss. ``noise`` is the unscaled N(0, 1) draw for target smoothing.
        """
        obs, action = batch[keys.OBS], batch[keys.ACTION]
        hist, next_hist = batch[keys.HISTORY], batch[keys.NEXT_HISTORY]
        next_obs = batch[keys.NEXT_OBS]
        # The two target encoders (on the next history) and the critic's (on the history) in one
        # fused GRU pass when the encoders are fast ContextEncoders; the targets' contexts are
        # constants (the target nets get no gradient), the critic's is trained by the TD loss.
        z_next_actor, z_next_critic, z = self._encode_many(
            [self.actor_encoder_target, self.critic_encoder_target, self.critic_encoder], [next_hist, next_hist, hist]
        )
        with torch.no_grad():
            next_action = self.actor_target(next_obs, z_next_actor.detach())
            next_action = smooth_target_action(next_action, noise * td3.policy_noise, td3.noise_clip)
            next_q1, next_q2 = self.critic_target(next_obs, next_action, z_next_critic.detach())
            target = td3_target(batch[keys.REWARD], batch[keys.TERMINATED], next_q1, next_q2, td3.gamma)

        q1, q2 = self.critic(obs, action, z)
        loss_c = critic_loss(q1, q2, target, weight)
        if prox_coef is not None and anchor is not None:
            loss_c = loss_c + proximal_penalty(self._critic_side_params(), anchor[0], prox_coef, prox_half)
        critic_opt.zero_grad()
        self._backward(loss_c)
        critic_opt.step()

        loss_a: Tensor | None = None
        if update_index % td3.policy_freq == 0:
            # The critic is a fixed function in the actor loss: freezing it keeps its parameters
            # free of gradients and skips their weight-gradient work.
            self.critic.requires_grad_(False)
            self.critic_encoder.requires_grad_(False)
            try:
                # The critic's context with its just-updated weights (as the reference code) and the
                # actor's, in one fused GRU pass; the frozen critic encoder gets no gradient.
                z_critic, z_actor = self._encode_many([self.critic_encoder, self.actor_encoder], hist)
                z_critic = z_critic.detach()
                if self.shared_encoder:
                    z_actor = z_actor.detach()
                loss_a = actor_loss(self.critic.q1_only(obs, self.actor(obs, z_actor), z_critic), weight)
                if prox_coef is not None and anchor is not None:
                    loss_a = loss_a + proximal_penalty(self._actor_side_params(), anchor[1], prox_coef, prox_half)
                actor_opt.zero_grad()
                self._backward(loss_a)
                actor_opt.step()
            finally:
                self.critic.requires_grad_(True)
                self.critic_encoder.requires_grad_(True)
            soft_update_(*self._target_pairs(), td3.tau)
        return UpdateResult(loss_c.detach(), None if loss_a is None else loss_a.detach())

    def _encode_many(self, encoders: Sequence[ContextEncoder], histories: Tensor | Sequence[Tensor]) -> list[Tensor]:
        """The contexts of ``encoders`` on ``histories`` (one fused GRU pass where possible)."""
        return ContextEncoder.encode_many(encoders, histories)

    def _backward(self, loss: Tensor) -> None:
        backward(self, loss)  # type: ignore[arg-type]

    def _critic_side_params(self) -> list[Tensor]:
        return [*self.critic.parameters(), *self.critic_encoder.parameters()]

    def _actor_side_params(self) -> list[Tensor]:
        extra = [] if self.shared_encoder else list(self.actor_encoder.parameters())
        return [*self.actor.parameters(), *extra]

    def anchor_params(self) -> tuple[list[Tensor], list[Tensor]]:
        """theta_meta: detached copies of (critic-side, actor-side) parameters, for eqs. 18-19."""
        return (
            [p.detach().clone() for p in self._critic_side_params()],
            [p.detach().clone() for p in self._actor_side_params()],
        )
