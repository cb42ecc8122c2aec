"""PEARL's data collection (Rakelly et al. 2019, Algorithm 1 lines 2-5; oyster ``rl_algorithm.py``
``train`` and ``collect_data``).

Each visit of a train task clears its encoder buffer E_i, then collects

    prior phase      ``num_steps_prior`` steps, z ~ prior (resampled every trajectory)  -> B_i and E_i
    posterior phase  ``num_steps_posterior`` steps, z ~ q(z | c ~ E_i)                  -> B_i and E_i
    extra RL phase   ``num_extra_rl_steps_posterior`` steps, z ~ q(z | c ~ E_i)         -> B_i only

Each phase starts from the prior (oyster calls ``clear_z`` at the start of every ``collect_data``), so
its first trajectory uses a prior z; the posterior is re-inferred from E_i every ``update_post_train``
trajectories. Before the first update every train task gets ``num_initial_steps`` prior-z steps.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase

from metarl import keys
from metarl.data.replay import MultiTaskReplay, episode_to_replay
from metarl.data.rollouts import Rollouts, split_episodes
from metarl.envs.base import TaskFamily
from metarl.methods.pearl.policy import LatentPolicy
from metarl.methods.pearl.settings import PEARLCollectSettings
from metarl.nets import ProbContextEncoder


class PEARLCollection:
    """Data collection, mixed into PEARLMetaTrain (which owns the attributes below)."""

    family: TaskFamily
    collect_cfg: PEARLCollectSettings
    encoder: ProbContextEncoder
    policy: LatentPolicy
    rollouts: Rollouts
    replay: MultiTaskReplay
    enc_replay: MultiTaskReplay
    sample_gen: torch.Generator
    embedding_batch_size: int
    env_steps: int
    num_episodes: int
    device: torch.device

    def infer_from_encoder_buffer(self, task: int) -> None:
        """Set the acting policy's belief to q(z | c), c = ``embedding_batch_size`` transitions of E_task."""
        context = self.enc_replay.sample_per_task([task], self.embedding_batch_size, self.sample_gen).to(self.device)
        mu, var = self.encoder.posterior(ProbContextEncoder.context_from(context, self.encoder.use_next_obs))
        self.policy.set_belief(mu[0], var[0])

    def collect_phase(self, task: int, steps: int, use_posterior: bool, to_encoder: bool) -> list[float]:
        """``steps`` env steps on train task ``task``; returns the returns of the trajectories.

        A trajectory is cut at the phase's remaining steps (oyster lets the last one run to its end,
        so it can overshoot on early-terminating envs; metarl keeps an iteration's env steps known in
        advance: docs/fidelity.md)."""
        self.policy.reset_belief()
        self.policy.sample_z()
        returns: list[float] = []
        remaining, n_traj = steps, 0
        posterior_every = self.collect_cfg.update_post_train if use_posterior else math.inf
        sampler = self.rollouts.sampler
        sampler.fixed = task
        try:
            while remaining > 0:
                frames = min(remaining, self.family.max_episode_steps)
                batch = self.rollouts.collect(frames, "explore")
                returns += self.store(batch, to_encoder)
                remaining -= frames
                n_traj += 1
                if n_traj % posterior_every == 0:
                    self.infer_from_encoder_buffer(task)
                self.policy.sample_z()
        finally:
            sampler.fixed = None
        return returns

    def store(self, batch: TensorDictBase, to_encoder: bool) -> list[float]:
        """Write a collector batch to the RL replay (and the encoder buffer); count its env steps."""
        returns = []
        for ep in split_episodes(batch):
            transitions = episode_to_replay(ep, int(ep[keys.TASK_ID][0]), self.num_episodes)
            self.replay.extend(transitions)
            if to_encoder:
                self.enc_replay.extend(transitions)
            self.num_episodes += 1
            returns.append(float(ep[keys.REWARD].sum()))
        self.env_steps += batch.shape[0]
        return returns

    def visit(self, task: int) -> list[float]:
        """One visit of a train task: clear E_task, then the prior, posterior and extra RL phases."""
        cfg = self.collect_cfg
        self.enc_replay.clear(task)
        returns: list[float] = []
        if cfg.num_steps_prior > 0:
            returns += self.collect_phase(task, cfg.num_steps_prior, use_posterior=False, to_encoder=True)
        if cfg.num_steps_posterior > 0:
            returns += self.collect_phase(task, cfg.num_steps_posterior, use_posterior=True, to_encoder=True)
        if cfg.num_extra_rl_steps_posterior > 0:
            returns += self.collect_phase(task, cfg.num_extra_rl_steps_posterior, use_posterior=True,
                                          to_encoder=False)
        return returns

    def initial_collection(self) -> None:
        """Before the first update: ``num_initial_steps`` prior-z steps on every train task (both buffers)."""
        for task in range(len(self.family.train_tasks)):
            self.collect_phase(task, self.collect_cfg.num_initial_steps, use_posterior=False, to_encoder=True)
