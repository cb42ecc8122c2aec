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
from typing import TYPE_CHECKING

from tensordict import TensorDictBase

from metarl import keys
from metarl.data.replay import episode_to_replay
from metarl.data.rollouts import split_episodes
from metarl.nets import ProbContextEncoder

if TYPE_CHECKING:
    from metarl.methods.pearl.meta_train import PEARLMetaTrain


def infer_from_encoder_buffer(m: PEARLMetaTrain, task: int) -> None:
    """Set the acting policy's belief to q(z | c), c = ``embedding_batch_size`` transitions of E_task."""
    context = m.enc_replay.sample_per_task([task], m.embedding_batch_size, m.sample_gen).to(m.device)
    mu, var = m.encoder.posterior(ProbContextEncoder.context_from(context, m.encoder.use_next_obs))
    m.policy.set_belief(mu[0], var[0])


def collect_phase(m: PEARLMetaTrain, task: int, steps: int, use_posterior: bool, to_encoder: bool) -> list[float]:
    """``steps`` env steps on train task ``task``; returns the returns of the trajectories.

    A trajectory is cut at the phase's remaining steps (oyster lets the last one run to its end, so
    it can overshoot on early-terminating envs; metarl keeps an iteration's env steps known in
    advance: docs/fidelity.md)."""
    m.policy.reset_belief()
    m.policy.sample_z()
    returns: list[float] = []
    remaining, n_traj = steps, 0
    posterior_every = m.collect_cfg.update_post_train if use_posterior else math.inf
    sampler = m.rollouts.sampler
    sampler.fixed = task
    try:
        while remaining > 0:
            frames = min(remaining, m.family.max_episode_steps)
            batch = m.rollouts.collect(frames, "explore")
            returns += store(m, batch, to_encoder)
            remaining -= frames
            n_traj += 1
            if n_traj % posterior_every == 0:
                infer_from_encoder_buffer(m, task)
            m.policy.sample_z()
    finally:
        sampler.fixed = None
    return returns


def store(m: PEARLMetaTrain, batch: TensorDictBase, to_encoder: bool) -> list[float]:
    """Write a collector batch to the RL replay (and the encoder buffer); count its env steps."""
    returns = []
    for ep in split_episodes(batch):
        task = int(ep[keys.TASK_ID][0])
        transitions = episode_to_replay(ep, task, m.num_episodes)
        m.replay.extend(transitions)
        if to_encoder:
            m.enc_replay.extend(transitions)
        m.num_episodes += 1
        returns.append(float(ep[keys.REWARD].sum()))
    m.env_steps += batch.shape[0]
    return returns


def visit(m: PEARLMetaTrain, task: int) -> list[float]:
    """One visit of a train task: clear E_task, then the prior, posterior and extra RL phases."""
    cfg = m.collect_cfg
    m.enc_replay.clear(task)
    returns: list[float] = []
    if cfg.num_steps_prior > 0:
        returns += collect_phase(m, task, cfg.num_steps_prior, use_posterior=False, to_encoder=True)
    if cfg.num_steps_posterior > 0:
        returns += collect_phase(m, task, cfg.num_steps_posterior, use_posterior=True, to_encoder=True)
    if cfg.num_extra_rl_steps_posterior > 0:
        returns += collect_phase(m, task, cfg.num_extra_rl_steps_posterior, use_posterior=True, to_encoder=False)
    return returns


def initial_collection(m: PEARLMetaTrain) -> None:
    """Before the first update: ``num_initial_steps`` prior-z steps on every train task (both buffers)."""
    if m.collect_cfg.num_initial_steps == 0:
        return
    for task in range(len(m.family.train_tasks)):
        collect_phase(m, task, m.collect_cfg.num_initial_steps, use_posterior=False, to_encoder=True)
