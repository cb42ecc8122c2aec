"""MAMLModelMetaTrain: MAML with a model (GrBAL; Nagabandi et al., ICLR 2019, Algorithm 1; learning_to_adapt
``trainers/mb_trainer.py``, ``dynamics/meta_mlp_dynamics.py``; methods-reference §6.1). One training_step
is one iteration::

    collect: first iteration initial_random_steps random steps; then steps_per_iter steps of MPC with
        the model adapted online at every step (adapt.py); every episode on a drawn train task,
        stored whole (segments never cross an episode)                           policy.py, data.trajectories
    normalisation of the model's inputs and targets from all stored transitions     update.py
    updates_per_iter times: draw meta_batch segments of M past + K future transitions;
        per segment θ'_j = θ − α ∇θ L(θ; past_j) (all weights, second order unless first_order);
        Adam step on (1/N) Σ_j L(θ'_j; future_j)                                    update.py

Adaptation (MAMLModelAdapt) is the same inner step on the current episode's last M transitions before
every action, then MPC with the adapted model.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from metarl import keys
from metarl.data.replay import episode_to_replay
from metarl.data.rollouts import Rollouts, split_episodes
from metarl.data.trajectories import TrajectoryReplay
from metarl.methods.maml_model.adapt import MAMLModelAdapt
from metarl.methods.maml_model.policy import MPCPolicy
from metarl.methods.maml_model.settings import CollectSettings, MAMLModelSettings, MPCSettings
from metarl.methods.maml_model.update import fit_normalization, meta_step, transitions
from metarl.nets import DeltaDynamicsModel
from metarl.training.evaluation import TaskResult
from metarl.training.module import MetaTrainModule, backward
from metarl.training.settings import EvalSettings


class MAMLModelMetaTrain(MetaTrainModule):
    """Args:
    family, family_overrides, total_env_steps, eval, seed: as every method (MetaTrainModule).
    model: factory of the DeltaDynamicsModel ``(obs_dim, act_dim)``; its config holds the sizes, the
        outer lr and the inner step size α, and whether it predicts the reward (``reward_head``). Without
        a reward head the planner uses the family's known reward (GrBAL's setting: the families whose
        tasks vary the dynamics only, such as point-robot-rotated); with one, the model's.
    maml: the segments (M past, K future), the meta-batch, meta-steps per iteration, first order.
    collect: random first iteration, steps per iteration, online adaptation while collecting.
    mpc: the planner.
    """

    method_name = "maml_model"
    title = "GrBAL (MAML with a model)"
    train_metric_prefixes = ("train", "time", "model")

    def __init__(
        self,
        family: str = "point-robot",
        family_overrides: dict[str, Any] | None = None,
        model: Callable[[int, int], DeltaDynamicsModel] = DeltaDynamicsModel,
        total_env_steps: int = 250_000,
        maml: MAMLModelSettings = MAMLModelSettings(),
        collect: CollectSettings = CollectSettings(),
        mpc: MPCSettings = MPCSettings(),
        eval: EvalSettings = EvalSettings(),
        seed: int = 0,
    ) -> None:
        super().__init__(family, family_overrides, total_env_steps, eval, seed)
        self.save_hyperparameters()
        for settings in (maml, collect, mpc):
            settings.validate()
        self.cfg, self.collect_cfg, self.mpc = maml, collect, mpc
        obs_dim, act_dim = self.family.obs_dim, self.family.act_dim
        torch.manual_seed(seed)  # the model's initial weights
        self.model = model(obs_dim, act_dim)
        if not self.model.reward_head and self.family.reward_fn is None:
            raise ValueError(f"model.init_args.reward_head: false needs a family whose reward the planner knows "
                             f"(point-robot-rotated); {self.family.name}'s reward depends on its task, so set "
                             f"reward_head: true (methods-reference §6.4)")
        n_train = len(self.family.train_tasks)
        capacity = max(collect.replay_size // n_train, self.family.max_episode_steps)
        self.replay = TrajectoryReplay(n_train, capacity, obs_dim, act_dim, history_len=0)
        self.sample_gen = torch.Generator().manual_seed(seed + 1)
        self.policy = MPCPolicy(self.adapter(), torch.Generator().manual_seed(seed + 2))
        self.eval_policy = MPCPolicy(self.adapter(), torch.Generator().manual_seed(seed + 3))

    def adapter(self) -> MAMLModelAdapt:
        """Online adaptation with the meta-trained model (it adapts functionally: θ never changes)."""
        reward_fn = None if self.model.reward_head else self.family.reward_fn
        return MAMLModelAdapt(self.model, self.family.act_dim, self.cfg.past_steps, self.mpc, reward_fn)

    # ----------------------------------------------------------------------------- data
    def make_rollouts(self, evaluation: bool) -> Rollouts:
        # The env's history window is the current episode's last M steps: the online adaptation's data.
        if not evaluation:
            return Rollouts(self.family, self.family.train_tasks, self.policy, self.cfg.past_steps, self.seed)
        return Rollouts(self.family, self.family.eval_tasks, self.eval_policy, self.cfg.past_steps, self.seed + 5,
                        evaluation=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.model.make_optimizer()

    # ----------------------------------------------------------------------------- training
    def iteration_env_steps(self, env_steps: int) -> int:
        if env_steps == 0 and self.collect_cfg.initial_random_steps > 0:
            return self.collect_cfg.initial_random_steps
        return self.collect_cfg.steps_per_iter

    def collect(self, steps: int, mode: str) -> list[float]:
        """``steps`` env steps acting in ``mode``; every episode stored (task by task) and counted."""
        returns = []
        for ep in split_episodes(self.rollouts.collect(steps, mode)):
            self.replay.extend(episode_to_replay(ep, int(ep[keys.TASK_ID][0]), self.num_episodes))
            self.num_episodes += 1
            self.env_steps += ep.shape[0]
            returns.append(float(ep[keys.REWARD].sum()))
        return returns

    def meta_train_iteration(self) -> dict[str, float]:
        t0, steps_before = time.perf_counter(), self.env_steps
        random_first = self.env_steps == 0 and self.collect_cfg.initial_random_steps > 0
        mode = "random" if random_first else "adapt" if self.collect_cfg.adapt_online else "plan"
        returns = self.collect(self.iteration_env_steps(self.env_steps), mode)
        t1 = time.perf_counter()
        fit_normalization(self.model, self.replay.stored())
        opt = self.optimizers()
        sums = torch.zeros(2, device=self.device)  # one host sync per iteration
        for _ in range(self.cfg.updates_per_iter):
            segments = self.replay.sample_segments(self.cfg.meta_batch, self.cfg.segment_steps, self.sample_gen)
            step = meta_step(self.model, segments.to(self.device), self.cfg.past_steps, self.cfg.first_order,
                             opt, lambda loss: backward(self, loss))  # type: ignore[arg-type]
            sums += torch.stack([step.loss_pre, step.loss_post])
            self.num_updates += 1
        t2 = time.perf_counter()
        loss_pre, loss_post = (sums / self.cfg.updates_per_iter).tolist()
        return {
            "train/return": statistics.fmean(returns), "train/env_steps": float(self.env_steps),
            "train/updates": float(self.num_updates), "model/loss_pre": loss_pre, "model/loss_post": loss_post,
            "time/env_steps_per_s": (self.env_steps - steps_before) / max(t1 - t0, 1e-9),
            "time/updates_per_s": self.cfg.updates_per_iter / max(t2 - t1, 1e-9),
        }

    # ----------------------------------------------------------------------------- evaluation
    def evaluate_task(self, task_index: int) -> TaskResult:
        """Per run: one episode planning with θ (pre), one with online adaptation (post), and the model
        loss before / after the inner step along the adapted episode."""
        pres, posts, losses = [], [], []
        for run in range(self.eval_cfg.episodes):
            # Seeded from the run's position: evaluations are reproducible and need no checkpointed state.
            self.eval_policy.generator.manual_seed(hash((self.seed, self.env_steps, task_index, run)) % 2**62)
            pres.append(float(self.eval_rollouts.run_episode(task_index, "plan")[keys.REWARD].sum()))
            if not self.eval_cfg.adapt:
                continue
            episode = self.eval_rollouts.run_episode(task_index, "adapt")
            posts.append(float(episode[keys.REWARD].sum()))
            losses.append(self.eval_policy.adapter.online_losses(transitions(episode), self.cfg.future_steps))
        pre = statistics.fmean(pres)
        if not self.eval_cfg.adapt:
            return TaskResult(task_index, pre, pre)
        metrics = {"adapt/model_loss_pre": statistics.fmean(x[0] for x in losses),
                   "adapt/model_loss_post": statistics.fmean(x[1] for x in losses)}
        return TaskResult(task_index, pre, statistics.fmean(posts), metrics=metrics)

    # ----------------------------------------------------------------------------- checkpoints
    def method_state(self) -> dict[str, Any]:
        return {
            "replay": self.replay.state_dict(), "rollouts": self.rollouts.state_dict(),
            "eval_rollouts": self.eval_rollouts.state_dict(), "policy": self.policy.state_dict(),
            "sample_gen": self.sample_gen.get_state(),
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.replay.load_state_dict(state["replay"])
        self.rollouts.load_state_dict(state["rollouts"])
        self.eval_rollouts.load_state_dict(state["eval_rollouts"])
        self.policy.load_state_dict(state["policy"])
        self.sample_gen.set_state(state["sample_gen"])
