"""RL2MetaTrain: RL² meta-training (Duan et al. 2016, §2.2-2.3; methods-reference §4.1). One
training_step is one iteration::

    draw tasks_per_iter train tasks (uniformly, with replacement)
    run one trial of N episodes on each, all at once (one batched env; h = 0 at each trial's start,
        carried across its inner episodes)                                        data.BatchedRollouts
    advantages over whole trials (linear baseline, GAE)                            update.py
    PPO epochs (default) or one TRPO step on the re-unrolled recurrent policy       update.py

Adaptation is the recurrent state over a trial on a new task (RL2Adapt); no buffer is kept.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from metarl.data.rollouts import BatchedRollouts
from metarl.methods.rl2.adapt import RL2Adapt, inner_episode_returns
from metarl.methods.rl2.settings import OuterSettings, RL2AdaptSettings, TrialSettings
from metarl.methods.rl2.update import OuterStats, ppo_update, trial_advantages, trpo_update
from metarl.nets.recurrent_policy import RecurrentActing, RecurrentGaussianPolicy
from metarl.training.evaluation import TaskResult
from metarl.training.module import MetaTrainModule, backward
from metarl.training.settings import EvalSettings


class RL2MetaTrain(MetaTrainModule):
    """Args:
    family, family_overrides, total_env_steps, eval, seed: as every method (MetaTrainModule).
    policy: factory of the recurrent policy ``(input_dim, act_dim)`` (the config gives its sizes).
    trial: trials per iteration, episodes per trial, the inner-boundary input.
    outer: the PPO / TRPO update and its advantages.
    adapt: the meta-test trials (eval.episodes is the number of trials per eval task).
    """

    method_name = "rl2"
    title = "RL²"
    train_metric_prefixes = ("train", "time", "rl2")

    def __init__(
        self,
        family: str = "point-robot",
        family_overrides: dict[str, Any] | None = None,
        policy: Callable[[int, int], RecurrentGaussianPolicy] = RecurrentGaussianPolicy,
        total_env_steps: int = 1_280_000,
        trial: TrialSettings = TrialSettings(),
        outer: OuterSettings = OuterSettings(),
        eval: EvalSettings = EvalSettings(),
        adapt: RL2AdaptSettings = RL2AdaptSettings(),
        seed: int = 0,
    ) -> None:
        super().__init__(family, family_overrides, total_env_steps, eval, seed)
        self.save_hyperparameters()
        trial.validate()
        outer.validate()
        adapt.validate()
        self.trial_cfg, self.outer_cfg, self.adapt_cfg = trial, outer, adapt
        self.input_dim = self.family.obs_dim + self.family.act_dim + 2  # [o, a_prev, r_prev, d_prev]
        torch.manual_seed(seed)  # the policy's initial weights
        self.policy = policy(self.input_dim, self.family.act_dim)
        self.task_gen = torch.Generator().manual_seed(seed + 1)
        self.sample_gen = torch.Generator().manual_seed(seed + 2)  # PPO minibatch order
        self.acting = RecurrentActing(self.policy, torch.Generator().manual_seed(seed + 3))
        self.eval_acting = RecurrentActing(self.policy, torch.Generator().manual_seed(seed + 4),
                                           deterministic=adapt.deterministic)

    # ----------------------------------------------------------------------------- data
    @property
    def trial_steps(self) -> int:
        return self.trial_cfg.episodes_per_trial * self.family.max_episode_steps

    def _make_rollouts(self, tasks: list[Any], acting: RecurrentActing, seed: int, evaluation: bool) -> BatchedRollouts:
        # Building the collector runs the policy once: its draws are not part of any iteration (the
        # generators are saved after it and restored after it on resume).
        return BatchedRollouts(self.family, tasks, self.trial_steps, seed, policy=acting, evaluation=evaluation,
                               extra_transforms=[self.policy.make_tensordict_primer()],
                               trial_episodes=self.trial_cfg.episodes_per_trial,
                               trial_boundary=self.trial_cfg.boundary)

    def make_rollouts(self, evaluation: bool) -> BatchedRollouts:
        if not evaluation:
            return self._make_rollouts(self.family.train_tasks[:1] * self.trial_cfg.tasks_per_iter, self.acting,
                                       self.seed, False)
        return self._make_rollouts(self.family.eval_tasks[:1] * self.eval_cfg.episodes, self.eval_acting,
                                   self.seed + 5, True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.policy.make_optimizer()  # unused by the TRPO option (kept for one checkpoint layout)

    # ----------------------------------------------------------------------------- training
    def iteration_env_steps(self, env_steps: int) -> int:
        return self.trial_cfg.tasks_per_iter * self.trial_steps

    def sample_tasks(self) -> list[Any]:
        train = self.family.train_tasks
        idx = torch.randint(len(train), (self.trial_cfg.tasks_per_iter,), generator=self.task_gen)
        return [train[i] for i in idx.tolist()]

    def collect(self) -> Any:
        """One trial per env on freshly drawn train tasks: ``[tasks_per_iter, N T]``."""
        rollouts = self.rollouts
        rollouts.set_tasks(self.sample_tasks())
        with torch.no_grad():
            data = rollouts.collect()
        self.env_steps += data.numel()
        self.num_episodes += self.trial_cfg.tasks_per_iter * self.trial_cfg.episodes_per_trial
        return data

    def outer_update(self, data: Any) -> OuterStats:
        cfg = self.outer_cfg
        # The baseline's least squares runs on the CPU (where the data is collected); then to the policy.
        adv = trial_advantages(data, cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages).to(self.device)
        data = data.to(self.device)
        if cfg.algorithm == "trpo":
            return trpo_update(self.policy, data, adv, cfg)
        return ppo_update(self.policy, self.optimizers(), data, adv, cfg, self.sample_gen,  # type: ignore[arg-type]
                          lambda loss: backward(self, loss))

    def meta_train_iteration(self) -> dict[str, float]:
        t0, steps_before = time.perf_counter(), self.env_steps
        data = self.collect()
        t1 = time.perf_counter()
        stats = self.outer_update(data)
        self.num_updates += stats.updates
        t2 = time.perf_counter()
        returns = inner_episode_returns(data, self.trial_cfg.episodes_per_trial).mean(0)
        metrics = {
            "train/return": float(returns.mean()),
            "train/env_steps": float(self.env_steps),
            "train/updates": float(self.num_updates),
            "rl2/loss_surrogate": stats.loss_before, "rl2/loss_surrogate_after": stats.loss_after,
            "rl2/kl": stats.kl, "rl2/entropy": stats.entropy, "rl2/clip_fraction": stats.clip_fraction,
            "rl2/step_fraction": stats.step_fraction,
            "time/env_steps_per_s": (self.env_steps - steps_before) / max(t1 - t0, 1e-9),
            "time/updates_per_s": stats.updates / max(t2 - t1, 1e-9),
        }
        metrics.update({f"rl2/return_episode_{k + 1}": float(r) for k, r in enumerate(returns)})
        return metrics

    # ----------------------------------------------------------------------------- evaluation
    def evaluate_task(self, task_index: int) -> TaskResult:
        adapter = RL2Adapt(self.policy, self.adapt_cfg)
        runs = adapter.run_trials(self.eval_rollouts, self.family.eval_tasks[task_index],
                                  self.trial_cfg.episodes_per_trial)
        per_episode = runs.mean(0).tolist()
        metrics = {f"eval/return_episode_{k + 1}": v for k, v in enumerate(per_episode)}
        # eval.adapt = false: the return without the trial's memory is episode 1's (h = 0).
        post = per_episode[-1] if self.eval_cfg.adapt else per_episode[0]
        return TaskResult(task_index, per_episode[0], post, [statistics.fmean(r) for r in runs.tolist()], metrics)

    # ----------------------------------------------------------------------------- checkpoints
    def method_state(self) -> dict[str, Any]:
        return {
            "rollouts": self.rollouts.state_dict(),
            "eval_rollouts": self.eval_rollouts.state_dict(),
            "task_gen": self.task_gen.get_state(),
            "sample_gen": self.sample_gen.get_state(),
            "acting_gen": self.acting.generator.get_state(),
            "eval_acting_gen": self.eval_acting.generator.get_state(),
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        split_tasks = {"train": self.family.train_tasks, "eval": self.family.eval_tasks}
        self.rollouts.load_state_dict(state["rollouts"], split_tasks)
        self.eval_rollouts.load_state_dict(state["eval_rollouts"], split_tasks)
        self.task_gen.set_state(state["task_gen"])
        self.sample_gen.set_state(state["sample_gen"])
        self.acting.generator.set_state(state["acting_gen"])
        self.eval_acting.generator.set_state(state["eval_acting_gen"])
