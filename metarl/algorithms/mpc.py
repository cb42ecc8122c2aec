"""Model-predictive control over a learned model: random shooting and the cross-entropy method.

GrBAL (Nagabandi et al., ICLR 2019; iclavera/learning_to_adapt ``policies/mpc_controller.py``) and
the lecture's "MAML with a model" (seed 002: "plan a_t … a_{t+h} using the adapted model"): score
candidate action sequences by the model's predicted return ``Σ_h γ^h r(ŝ_h, a_h, ŝ_{h+1})`` and
execute the first action of the best one. All candidates go through the model as one batch per
planning step. Planning needs no gradient, so it runs under ``no_grad`` (a model with trainable
parameters would otherwise build a graph over n_candidates × horizon rows). Randomness comes only
from the passed generator; the draws are made on the generator's device and moved to the states'
(a CPU generator, checkpointed with the run, also plans for a model on a GPU).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["ModelStep", "cem", "known_reward", "random_shooting", "sequence_returns"]

#: ``(obs [B, O], action [B, A]) -> (next_obs [B, O], reward [B] or [B, 1])``: one model step.
ModelStep = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def known_reward(
    dynamics: Callable[[Tensor, Tensor], Tensor], reward_fn: Callable[[Tensor, Tensor, Tensor], Tensor]
) -> ModelStep:
    """A ``ModelStep`` from a dynamics model ``(s, a) -> s'`` and an analytic reward ``r(s, a, s')``
    (GrBAL's setting: ``env.reward(obs, act, next_obs)``, asserted to exist by its controller)."""

    def step(obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        next_obs = dynamics(obs, action)
        return next_obs, reward_fn(obs, action, next_obs)

    return step


def sequence_returns(step: ModelStep, obs: Tensor, actions: Tensor, discount: float = 1.0) -> Tensor:
    """Predicted returns of action sequences from one start state per row.

    Args:
        step: the model.
        obs: ``[M, O]`` start states.
        actions: ``[M, N, H, A]``: N candidate sequences of length H per start state.
        discount: γ in [0, 1] (GrBAL: 1).

    Returns:
        ``[M, N]`` ``Σ_h γ^h r_h``.
    """
    if obs.dim() != 2 or actions.dim() != 4 or actions.shape[0] != obs.shape[0]:
        raise ValueError(f"sequence_returns: need obs [M, O] and actions [M, N, H, A]; got "
                         f"{list(obs.shape)}, {list(actions.shape)}")
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"sequence_returns: discount must be in [0, 1], got {discount}")
    m, n, horizon, act_dim = actions.shape
    state = obs.unsqueeze(1).expand(m, n, obs.shape[-1]).reshape(m * n, -1)
    total = torch.zeros(m * n, dtype=obs.dtype, device=obs.device)
    for h in range(horizon):
        state, reward = step(state, actions[:, :, h].reshape(m * n, act_dim))
        if reward.numel() != m * n or reward.dim() > 2:
            raise ValueError(f"sequence_returns: the model's reward must be [B] or [B, 1] with B = {m * n}, "
                             f"got {list(reward.shape)}")
        total = total + discount**h * reward.reshape(m * n).to(total.dtype)
    return total.reshape(m, n)


def _setup(obs: Tensor, low: float | Tensor, high: float | Tensor, act_dim: int, horizon: int,
           n_candidates: int) -> tuple[Tensor, bool, Tensor, Tensor]:
    if horizon < 1 or n_candidates < 1 or act_dim < 1:
        raise ValueError(f"MPC: horizon, n_candidates and act_dim must be >= 1, got {horizon}, {n_candidates}, "
                         f"{act_dim}")
    single = obs.dim() == 1
    batch = obs.unsqueeze(0) if single else obs
    if batch.dim() != 2:
        raise ValueError(f"MPC: obs must be [O] or [M, O], got {list(obs.shape)}")
    lo = torch.as_tensor(low, dtype=batch.dtype, device=batch.device).expand(act_dim)
    hi = torch.as_tensor(high, dtype=batch.dtype, device=batch.device).expand(act_dim)
    if not bool((lo < hi).all()):
        raise ValueError(f"MPC: need low < high in every action dim, got {lo.tolist()}, {hi.tolist()}")
    return batch, single, lo, hi


def _first_of_best(actions: Tensor, returns: Tensor, single: bool) -> Tensor:
    best = returns.argmax(dim=1)
    first = actions[torch.arange(actions.shape[0], device=actions.device), best, 0]
    return first[0] if single else first


@torch.no_grad()
def random_shooting(
    step: ModelStep, obs: Tensor, act_dim: int, generator: torch.Generator, horizon: int = 10,
    n_candidates: int = 500, low: float | Tensor = -1.0, high: float | Tensor = 1.0, discount: float = 1.0,
) -> Tensor:
    """Random shooting (``get_rs_action``): N sequences uniform in [low, high]^{H×A}; the first
    action of the best. Defaults are ``run_grbal.py``'s (500 candidates, horizon 10, γ = 1).

    Args:
        obs: ``[O]`` (returns ``[A]``) or ``[M, O]`` (returns ``[M, A]``, one plan per state).
    """
    batch, single, lo, hi = _setup(obs, low, high, act_dim, horizon, n_candidates)
    u = torch.rand((batch.shape[0], n_candidates, horizon, act_dim), generator=generator, dtype=batch.dtype,
                   device=generator.device).to(batch.device)
    actions = lo + (hi - lo) * u
    return _first_of_best(actions, sequence_returns(step, batch, actions, discount), single)


@torch.no_grad()
def cem(
    step: ModelStep, obs: Tensor, act_dim: int, generator: torch.Generator, horizon: int = 10,
    n_candidates: int = 500, low: float | Tensor = -1.0, high: float | Tensor = 1.0, discount: float = 1.0,
    iterations: int = 5, elite_frac: float = 0.1, alpha: float = 0.1,
) -> Tensor:
    """The cross-entropy method (``get_cem_action``; GrBAL's ``use_cem`` option, 5 iterations).

    A diagonal Gaussian per time step starts at the box's centre and half-width (learning_to_adapt:
    mean 0, std 1 on its [-1, 1] box). Each iteration samples N sequences, clipped to the box, keeps
    the ``max(int(N * elite_frac), 1)`` best, and moves ``mean ← α mean + (1 − α) mean(elites)``,
    ``std ← std(elites)``. Returns the first action of the best sequence scored in any iteration.

    Departures from learning_to_adapt. Two are bugs there: it scores (and may return) the
    *unclipped* samples while its elites are the clipped ones, and its elite mask
    ``argsort(-returns) < k`` compares sorted positions with k (candidate j is kept when the j-th
    best has an index below k), which does not select the k best. The third: it returns the best of
    the *last* iteration. When the optimum lies on the box's edge (bang-bang control, common),
    every elite is clipped to the edge, std collapses to 0 and the smoothed mean stops short of it
    (α · mean + (1 − α) · edge), so later iterations only see worse sequences than the first did.
    """
    batch, single, lo, hi = _setup(obs, low, high, act_dim, horizon, n_candidates)
    if iterations < 1 or not 0.0 < elite_frac <= 1.0 or not 0.0 <= alpha < 1.0:
        raise ValueError(f"cem: need iterations >= 1, elite_frac in (0, 1], alpha in [0, 1); got {iterations}, "
                         f"{elite_frac}, {alpha}")
    m = batch.shape[0]
    n_elite = max(int(n_candidates * elite_frac), 1)
    mean = ((lo + hi) / 2).expand(m, horizon, act_dim)
    std = ((hi - lo) / 2).expand(m, horizon, act_dim)
    rows = torch.arange(m, device=batch.device)
    best_return = torch.full((m,), -torch.inf, dtype=batch.dtype, device=batch.device)
    best_first = torch.zeros(m, act_dim, dtype=batch.dtype, device=batch.device)
    for _ in range(iterations):
        z = torch.randn((m, n_candidates, horizon, act_dim), generator=generator, dtype=batch.dtype,
                        device=generator.device).to(batch.device)
        actions = torch.clamp(mean.unsqueeze(1) + std.unsqueeze(1) * z, lo, hi)
        returns = sequence_returns(step, batch, actions, discount)
        top, idx = returns.max(dim=1)
        better = top > best_return
        best_return = torch.where(better, top, best_return)
        best_first = torch.where(better.unsqueeze(1), actions[rows, idx, 0], best_first)
        elites = actions[rows.unsqueeze(1), returns.topk(n_elite, dim=1).indices]  # [M, E, H, A]
        mean = alpha * mean + (1 - alpha) * elites.mean(dim=1)
        std = elites.std(dim=1, unbiased=False)  # np.std
    return best_first[0] if single else best_first
