"""MetaTrainModule: MQL meta-training (paper §3.1, eq. 15) — TD3 with a GRU context on the
multi-task objective, with adaptation on held-out tasks as the validation loop (§3.2).

One training_step is one meta-training iteration::

    collect `episodes_per_iter` episodes on train tasks drawn uniformly (uniform random actions
        during the cold start) and add them to the pooled multi-task replay
    repeat N times: sample a batch (histories gathered at sample time), TD3 update
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase
from torch.utils.data import DataLoader

from metarl import keys
from metarl.data.policy import ActingPolicy
from metarl.data.replay import MultiTaskReplay, episode_to_replay
from metarl.data.rollouts import Rollouts, episode_returns, split_episodes
from metarl.envs import make_task_family
from metarl.nets import Actor, ContextEncoder, TwinCritic
from metarl.training.adapt_settings import AdaptSettings
from metarl.training.base import MetaRLBase, TD3Settings
from metarl.training.checkpoint_state import EpochPosition, load_training_state, set_global_rng_state, training_state
from metarl.training.schedule import iteration_loader, list_loader
from metarl.training.settings import CollectSettings, EvalSettings


class MetaTrainModule(MetaRLBase):
    """Args:
    family: task family name (``metarl.envs.FAMILY_NAMES``); ``family_overrides`` are passed to it.
    encoder, actor, critic: factories of the nets (the config gives their hyperparameters).
    shared_encoder: one GRU for actor and critic (default: one each, as the reference code).
    history_len: H, the GRU sequence length (paper Table 1).
    batch_size: TD3 minibatch (paper appendix: 256).
    updates_per_iter: paper Table 1 "Parameter updates per iteration (meta-training)".
    total_env_steps: the meta-training budget.
    seed: seeds nets, tasks, envs, noise and sampling.
    """

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
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        for name, value, low in (("history_len", history_len, 1), ("batch_size", batch_size, 1),
                                 ("updates_per_iter", updates_per_iter, 1), ("total_env_steps", total_env_steps, 1)):
            if value < low:
                raise ValueError(f"model.{name} must be >= {low}, got {value}")
        td3.validate()
        collect.validate()
        eval.validate()
        adapt.validate()
        self.family = make_task_family(family, **(family_overrides or {}))
        self.td3, self.collect_cfg, self.eval_cfg, self.adapt_cfg = td3, collect, eval, adapt
        self.history_len, self.batch_size = history_len, batch_size
        self.updates_per_iter, self.total_env_steps = updates_per_iter, total_env_steps
        self.seed = seed
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
        self._rollouts: Rollouts | None = None
        self._eval_rollouts: Rollouts | None = None
        self._test_results: list[Any] = []
        self.env_steps = 0
        self.num_updates = 0
        self.num_episodes = 0
        self.iteration = 0
        self.epoch_position = EpochPosition()  # checkpointed: see checkpoint_state.py
        self._pending_rng: dict[str, Any] | None = None

    # ----------------------------------------------------------------------------- data
    @property
    def rollouts(self) -> Rollouts:
        if self._rollouts is None:
            self._rollouts = Rollouts(self.family, self.family.train_tasks, self.policy, self.history_len, self.seed)
        return self._rollouts

    @property
    def eval_rollouts(self) -> Rollouts:
        if self._eval_rollouts is None:
            policy = ActingPolicy(self.actor, self.actor_encoder, self.family.act_dim, 0.0,
                                  torch.Generator().manual_seed(self.seed + 4))
            self._eval_rollouts = Rollouts(self.family, self.family.eval_tasks, policy, self.history_len,
                                           self.seed + 5, evaluation=True)
        return self._eval_rollouts

    def train_dataloader(self) -> DataLoader:
        return iteration_loader(self._start_epoch, self._epoch_continues)

    def _start_epoch(self) -> None:
        self.epoch_position.start(self.env_steps)

    def _epoch_continues(self) -> bool:
        return self.epoch_position.decide(self._next_iteration_in_epoch)

    def _next_iteration_in_epoch(self) -> bool:
        if self.env_steps >= self.total_env_steps:
            if self._trainer is not None:
                self.trainer.should_stop = True
            return False
        return self.env_steps - self.epoch_position.start_env_steps < self.eval_cfg.every_env_steps

    def val_dataloader(self) -> DataLoader:
        n = len(self.family.eval_tasks)
        k = n if self.eval_cfg.num_tasks is None else min(self.eval_cfg.num_tasks, n)
        return list_loader(list(range(k)))

    def test_dataloader(self) -> DataLoader:
        # Meta-test: the full protocol on every eval task.
        return list_loader(list(range(len(self.family.eval_tasks))))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return self.make_optimizers()

    # ----------------------------------------------------------------------------- training
    def _collect(self) -> dict[str, float]:
        """Cold start (random actions, short episodes cycling through the tasks) until its budget,
        then `episodes_per_iter` exploratory episodes on uniformly drawn train tasks."""
        cfg = self.collect_cfg
        cold = self.env_steps < cfg.cold_start_steps
        if cold:
            self.rollouts.sampler.mode = "cycle"
            frames = min(cfg.cold_start_steps - self.env_steps, cfg.episodes_per_iter * self.family.max_episode_steps)
            ep_len = min(cfg.cold_start_episode_len or self.family.max_episode_steps, self.family.max_episode_steps)
            batch = self.rollouts.collect(max(frames, 1), "random", episode_cap=ep_len)
        else:
            self.rollouts.sampler.mode = "uniform"
            batch = self.rollouts.collect(cfg.episodes_per_iter * self.family.max_episode_steps, "explore")
        self._store(batch)
        stats = episode_returns(batch)
        metrics = {"train/return": float(np.mean([r for _, r, _ in stats]))}
        for task, ret, _ in stats:
            metrics[f"train/return_task/{task}"] = ret
        return metrics

    def _store(self, batch: TensorDictBase) -> None:
        for ep in split_episodes(batch):
            self.replay.extend(episode_to_replay(ep, int(ep[keys.TASK_ID][0]), self.num_episodes))
            self.num_episodes += 1
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

    def training_step(self, batch: Any, batch_idx: int) -> None:
        self._restore_rng_if_resumed()
        critic_opt, actor_opt = self.optimizers()  # type: ignore[misc]
        t0 = time.perf_counter()
        steps_before = self.env_steps
        metrics = self._collect()
        t1 = time.perf_counter()
        n = self._n_updates(self.env_steps - steps_before)
        # Losses are summed on the device: one host sync per iteration (the float() below), none per update.
        loss_c = loss_a = torch.zeros((), device=self.device)
        n_actor = 0
        for _ in range(n):
            sample = self.replay.sample(self.batch_size, self.sample_gen).to(self.device)
            noise = torch.randn(sample.shape[0], self.act_dim, generator=self.noise_gen).to(self.device)
            out = self.td3_update(sample, self.num_updates, critic_opt, actor_opt, self.td3, noise)
            self.num_updates += 1
            loss_c = loss_c + out.loss_critic
            if out.loss_actor is not None:
                loss_a, n_actor = loss_a + out.loss_actor, n_actor + 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # updates/s must time the work, not its queueing
        t2 = time.perf_counter()
        self.iteration += 1
        metrics.update({
            "train/env_steps": float(self.env_steps),
            "train/updates": float(self.num_updates),
            "time/env_steps_per_s": (self.env_steps - steps_before) / max(t1 - t0, 1e-9),
        })
        if n:
            metrics["train/loss_critic"] = float(loss_c) / n
            metrics["time/updates_per_s"] = n / max(t2 - t1, 1e-9)
        if n_actor:
            metrics["train/loss_actor"] = float(loss_a) / n_actor
        self._check_finite(metrics)
        bar = {"train/env_steps", "train/return"}
        self.log_dict({k: v for k, v in metrics.items() if k in bar}, prog_bar=True, batch_size=1)
        self.log_dict({k: v for k, v in metrics.items() if k not in bar}, batch_size=1)

    def _check_finite(self, metrics: dict[str, float]) -> None:
        """Stop on a NaN/inf loss or parameter, before anything is logged or checkpointed (the
        exception skips this iteration's checkpoint hooks, so the last good checkpoint stays)."""
        where = (f"at update {self.num_updates}, iteration {self.iteration} (env step {self.env_steps}); "
                 "training stopped, the last checkpoint is untouched")
        for name in ("train/loss_critic", "train/loss_actor"):
            if name in metrics and not np.isfinite(metrics[name]):
                raise FloatingPointError(f"{name} is {metrics[name]} {where}")
        params = list(self.named_parameters())
        # One host sync for all parameters; names are looked up only when something is wrong.
        if not bool(torch.stack([torch.isfinite(p).all() for _, p in params]).all()):
            bad = next(name for name, p in params if not torch.isfinite(p).all())
            raise FloatingPointError(f"parameter {bad} is not finite {where}")

    # ----------------------------------------------------------------------------- validation
    def validation_step(self, task_index: int, batch_idx: int) -> None:
        from metarl.training.evaluation import evaluate_task

        with torch.inference_mode(False), torch.enable_grad():
            result = evaluate_task(self, task_index)
        self.log_dict({**result.scalar_metrics(), "eval/env_steps": float(self.env_steps)}, batch_size=1)
        result.log_extras(self)

    def test_step(self, task_index: int, batch_idx: int) -> None:
        from metarl.training.evaluation import evaluate_task

        with torch.inference_mode(False), torch.enable_grad():
            result = evaluate_task(self, task_index)
        self._test_results.append(result)
        self.log_dict(result.scalar_metrics(), batch_size=1)

    def on_test_epoch_start(self) -> None:
        self._test_results = []

    def on_test_epoch_end(self) -> None:
        from metarl.training.report import report_test

        report_test(self, self._test_results)

    # ----------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["metarl"] = training_state(self)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        load_training_state(self, checkpoint.get("metarl"))

    def _restore_rng_if_resumed(self) -> None:
        if self._pending_rng is not None:
            set_global_rng_state(self._pending_rng)
            self._pending_rng = None

    def on_fit_start(self) -> None:
        # W&B charts over env steps (the paper's Fig. 5 axis), not over Lightning's step counter.
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                run = logger.experiment
                run.define_metric("train/env_steps")
                run.define_metric("eval/env_steps")
                for prefix in ("train", "time"):
                    run.define_metric(f"{prefix}/*", step_metric="train/env_steps")
                for prefix in ("eval", "adapt"):
                    run.define_metric(f"{prefix}/*", step_metric="eval/env_steps")

    def on_train_start(self) -> None:
        random.seed(self.seed)
        np.random.seed(self.seed)
