"""MAMLMetaTrain: MAML-PG meta-training (Finn et al. 2017, Algorithm 3; MAML-TRPO of ProMP / garage /
pytorch-maml-rl; methods-reference §5.1). One training_step is one iteration::

    draw M train tasks; K episodes of each under theta, all at once (one batched env of M K envs)
    per task: advantages (linear baseline), phi_i = theta - alpha grad L_i^in(theta)     update.py
    K episodes of each task under its phi_i (env group i acts with phi_i)
    one TRPO step on theta through the inner steps (second order; first order option;
        PPO steps as an option)                                                           update.py

Adaptation is one inner step on a new task (MAMLAdapt).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from metarl import keys
from metarl.data.rollouts import BatchedRollouts
from metarl.methods.maml.adapt import MAMLAdapt
from metarl.methods.maml.settings import MAMLSettings
from metarl.methods.maml.update import adapted_params, outer_ppo_step, outer_trpo_step, task_batches
from metarl.nets.gaussian_mlp import GaussianMLPPolicy, GroupActing
from metarl.nets.optim import adam
from metarl.training.evaluation import TaskResult
from metarl.training.module import MetaTrainModule, backward
from metarl.training.settings import EvalSettings


class MAMLMetaTrain(MetaTrainModule):
    """Args:
    family, family_overrides, total_env_steps, eval, seed: as every method (MetaTrainModule).
    policy: factory of the Gaussian MLP policy ``(obs_dim, act_dim)``.
    maml: tasks and episodes per iteration, the inner step, the outer TRPO step.
    """

    method_name = "maml"
    title = "MAML-PG"
    train_metric_prefixes = ("train", "time", "maml")

    def __init__(
        self,
        family: str = "point-robot",
        family_overrides: dict[str, Any] | None = None,
        policy: Callable[[int, int], GaussianMLPPolicy] = GaussianMLPPolicy,
        total_env_steps: int = 4_800_000,
        maml: MAMLSettings = MAMLSettings(),
        eval: EvalSettings = EvalSettings(),
        seed: int = 0,
    ) -> None:
        super().__init__(family, family_overrides, total_env_steps, eval, seed)
        self.save_hyperparameters()
        maml.validate()
        self.cfg = maml
        torch.manual_seed(seed)  # the policy's initial weights
        self.policy = policy(self.family.obs_dim, self.family.act_dim)
        self.task_gen = torch.Generator().manual_seed(seed + 1)
        self.acting = GroupActing(self.policy, torch.Generator().manual_seed(seed + 3))
        self.eval_acting = GroupActing(self.policy, torch.Generator().manual_seed(seed + 4))

    # ----------------------------------------------------------------------------- data
    def _make(self, n_envs: int, tasks: list[Any], acting: GroupActing, seed: int, evaluation: bool) -> BatchedRollouts:
        return BatchedRollouts(self.family, tasks[:1] * n_envs, self.family.max_episode_steps, seed, policy=acting,
                               evaluation=evaluation)

    def make_rollouts(self, evaluation: bool) -> BatchedRollouts:
        if not evaluation:
            n = self.cfg.tasks_per_iter * self.cfg.episodes_per_task
            return self._make(n, self.family.train_tasks, self.acting, self.seed, False)
        return self._make(self.cfg.episodes_per_task, self.family.eval_tasks, self.eval_acting, self.seed + 5, True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.policy.parameters(), self.cfg.ppo_lr)  # the PPO option's (TRPO steps by itself)

    # ----------------------------------------------------------------------------- training
    def iteration_env_steps(self, env_steps: int) -> int:
        return 2 * self.cfg.tasks_per_iter * self.cfg.episodes_per_task * self.family.max_episode_steps

    def meta_train_iteration(self) -> dict[str, float]:
        cfg, m, k = self.cfg, self.cfg.tasks_per_iter, self.cfg.episodes_per_task
        t0 = time.perf_counter()
        train = self.family.train_tasks
        tasks = [train[i] for i in torch.randint(len(train), (m,), generator=self.task_gen).tolist()]
        self.rollouts.set_tasks([t for t in tasks for _ in range(k)])
        self.acting.params = None
        with torch.no_grad():
            pre_data = self.rollouts.collect()
        pre = task_batches(pre_data, m, cfg.gamma, cfg.gae_lambda, self.device)
        theta = dict(self.policy.named_parameters())
        self.acting.params = [{n: p.detach() for n, p in phi.items()}
                              for phi in adapted_params(self.policy, theta, pre, cfg)]
        try:
            with torch.no_grad():
                post_data = self.rollouts.collect()
        finally:
            self.acting.params = None
        post = task_batches(post_data, m, cfg.gamma, cfg.gae_lambda, self.device)
        self.env_steps += pre_data.numel() + post_data.numel()
        self.num_episodes += 2 * m * k
        t1 = time.perf_counter()
        if cfg.outer == "ppo":
            stats = outer_ppo_step(self.policy, self.optimizers(), pre, post, cfg,  # type: ignore[arg-type]
                                   lambda loss: backward(self, loss))
            self.num_updates += cfg.ppo_steps
        else:
            stats = outer_trpo_step(self.policy, pre, post, cfg)
            self.num_updates += 1
        t2 = time.perf_counter()
        ret_pre = float(pre_data[keys.REWARD].sum() / (m * k))
        ret_post = float(post_data[keys.REWARD].sum() / (m * k))
        return {
            "train/return": ret_post, "train/return_pre_adapt": ret_pre,
            "train/env_steps": float(self.env_steps), "train/updates": float(self.num_updates),
            "maml/loss_before": stats.loss_before, "maml/loss_after": stats.loss_after,
            "maml/kl_after": stats.kl_after, "maml/step_fraction": stats.step_fraction,
            "maml/entropy": float((self.policy.log_std.detach() + 1.4189385332046727).sum()),
            "time/env_steps_per_s": (pre_data.numel() + post_data.numel()) / max(t1 - t0, 1e-9),
            "time/updates_per_s": (1 if cfg.outer == "trpo" else cfg.ppo_steps) / max(t2 - t1, 1e-9),
        }

    # ----------------------------------------------------------------------------- evaluation
    def evaluate_task(self, task_index: int) -> TaskResult:
        pre, post, _ = MAMLAdapt(self.policy, self.cfg).adapt(self.eval_rollouts, self.family.eval_tasks[task_index])
        # eval.adapt = false: the return without adaptation is theta's.
        return TaskResult(task_index, pre, post if self.eval_cfg.adapt else pre, None, {})

    # ----------------------------------------------------------------------------- checkpoints
    def method_state(self) -> dict[str, Any]:
        return {
            "rollouts": self.rollouts.state_dict(),
            "eval_rollouts": self.eval_rollouts.state_dict(),
            "task_gen": self.task_gen.get_state(),
            "acting_gen": self.acting.generator.get_state(),
            "eval_acting_gen": self.eval_acting.generator.get_state(),
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        split_tasks = {"train": self.family.train_tasks, "eval": self.family.eval_tasks}
        self.rollouts.load_state_dict(state["rollouts"], split_tasks)
        self.eval_rollouts.load_state_dict(state["eval_rollouts"], split_tasks)
        self.task_gen.set_state(state["task_gen"])
        self.acting.generator.set_state(state["acting_gen"])
        self.eval_acting.generator.set_state(state["eval_acting_gen"])
