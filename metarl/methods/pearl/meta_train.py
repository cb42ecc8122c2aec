"""PEARLMetaTrain: PEARL meta-training (Rakelly et al. 2019, Algorithm 1; oyster ``rl_algorithm.py``).

One training_step is one iteration::

    (first iteration only) num_initial_steps prior-z steps on every train task       collect.py
    num_tasks_sample times: draw a train task, clear its encoder buffer, collect its
        prior / posterior / extra-RL phases                                          collect.py
    updates_per_iter times: one gradient step of the encoder, Q, V and policy        update.py

Adaptation is posterior inference over z (PEARLAdapt); the validation loop runs oyster's protocol.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from metarl.data.replay import MultiTaskReplay
from metarl.data.rollouts import Rollouts
from metarl.methods.pearl.adapt import PEARLAdapt
from metarl.methods.pearl.collect import PEARLCollection
from metarl.methods.pearl.evaluation import evaluate_task
from metarl.methods.pearl.policy import LatentPolicy
from metarl.methods.pearl.settings import PEARLAdaptSettings, PEARLCollectSettings, SACSettings
from metarl.methods.pearl.update import StepLosses, pearl_step
from metarl.nets import ProbContextEncoder, TanhGaussianActor, TwinCritic, ValueNet
from metarl.training.evaluation import TaskResult
from metarl.training.module import MetaTrainModule, backward
from metarl.training.settings import EvalSettings

#: The env's history window is unused by PEARL (its context is a set of transitions); one step is
#: the cheapest the shared env pipeline allows.
_ENV_HISTORY = 1


class PEARLMetaTrain(PEARLCollection, MetaTrainModule):
    """Args:
    family, family_overrides, total_env_steps, eval, seed: as every method (MetaTrainModule).
    encoder, actor, critic, value: factories of the nets (the config gives their hyperparameters).
    meta_batch: tasks per gradient step, drawn with replacement (oyster ``meta_batch``).
    batch_size: RL transitions per task in a step (oyster ``batch_size``).
    embedding_batch_size: context transitions per task in a step (oyster ``embedding_batch_size``).
    updates_per_iter: gradient steps per iteration (oyster ``num_train_steps_per_itr``).
    kl_lambda: weight of the KL term, summed over the meta-batch (oyster ``kl_lambda``).
    """

    method_name = "pearl"
    title = "PEARL"
    train_metric_prefixes = ("train", "time", "pearl")

    def __init__(
        self,
        family: str = "point-robot",
        family_overrides: dict[str, Any] | None = None,
        encoder: Callable[[int, int], ProbContextEncoder] = ProbContextEncoder,
        actor: Callable[[int, int, int], TanhGaussianActor] = TanhGaussianActor,
        critic: Callable[[int, int, int], TwinCritic] = TwinCritic,
        value: Callable[[int, int], ValueNet] = ValueNet,
        meta_batch: int = 16,
        batch_size: int = 256,
        embedding_batch_size: int = 64,
        updates_per_iter: int = 2000,
        kl_lambda: float = 0.1,
        total_env_steps: int = 2_700_000,
        sac: SACSettings = SACSettings(),
        collect: PEARLCollectSettings = PEARLCollectSettings(),
        eval: EvalSettings = EvalSettings(),
        adapt: PEARLAdaptSettings = PEARLAdaptSettings(),
        seed: int = 0,
    ) -> None:
        super().__init__(family, family_overrides, total_env_steps, eval, seed)
        self.save_hyperparameters()
        for name, value_ in (("meta_batch", meta_batch), ("batch_size", batch_size),
                             ("embedding_batch_size", embedding_batch_size), ("updates_per_iter", updates_per_iter)):
            if value_ < 1:
                raise ValueError(f"model.{name} must be >= 1, got {value_}")
        if kl_lambda < 0:
            raise ValueError(f"model.kl_lambda must be >= 0, got {kl_lambda}")
        sac.validate()
        collect.validate()
        adapt.validate()
        self.sac, self.collect_cfg, self.adapt_cfg = sac, collect, adapt
        self.meta_batch, self.batch_size, self.embedding_batch_size = meta_batch, batch_size, embedding_batch_size
        self.updates_per_iter, self.kl_lambda = updates_per_iter, kl_lambda
        obs_dim, act_dim = self.family.obs_dim, self.family.act_dim
        torch.manual_seed(seed)  # the nets' initial weights
        self.encoder = encoder(obs_dim, act_dim)
        self.latent_size = self.encoder.latent_size
        self.actor = actor(obs_dim, act_dim, self.latent_size)
        self.critic = critic(obs_dim, act_dim, self.latent_size)
        self.value = value(obs_dim, self.latent_size)
        self.value_target = copy.deepcopy(self.value).requires_grad_(False)
        n_train = len(self.family.train_tasks)
        # B_i: everything collected on task i; E_i: the latest visit's prior (and posterior) data.
        self.replay = MultiTaskReplay(n_train, max(collect.replay_size // n_train, self.family.max_episode_steps),
                                      obs_dim, act_dim, history_len=0)
        enc_cap = max(collect.num_initial_steps, collect.num_steps_prior + collect.num_steps_posterior, 1)
        self.enc_replay = MultiTaskReplay(n_train, enc_cap, obs_dim, act_dim, history_len=0)
        self.sample_gen = torch.Generator().manual_seed(seed + 1)
        self.noise_gen = torch.Generator().manual_seed(seed + 2)
        self.policy = LatentPolicy(self.actor, self.latent_size, torch.Generator().manual_seed(seed + 3))
        self.eval_policy = LatentPolicy(self.actor, self.latent_size, torch.Generator().manual_seed(seed + 4))
        self.eval_policy.set_mode("deterministic")

    # ----------------------------------------------------------------------------- data
    def make_rollouts(self, evaluation: bool) -> Rollouts:
        if not evaluation:
            return Rollouts(self.family, self.family.train_tasks, self.policy, _ENV_HISTORY, self.seed)
        return Rollouts(self.family, self.family.eval_tasks, self.eval_policy, _ENV_HISTORY, self.seed + 5,
                        evaluation=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        # oyster has one Adam each for Q1 and Q2; Adam is per parameter, so one over both is the same.
        return [self.encoder.make_optimizer(), self.critic.make_optimizer(), self.value.make_optimizer(),
                self.actor.make_optimizer()]

    # ----------------------------------------------------------------------------- training
    def iteration_env_steps(self, env_steps: int) -> int:
        per_iter = self.collect_cfg.num_tasks_sample * self.collect_cfg.steps_per_visit
        if env_steps == 0:
            return len(self.family.train_tasks) * self.collect_cfg.num_initial_steps + per_iter
        return per_iter

    def meta_train_iteration(self) -> dict[str, float]:
        opts = self.optimizers()
        t0, steps_before = time.perf_counter(), self.env_steps
        if self.env_steps == 0:
            self.initial_collection()
        returns: list[float] = []
        for _ in range(self.collect_cfg.num_tasks_sample):
            returns += self.visit(self.rollouts.sampler())
        t1 = time.perf_counter()
        sums = torch.zeros(6, device=self.device)  # one host sync per iteration, none per step
        for _ in range(self.updates_per_iter):
            out = self.update(opts)  # type: ignore[arg-type]
            sums += torch.stack([out.loss_critic, out.loss_value, out.loss_actor, out.kl, out.z_mean_abs,
                                 out.z_var_mean])
            self.num_updates += 1
        t2 = time.perf_counter()
        means = (sums / self.updates_per_iter).tolist()
        return {
            "train/return": float(np.mean(returns)),
            "train/env_steps": float(self.env_steps),
            "train/updates": float(self.num_updates),
            "train/loss_critic": means[0], "train/loss_value": means[1], "train/loss_actor": means[2],
            "pearl/kl": means[3], "pearl/z_mean_abs": means[4], "pearl/z_var_mean": means[5],
            "time/env_steps_per_s": (self.env_steps - steps_before) / max(t1 - t0, 1e-9),
            "time/updates_per_s": self.updates_per_iter / max(t2 - t1, 1e-9),
        }

    def update(self, opts: list[torch.optim.Optimizer]) -> StepLosses:
        """Draw a meta-batch of train tasks (with replacement), their context from the encoder buffer
        and their RL batch from the replay, then one gradient step of every net."""
        tasks = torch.randint(len(self.family.train_tasks), (self.meta_batch,), generator=self.sample_gen)
        context = self.enc_replay.sample_per_task(tasks, self.embedding_batch_size, self.sample_gen).to(self.device)
        batch = self.replay.sample_per_task(tasks, self.batch_size, self.sample_gen).to(self.device).reshape(-1)
        z_eps = torch.randn(self.meta_batch, self.latent_size, generator=self.noise_gen).to(self.device)
        action_eps = torch.randn(batch.shape[0], self.family.act_dim, generator=self.noise_gen).to(self.device)
        return pearl_step(self, batch, context, z_eps, action_eps, opts, self.sac, self.kl_lambda,
                          lambda loss: backward(self, loss))

    # ----------------------------------------------------------------------------- evaluation
    def evaluate_task(self, task_index: int, adapt: bool | None = None) -> TaskResult:
        adapter = PEARLAdapt(self.encoder, self.adapt_cfg)
        adapt = self.eval_cfg.adapt if adapt is None else adapt
        return evaluate_task(self.eval_rollouts, adapter, task_index, self.eval_cfg.episodes, adapt)

    # ----------------------------------------------------------------------------- checkpoints
    def method_state(self) -> dict[str, Any]:
        return {
            "replay": self.replay.state_dict(),
            "enc_replay": self.enc_replay.state_dict(),
            "rollouts": self.rollouts.state_dict(),
            "eval_rollouts": self.eval_rollouts.state_dict(),
            "policy": self.policy.state_dict(),
            "eval_policy": self.eval_policy.state_dict(),
            "sample_gen": self.sample_gen.get_state(),
            "noise_gen": self.noise_gen.get_state(),
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.replay.load_state_dict(state["replay"])
        self.enc_replay.load_state_dict(state["enc_replay"])
        self.rollouts.load_state_dict(state["rollouts"])
        self.eval_rollouts.load_state_dict(state["eval_rollouts"])
        self.policy.load_state_dict(state["policy"])
        self.eval_policy.load_state_dict(state["eval_policy"])
        self.sample_gen.set_state(state["sample_gen"])
        self.noise_gen.set_state(state["noise_gen"])
