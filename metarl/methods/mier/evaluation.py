"""MIER's side of the meta-test protocol, per eval task and run:

    collect ``batch_size`` (n_a) steps with φ₀ and the stochastic policy (the adaptation data)
    pre-adaptation return: one deterministic episode with φ₀ ([M]: mier_public logs none)
    φ_T = MIERAdapt.identify(data)
    MIER-wR: post-adaptation return = one deterministic episode with φ_T (mier_public ``eval_during_training``)
    MIER:    fine-tune the model, then ``epochs`` × (one deterministic episode with φ_T, then
             ``sac_steps_per_epoch`` steps of ``sac_repeats`` SAC updates on real + relabeled data,
             refilling the relabeled set every ``relabel_interval`` steps); the post-adaptation
             return is a last episode after the last epoch ([M]; mier_public logs the epochs' episodes)
"""

from __future__ import annotations

import statistics
from typing import Any

import torch
from tensordict import TensorDictBase

from metarl import keys
from metarl.data.replay import MultiTaskReplay, episode_to_replay
from metarl.data.rollouts import Rollouts
from metarl.methods.mier.adapt import MIERAdapt
from metarl.methods.mier.collect import collect_steps
from metarl.methods.mier.policy import ContextPolicy
from metarl.training.evaluation import TaskResult


def episode_return(rollouts: Rollouts, task_index: int, context: torch.Tensor) -> float:
    policy: ContextPolicy = rollouts.policy  # type: ignore[assignment]
    policy.set_context(context)
    return float(rollouts.run_episode(task_index, "deterministic")[keys.REWARD].sum())


def adaptation_data(rollouts: Rollouts, task_index: int, steps: int, context0: torch.Tensor) -> TensorDictBase:
    """``steps`` transitions of the new task, acting stochastically with φ₀."""
    policy: ContextPolicy = rollouts.policy  # type: ignore[assignment]
    policy.set_context(context0)
    episodes = collect_steps(rollouts, task_index, steps, "explore")
    return torch.cat([episode_to_replay(ep, task_index, k) for k, ep in enumerate(episodes)], dim=0)  # type: ignore[call-overload]


def extrapolate(adapter: MIERAdapt, rollouts: Rollouts, task_index: int, real: TensorDictBase,
                context: torch.Tensor, replay: MultiTaskReplay) -> list[float]:
    """Algorithm 2's SAC phase: the returns of each epoch's episode and of a last one."""
    cfg = adapter.cfg
    returns: list[float] = []
    relabeled = adapter.relabel_cross_task(replay, context)
    for epoch in range(cfg.epochs):
        returns.append(episode_return(rollouts, task_index, context))
        for step in range(cfg.sac_steps_per_epoch):
            # mier_public refills at step 0 of every epoch too (the first refill is above)
            if step % cfg.relabel_interval == 0 and (epoch, step) != (0, 0):
                relabeled = adapter.relabel_cross_task(replay, context)
            for _ in range(cfg.sac_repeats):
                adapter.sac_update(adapter.sac_batch(real, relabeled), context)
    returns.append(episode_return(rollouts, task_index, context))
    return returns


def run_protocol(adapter: MIERAdapt, rollouts: Rollouts, task_index: int, n_adapt: int, adapt: bool,
                 replay: MultiTaskReplay) -> tuple[float, float, dict[str, float]]:
    """One run: (pre, post, metrics)."""
    policy: ContextPolicy = rollouts.policy  # type: ignore[assignment]
    actor = policy.actor
    policy.use(adapter.actor)
    try:
        context0 = adapter.model.context0.detach()
        data = adaptation_data(rollouts, task_index, n_adapt, context0)
        pre = episode_return(rollouts, task_index, context0)
        if not adapt:
            return pre, pre, {}
        context = adapter.identify(data)
        metrics = {"adapt/model_loss_pre": adapter.model_loss(data, context0),
                   "adapt/model_loss_post": adapter.model_loss(data, context),
                   "adapt/context_norm": float(context.norm())}
        if not adapter.cfg.relabel:
            return pre, episode_return(rollouts, task_index, context), metrics
        train, _ = adapter.split(data)
        adapter.fine_tune_model(train, context)
        metrics["adapt/model_loss_finetuned"] = adapter.model_loss(data, context)
        returns = extrapolate(adapter, rollouts, task_index, data, context, replay)
        metrics.update({f"eval/return_epoch_{k}": r for k, r in enumerate(returns)})
        return pre, returns[-1], metrics
    finally:
        policy.use(actor)


def evaluate_task(make_adapter: Any, rollouts: Rollouts, task_index: int, runs: int, n_adapt: int, adapt: bool,
                  replay: MultiTaskReplay) -> TaskResult:
    """``runs`` runs of the protocol, each from a fresh adapter (``make_adapter(run)``); means."""
    outcomes = [run_protocol(make_adapter(run), rollouts, task_index, n_adapt, adapt, replay) for run in range(runs)]
    pre = statistics.fmean(o[0] for o in outcomes)
    post = statistics.fmean(o[1] for o in outcomes)
    names = outcomes[0][2].keys()
    metrics = {name: statistics.fmean(o[2][name] for o in outcomes) for name in names}
    return TaskResult(task_index, pre, post, metrics=metrics)
