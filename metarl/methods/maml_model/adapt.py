"""MAMLModelAdapt: what adapting to a new task means for MAML with a model (GrBAL; Nagabandi et al.,
ICLR 2019, §4.2-4.3; the lecture's "MAML with model-based RL", seed 002; learning_to_adapt
``samplers/sampler.py`` and ``policies/mpc_controller.py``).

Online, before every action a_t of an episode:

    1. adapt the model f_θ -> f_θ'_t by one inner step on the episode's last M transitions
       (the update rule u_ψ, §4.2; nothing before the episode's start, so none at t = 0)
    2. plan a_t ... a_{t+H-1} with f_θ'_t (MPC: random shooting or CEM) and execute a_t

θ'_t is recomputed from θ at every step (learning_to_adapt ``switch_to_pre_adapt``): the meta-trained
parameters never change, θ'_t is a parameter dict run through ``functional_call``. Without
adaptation the same planner acts with f_θ (``eval/return_pre_adapt``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from metarl.algorithms.mpc import ModelStep, cem, known_reward, random_shooting
from metarl.data.history import window_transitions
from metarl.methods.maml_model.settings import MPCSettings
from metarl.methods.maml_model.update import Transitions, adapted_params, reward_target
from metarl.nets import DeltaDynamicsModel
from metarl.training.module import AdaptModule

ACTION_LOW, ACTION_HIGH = -1.0, 1.0  # every metarl family acts in [-1, 1]


class MAMLModelAdapt(AdaptModule):
    """Online adaptation and planning with a meta-trained model, held read-only. The planner scores a
    sequence with ``reward_fn`` r(s, a, s') (GrBAL: the env's known reward), or, with None, with the
    model's reward head."""

    def __init__(self, model: DeltaDynamicsModel, act_dim: int, past_steps: int, mpc: MPCSettings,
                 reward_fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None) -> None:
        super().__init__()
        if (reward_fn is None) != model.reward_head:
            raise ValueError("MAMLModelAdapt: give a reward_fn exactly when the model has no reward head")
        self.model, self.act_dim, self.past_steps, self.mpc = model, act_dim, past_steps, mpc
        self.reward_fn = reward_fn

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return next(self.model.parameters()).device

    def adapt(self, past: Transitions) -> dict[str, Tensor]:
        """θ' = θ − α ∇θ L(θ; past): one inner step on all weights (detached; θ is not changed)."""
        theta = {n: p.detach() for n, p in self.model.named_parameters()}
        return adapted_params(self.model, theta, past.to(self.device), first_order=True)

    def plan(self, obs: Tensor, params: Mapping[str, Tensor] | None, generator: torch.Generator) -> Tensor:
        """The MPC action ``[A]`` at ``obs`` ``[O]`` with the model under ``params`` (None: θ)."""
        cfg = self.mpc

        def model_step(o: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
            next_obs, reward = self.model.step(o, a, params)
            assert reward is not None  # the reward head (checked at construction)
            return next_obs, reward

        step: ModelStep = model_step
        if self.reward_fn is not None:
            step = known_reward(lambda o, a: self.model.step(o, a, params)[0], self.reward_fn)

        obs = obs.to(self.device)
        if cfg.planner == "cem":
            return cem(step, obs, self.act_dim, generator, cfg.horizon, cfg.n_candidates, ACTION_LOW, ACTION_HIGH,
                       cfg.discount, cfg.cem_iterations, cfg.cem_elite_frac, cfg.cem_alpha)
        return random_shooting(step, obs, self.act_dim, generator, cfg.horizon, cfg.n_candidates, ACTION_LOW,
                               ACTION_HIGH, cfg.discount)

    def act(self, obs: Tensor, window: Tensor, steps: int, generator: torch.Generator, online: bool) -> Tensor:
        """a_t at step ``steps`` = t of an episode: with ``online``, adapt on the episode's last
        min(t, M) transitions (from its acting-time ``window``) and plan with θ'_t; else plan with θ."""
        params = None
        if online and steps > 0:
            params = self.adapt(Transitions(*window_transitions(window, obs, steps, self.act_dim)))
        return self.plan(obs, params, generator)

    def online_losses(self, episode: Transitions, future_steps: int) -> tuple[float, float]:
        """The model loss before and after the inner step along an episode ``[T]`` played with online
        adaptation: at every step t >= 1, L(θ; D_t) and L(θ'_t; D_t) on D_t, the next ``future_steps``
        transitions from t, with θ'_t adapted on the M before t (the model the planner used at t)."""
        episode = episode.to(self.device)
        n = episode.obs.shape[0]
        pre, post = [], []
        with torch.no_grad():
            for t in range(1, n):
                params = self.adapt(Transitions(*(x[max(0, t - self.past_steps): t] for x in episode)))
                f = Transitions(*(x[t: t + future_steps] for x in episode))
                pre.append(float(self.model.loss(f.obs, f.action, f.next_obs, reward_target(self.model, f))))
                post.append(float(self.model.loss(f.obs, f.action, f.next_obs, reward_target(self.model, f),
                                                  params=params)))
        return (statistics.fmean(pre), statistics.fmean(post)) if pre else (float("nan"), float("nan"))
