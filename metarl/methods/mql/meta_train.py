"""MQLMetaTrain: MQL meta-training (paper §3.1, eq. 15) — TD3 with a GRU context on the
multi-task objective, with adaptation on held-out tasks (MQLAdapt, §3.2) as the validation loop.

One training_step is one meta-training iteration::

    collect `episodes_per_iter` episodes on train tasks drawn uniformly (during the cold start:
        uniform random actions, many rounds' episodes at once, metarl.data.cold_start) and add
        them to the pooled multi-task replay
    repeat N times: sample a batch (histories gathered at sample time), TD3 update

The meta-test protocol on one eval task (``evaluate_task``) follows the MQL reference (§3 of the
reference notes): deterministic episodes with the meta-trained policy (the first of them is the
adaptation data D_new), adaptation from theta_meta, then the same number of deterministic episodes
with the adapted policy. Every task adapts from theta_meta: the adapted copy is thrown away
afterwards. Before any meta-training data exists (the evaluation at env step 0) there is nothing for
eq. 19 and the classifier to use: the policy is evaluated without adaptation, as the reference
code's first evaluation row.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from metarl import keys
from metarl.data.cold_start import ColdStartRollouts, cold_start_plan
from metarl.data.policy import ActingPolicy
from metarl.data.replay import MultiTaskReplay
from metarl.data.rollouts import Rollouts, episode_returns
from metarl.data.transitions import batch_to_replay
from metarl.methods.mql.adapt import AdaptStats, MQLAdapt
from metarl.methods.mql.seed_batched import CollectPhase, batched_iteration
from metarl.methods.mql.settings import AdaptSettings, CollectSettings, TD3Settings
from metarl.methods.mql.td3_nets import TD3ContextNets
from metarl.nets import Actor, ContextEncoder, TwinCritic
from metarl.training.evaluation import TaskResult
from metarl.training.module import MetaTrainModule
from metarl.training.schedule import next_eval_at
from metarl.training.settings import EvalSettings


class MQLMetaTrain(TD3ContextNets, MetaTrainModule):
    """Args:
    family: task family name (``metarl.envs.FAMILY_NAMES``); ``family_overrides`` are passed to it.
    encoder, actor, critic: factories of the nets (the config gives their hyperparameters).
    shared_encoder: one GRU for actor and critic (default: one each, as the reference code).
    history_len: H, the GRU sequence length (paper Table 1).
    batch_size: TD3 minibatch (paper appendix: 256).
    updates_per_iter: paper Table 1 "Parameter updates per iteration (meta-training)".
    total_env_steps: the meta-training budget.
    seed: seeds nets, tasks, envs, noise and sampling.
    batched_update: in a multi-seed run (``--seeds``), run the seeds' TD3 updates as one update over
        nets stacked on a seed dimension (``SeedBatchedTD3Nets``; equal to the seed-by-seed updates up to
        fp32 rounding). Off by default: on CPU it measured no faster (BENCHMARKS.md). No effect alone.
    """

    method_name = "mql"
    title = "MQL"

    def __init__(
        self,
        family: str = "point-robot",
        family_overrides: dict[str, Any] | None = None,
        encoder: Callable[[int, int], ContextEncoder] = ContextEncoder,
        actor: Callable[[int, int, int], Actor] = Actor,
        critic: Callable[[int, int, int], TwinCritic] = TwinCritic,
        shared_encoder: bool = False,
        history_len: int = 20,
        batch_size: int = 256,
        updates_per_iter: int = 200,
        total_env_steps: int = 5_000_000,
        td3: TD3Settings = TD3Settings(),
        collect: CollectSettings = CollectSettings(),
        eval: EvalSettings = EvalSettings(),
        adapt: AdaptSettings = AdaptSettings(),
        seed: int = 0,
        batched_update: bool = False,
    ) -> None:
        super().__init__(family, family_overrides, total_env_steps, eval, seed)
        self.batched_update = batched_update
        self.save_hyperparameters()
        for name, value in (("history_len", history_len), ("batch_size", batch_size),
                            ("updates_per_iter", updates_per_iter)):
            if value < 1:
                raise ValueError(f"model.{name} must be >= 1, got {value}")
        td3.validate()
        collect.validate()
        adapt.validate()
        self.td3, self.collect_cfg, self.adapt_cfg = td3, collect, adapt
        self.history_len, self.batch_size, self.updates_per_iter = history_len, batch_size, updates_per_iter
        torch.manual_seed(seed)  # the nets' initial weights
        self.build_nets(self.family.obs_dim, self.family.act_dim, encoder, actor, critic, shared_encoder)
        n_train = len(self.family.train_tasks)
        self.replay = MultiTaskReplay(
            n_train, max(collect.replay_size // n_train, self.family.max_episode_steps),
            self.family.obs_dim, self.family.act_dim, history_len,
        )
        self.sample_gen = torch.Generator().manual_seed(seed + 1)
        self.noise_gen = torch.Generator().manual_seed(seed + 2)
        self.policy = ActingPolicy(
            self.actor, self.actor_encoder, self.family.act_dim, collect.expl_noise,
            torch.Generator().manual_seed(seed + 3),
        )
        self._cold_start: ColdStartRollouts | None = None  # built at the cold start's first iteration

    # ----------------------------------------------------------------------------- data
    def make_rollouts(self, evaluation: bool) -> Rollouts:
        if not evaluation:
            return Rollouts(self.family, self.family.train_tasks, self.policy, self.history_len, self.seed)
        policy = ActingPolicy(self.actor, self.actor_encoder, self.family.act_dim, 0.0,
                              torch.Generator().manual_seed(self.seed + 4))
        return Rollouts(self.family, self.family.eval_tasks, policy, self.history_len, self.seed + 5, evaluation=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return self.make_optimizers()

    # ----------------------------------------------------------------------------- training
    def iteration_env_steps(self, env_steps: int) -> int:
        """The cold start collects whole rounds of ``episodes_per_iter`` full-length episodes' worth of
        steps, several per iteration (``cold_start_plan``), up to its budget; after it,
        ``episodes_per_iter`` full episodes."""
        if env_steps < self.collect_cfg.cold_start_steps:
            return sum(self._cold_start_plan(env_steps))
        return self.collect_cfg.episodes_per_iter * self.family.max_episode_steps

    def _cold_start_len(self) -> int:
        return min(self.collect_cfg.cold_start_episode_len or self.family.max_episode_steps,
                   self.family.max_episode_steps)

    def _cold_start_plan(self, env_steps: int) -> list[int]:
        cfg = self.collect_cfg
        return cold_start_plan(env_steps, cfg.cold_start_steps, cfg.episodes_per_iter * self.family.max_episode_steps,
                               self._cold_start_len(), next_eval_at(env_steps, self.eval_cfg.every_env_steps),
                               cfg.cold_start_envs)

    def _collect(self) -> dict[str, float]:
        """Cold start (random actions, short episodes cycling through the tasks) until its budget,
        then `episodes_per_iter` exploratory episodes on uniformly drawn train tasks."""
        cfg = self.collect_cfg
        if self.env_steps < cfg.cold_start_steps:
            self.rollouts.sampler.mode = "cycle"
            if self._cold_start is None:
                self._cold_start = ColdStartRollouts(self.family, self.family.train_tasks, self.rollouts.sampler,
                                                     self.policy.generator, self.seed, self._cold_start_len(),
                                                     self.collect_cfg.cold_start_envs)
            batch = self._cold_start.collect(self._cold_start_plan(self.env_steps), self.num_episodes)
        else:
            if self._cold_start is not None:  # the cold start is over: free its envs
                self._cold_start.close()
                self._cold_start = None
            self.rollouts.sampler.mode = "uniform"
            batch = self.rollouts.collect(self.iteration_env_steps(self.env_steps), "explore")
        self._store(batch)
        stats = episode_returns(batch)
        metrics = {"train/return": float(np.mean([r for _, r, _ in stats]))}
        for task, ret, _ in stats:
            metrics[f"train/return_task/{task}"] = ret
        return metrics

    def _store(self, batch: TensorDictBase) -> None:
        """Write a flat collector batch of whole or cut episodes to the replay in one call."""
        transitions = batch_to_replay(batch, self.num_episodes)
        self.replay.extend(transitions)
        self.num_episodes = int(transitions[keys.EPISODE][-1]) + 1
        self.env_steps += batch.shape[0]

    def _n_updates(self, frames: int) -> int:
        # No updates during the cold start (the reference collects its random data first); then one
        # update per collected step of one episode until the replay holds
        # `min_replay_for_full_updates` transitions (MQL reference §2.6), then `updates_per_iter`.
        if self.env_steps <= self.collect_cfg.cold_start_steps and self.collect_cfg.cold_start_steps > 0:
            return 0
        if len(self.replay) < self.collect_cfg.min_replay_for_full_updates:
            return max(1, frames // self.collect_cfg.episodes_per_iter)
        return self.updates_per_iter

    def meta_train_iteration(self) -> dict[str, float]:
        critic_opt, actor_opt = self.optimizers()  # type: ignore[misc]
        phase = self.collect_phase()
        # Losses are summed on the device: one host sync per iteration (the float() below), none per update.
        loss_c = loss_a = torch.zeros((), device=self.device)
        n_actor = 0
        for _ in range(phase.n_updates):
            out = self.td3_update(*self.update_inputs(), critic_opt, actor_opt, self.td3, self.update_noise())
            self.num_updates += 1
            loss_c = loss_c + out.loss_critic
            if out.loss_actor is not None:
                loss_a, n_actor = loss_a + out.loss_actor, n_actor + 1
        return self.finish_iteration(phase, loss_c, loss_a, n_actor)

    def collect_phase(self) -> CollectPhase:
        """An iteration's collection, and the number of updates that follow it."""
        t0 = time.perf_counter()
        steps_before = self.env_steps
        metrics = self._collect()
        t1 = time.perf_counter()
        return CollectPhase(metrics, self._n_updates(self.env_steps - steps_before), self.env_steps - steps_before,
                            t1 - t0, t1)

    def update_inputs(self) -> tuple[TensorDictBase, int]:
        """The next update's minibatch and index (sampled with this seed's generator)."""
        return self.replay.sample(self.batch_size, self.sample_gen).to(self.device), self.num_updates

    def update_noise(self) -> torch.Tensor:
        return torch.randn(self.batch_size, self.act_dim, generator=self.noise_gen).to(self.device)

    def finish_iteration(self, phase: CollectPhase, loss_c: torch.Tensor, loss_a: torch.Tensor,
                         n_actor: int) -> dict[str, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # updates/s must time the work, not its queueing
        t2 = time.perf_counter()
        n, metrics = phase.n_updates, phase.metrics
        metrics.update({
            "train/env_steps": float(self.env_steps),
            "train/updates": float(self.num_updates),
            "time/env_steps_per_s": phase.frames / max(phase.collect_s, 1e-9),
        })
        if n:
            metrics["train/loss_critic"] = float(loss_c) / n
            metrics["time/updates_per_s"] = n / max(t2 - phase.collected_at, 1e-9)
        if n_actor:
            metrics["train/loss_actor"] = float(loss_a) / n_actor
        return metrics

    #: In a multi-seed run with ``batched_update``, the seeds' updates run as one stacked update.
    seed_batched_iteration = staticmethod(batched_iteration)

    # ----------------------------------------------------------------------------- evaluation
    def evaluate_task(self, task_index: int) -> TaskResult:
        return evaluate_task(self, task_index)

    # ----------------------------------------------------------------------------- checkpoints
    def method_state(self) -> dict[str, Any]:
        return {
            "replay": self.replay.state_dict(),
            "rollouts": self.rollouts.state_dict(),
            "eval_rollouts": self.eval_rollouts.state_dict(),
            "policy": self.policy.state_dict(),
            "sample_gen": self.sample_gen.get_state(),
            "noise_gen": self.noise_gen.get_state(),
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.replay.load_state_dict(state["replay"])
        self.rollouts.load_state_dict(state["rollouts"])
        self.eval_rollouts.load_state_dict(state["eval_rollouts"])
        self.policy.load_state_dict(state["policy"])
        self.sample_gen.set_state(state["sample_gen"])
        self.noise_gen.set_state(state["noise_gen"])


def adapt_metrics(stats: AdaptStats) -> dict[str, float]:
    """The logged adaptation statistics (DESIGN's metric names)."""
    return {
        "adapt/lambda": stats.lambda_,
        "adapt/ess": stats.ess,
        "adapt/beta_mean": float(stats.beta.mean()),
        "adapt/classifier_acc": stats.classifier_acc,
    }


def _mean_return(module: MQLMetaTrain, task_index: int, n: int) -> tuple[float, list[Any]]:
    episodes = [module.eval_rollouts.run_episode(task_index) for _ in range(n)]
    return statistics.fmean(float(ep[keys.REWARD].sum()) for ep in episodes), episodes


def evaluate_task(module: MQLMetaTrain, task_index: int, adapt: bool | None = None) -> TaskResult:
    """Return before and after adaptation on eval task ``task_index``; ``module`` is left unchanged."""
    cfg = module.eval_cfg
    adapt = cfg.adapt if adapt is None else adapt
    policy = module.eval_rollouts.policy
    policy.use(module.actor, module.actor_encoder)
    pre, episodes = _mean_return(module, task_index, cfg.episodes)
    if not adapt or len(module.replay) == 0:
        return TaskResult(task_index, pre, pre)
    # A seed that depends only on where the run is, so a resumed run adapts identically.
    adapter = MQLAdapt(module, seed=hash((module.seed, module.env_steps, task_index)) % (2**31))
    with torch.enable_grad():
        stats = adapter.adapt(episodes[0])
    policy.use(adapter.actor, adapter.actor_encoder)
    try:
        post, _ = _mean_return(module, task_index, cfg.episodes)
    finally:
        policy.use(module.actor, module.actor_encoder)
    return TaskResult(task_index, pre, post, stats, adapt_metrics(stats), {"adapt/beta": stats.beta})
