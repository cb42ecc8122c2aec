"""MIERMetaTrain: MIER / MIER-wR meta-training (Mendonca et al. 2020, Algorithm 1; mier_public ``mier.py`` ``train``).

One training_step is one iteration (mier_public's epoch)::

    (first iteration only) initial_exploration_repeats x num_steps_prior φ₀ steps per train task   collect.py
    num_tasks_sample times: draw a train task, collect φ₀ data, adapt φ_T on it, collect φ_T data  collect.py
    draw the meta-batch of tasks once (without replacement when there are enough)
    updates_per_iter times: a model meta-step (eq. 4) and a SAC-v2 step on [s, φ_K]             update.py

Adaptation (MIERAdapt) is model identification; with ``adapt.relabel`` also extrapolation (relabeling).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from metarl.data.replay import MultiTaskReplay
from metarl.data.rollouts import Rollouts
from metarl.methods.mier.adapt import MIERAdapt, never_terminates
from metarl.methods.mier.collect import MIERCollection
from metarl.methods.mier.evaluation import evaluate_task
from metarl.methods.mier.policy import ContextPolicy
from metarl.methods.mier.settings import MIERAdaptSettings, MIERCollectSettings, SACv2Settings
from metarl.methods.mier.update import model_meta_step, sac_step
from metarl.nets import ContextualGaussianModel, TanhGaussianActor, TwinCritic
from metarl.training.evaluation import TaskResult
from metarl.training.module import MetaTrainModule, backward
from metarl.training.settings import EvalSettings

_ENV_HISTORY = 1  # MIER's context is φ, not a history window: the cheapest the env pipeline allows


class MIERMetaTrain(MIERCollection, MetaTrainModule):
    """Args:
    family, family_overrides, total_env_steps, eval, seed: as every method (MetaTrainModule).
    model: factory of the ContextualGaussianModel (its config holds the context steps and clips).
    actor, critic: factories of the SAC nets on [s, φ].
    meta_batch: tasks per model step (``meta_batch_size``), drawn once per iteration.
    batch_size: n_a, transitions per task in D_adapt and D_eval (``num_sample_steps_for_adaptation``);
        the SAC batch is meta_batch x batch_size. Also the adaptation data at meta-test.
    updates_per_iter: model + SAC steps per iteration (``num_training_steps_per_epoch``).
    """

    method_name = "mier"
    title = "MIER"
    train_metric_prefixes = ("train", "time", "mier")

    def __init__(
        self,
        family: str = "point-robot",
        family_overrides: dict[str, Any] | None = None,
        model: Callable[[int, int], ContextualGaussianModel] = ContextualGaussianModel,
        actor: Callable[[int, int, int], TanhGaussianActor] = TanhGaussianActor,
        critic: Callable[[int, int, int], TwinCritic] = TwinCritic,
        meta_batch: int = 10,
        batch_size: int = 200,
        updates_per_iter: int = 1000,
        total_env_steps: int = 1_500_000,
        sac: SACv2Settings = SACv2Settings(),
        collect: MIERCollectSettings = MIERCollectSettings(),
        eval: EvalSettings = EvalSettings(),
        adapt: MIERAdaptSettings = MIERAdaptSettings(),
        seed: int = 0,
    ) -> None:
        super().__init__(family, family_overrides, total_env_steps, eval, seed)
        self.save_hyperparameters()
        for name, value in (("meta_batch", meta_batch), ("batch_size", batch_size),
                            ("updates_per_iter", updates_per_iter)):
            if value < 1:
                raise ValueError(f"model.{name} must be >= 1, got {value}")
        sac.validate()
        collect.validate()
        adapt.validate()
        self.sac, self.collect_cfg, self.adapt_cfg = sac, collect, adapt
        self.meta_batch, self.batch_size, self.updates_per_iter = meta_batch, batch_size, updates_per_iter
        obs_dim, act_dim = self.family.obs_dim, self.family.act_dim
        torch.manual_seed(seed)  # the nets' initial weights
        self.model = model(obs_dim, act_dim)
        self.context_dim = self.model.context_dim
        self.actor = actor(obs_dim, act_dim, self.context_dim)
        self.critic = critic(obs_dim, act_dim, self.context_dim)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(float(sac.log_alpha_init)))
        n_train = len(self.family.train_tasks)
        capacity = max(collect.replay_size // n_train, self.family.max_episode_steps)
        self.replay = MultiTaskReplay(n_train, capacity, obs_dim, act_dim, history_len=0)  # B_i: everything
        self.pre_replay = MultiTaskReplay(n_train, capacity, obs_dim, act_dim, history_len=0)  # P_i: φ₀ data
        self.sample_gen = torch.Generator().manual_seed(seed + 1)
        self.noise_gen = torch.Generator().manual_seed(seed + 2)
        self.policy = ContextPolicy(self.actor, self.context_dim, torch.Generator().manual_seed(seed + 3))
        self.eval_policy = ContextPolicy(self.actor, self.context_dim, torch.Generator().manual_seed(seed + 4))

    # ----------------------------------------------------------------------------- data
    def make_rollouts(self, evaluation: bool) -> Rollouts:
        if not evaluation:
            return Rollouts(self.family, self.family.train_tasks, self.policy, _ENV_HISTORY, self.seed)
        return Rollouts(self.family, self.family.eval_tasks, self.eval_policy, _ENV_HISTORY, self.seed + 5,
                        evaluation=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.model.make_optimizer(), self.critic.make_optimizer(), self.actor.make_optimizer(),
                torch.optim.Adam([self.log_alpha], lr=self.sac.alpha_lr)]

    # ----------------------------------------------------------------------------- training
    def iteration_env_steps(self, env_steps: int) -> int:
        cfg = self.collect_cfg
        per_iter = cfg.num_tasks_sample * cfg.steps_per_visit
        if env_steps == 0:
            return len(self.family.train_tasks) * cfg.initial_exploration_repeats * cfg.num_steps_prior + per_iter
        return per_iter

    def meta_batch_tasks(self) -> torch.Tensor:
        n = len(self.family.train_tasks)
        if n >= self.meta_batch:
            return torch.randperm(n, generator=self.sample_gen)[: self.meta_batch]
        return torch.randint(n, (self.meta_batch,), generator=self.sample_gen)

    def meta_train_iteration(self) -> dict[str, float]:
        opts = self.optimizers()
        t0, steps_before = time.perf_counter(), self.env_steps
        if self.env_steps == 0:
            self.initial_collection()
        returns: list[float] = []
        for _ in range(self.collect_cfg.num_tasks_sample):
            returns += self.visit(self.rollouts.sampler())
        t1 = time.perf_counter()
        tasks = self.meta_batch_tasks()
        sums = torch.zeros(8, device=self.device)  # one host sync per iteration
        for _ in range(self.updates_per_iter):
            sums += torch.stack(self.update(tasks, opts))  # type: ignore[arg-type]
            self.num_updates += 1
        t2 = time.perf_counter()
        m = (sums / self.updates_per_iter).tolist()
        return {
            "train/return": float(np.mean(returns)), "train/env_steps": float(self.env_steps),
            "train/updates": float(self.num_updates),
            "mier/model_loss_pre": m[0], "mier/model_loss_post": m[1], "mier/context_norm": m[2],
            "train/loss_critic": m[3], "train/loss_actor": m[4], "train/loss_alpha": m[5], "mier/alpha": m[6],
            "train/loss_model": m[7],
            "time/env_steps_per_s": (self.env_steps - steps_before) / max(t1 - t0, 1e-9),
            "time/updates_per_s": self.updates_per_iter / max(t2 - t1, 1e-9),
        }

    def update(self, tasks: torch.Tensor, opts: list[torch.optim.Optimizer]) -> list[torch.Tensor]:
        """One model meta-step and one SAC step on fresh D_adapt / D_eval of ``tasks``; the losses."""
        adapt = self.pre_replay.sample_per_task(tasks, self.batch_size, self.sample_gen).to(self.device)
        evaluate = self.replay.sample_per_task(tasks, self.batch_size, self.sample_gen).to(self.device)
        ms = model_meta_step(self.model, adapt, evaluate, opts[0], lambda loss: backward(self, loss))
        batch = evaluate.reshape(-1)
        context = ms.context.repeat_interleave(self.batch_size, dim=0)
        eps = torch.randn(batch.shape[0], self.family.act_dim, generator=self.noise_gen).to(self.device)
        next_eps = torch.randn(batch.shape[0], self.family.act_dim, generator=self.noise_gen).to(self.device)
        ss = sac_step(self, batch, context, eps, next_eps, opts[1:], self.sac, lambda loss: backward(self, loss))
        return [ms.loss_pre, ms.loss_post, ms.context.norm(dim=-1).mean(), ss.loss_critic, ss.loss_actor,
                ss.loss_alpha, ss.alpha, ms.loss_post]

    # ----------------------------------------------------------------------------- evaluation
    def make_adapter(self, task_index: int, run: int) -> MIERAdapt:
        # Seeded from the run's position, so evaluations are reproducible and need no checkpointed state.
        gen = torch.Generator().manual_seed(hash((self.seed, self.env_steps, task_index, run)) % 2**62)
        termination = getattr(self.family, "termination_fn", never_terminates)
        cfg = self.adapt_cfg
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        if cfg.relabel and fitting and not cfg.relabel_during_fit:
            # mier_public's eval_during_training: identification only; extrapolation is its own run mode.
            cfg = dataclasses.replace(cfg, relabel=False)
        return MIERAdapt(self.model, self.actor, self.critic, self.critic_target, self.log_alpha, cfg, self.sac,
                         gen, termination)

    def evaluate_task(self, task_index: int, adapt: bool | None = None) -> TaskResult:
        adapt = self.eval_cfg.adapt if adapt is None else adapt
        return evaluate_task(lambda run: self.make_adapter(task_index, run), self.eval_rollouts, task_index,
                             self.eval_cfg.episodes, self.batch_size, adapt, self.replay)

    # ----------------------------------------------------------------------------- checkpoints
    def method_state(self) -> dict[str, Any]:
        return {
            "replay": self.replay.state_dict(), "pre_replay": self.pre_replay.state_dict(),
            "rollouts": self.rollouts.state_dict(), "eval_rollouts": self.eval_rollouts.state_dict(),
            "policy": self.policy.state_dict(), "eval_policy": self.eval_policy.state_dict(),
            "sample_gen": self.sample_gen.get_state(), "noise_gen": self.noise_gen.get_state(),
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.replay.load_state_dict(state["replay"])
        self.pre_replay.load_state_dict(state["pre_replay"])
        self.rollouts.load_state_dict(state["rollouts"])
        self.eval_rollouts.load_state_dict(state["eval_rollouts"])
        self.policy.load_state_dict(state["policy"])
        self.eval_policy.load_state_dict(state["eval_policy"])
        self.sample_gen.set_state(state["sample_gen"])
        self.noise_gen.set_state(state["noise_gen"])
