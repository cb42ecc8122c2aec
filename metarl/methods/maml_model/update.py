"""GrBAL's model math on stored transitions (Nagabandi et al., ICLR 2019, §4.1-4.2 and Algorithm 1;
learning_to_adapt ``meta_mlp_dynamics.py``), on ``metarl.algorithms.maml``:

    L(θ; D) = mean ‖norm([Δs, r]) − f_θ(norm(s), norm(a))‖²             (the model loss, §4.1)
    θ'_j = θ − α ∇θ L(θ; past_j)                                          (the update rule u_ψ, §4.2)
    θ ← Adam step on (1/N) Σ_j L(θ'_j(θ); future_j)                       (Algorithm 1, the outer step)

for N segments j of M past + K future consecutive transitions of one episode. L is −(1/K) Σ log p̂θ'
of §4.1 for a Gaussian of fixed variance, up to constants (learning_to_adapt's MSE). With a reward
head the reward is one more normalised output (for families whose reward depends on the task); without
one (GrBAL's setting, a family with a known reward) the model predicts Δs only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from tensordict import TensorDictBase
from torch import Tensor

from metarl import keys
from metarl.algorithms.maml import batched_meta_loss, inner_update
from metarl.nets import DeltaDynamicsModel


class Transitions(NamedTuple):
    """(s, a, r, s') rows: ``[..., n, O]``, ``[..., n, A]``, ``[..., n, 1]``, ``[..., n, O]``."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor

    def to(self, device: torch.device | str) -> Transitions:
        return Transitions(*(t.to(device) for t in self))


class MetaStep(NamedTuple):
    loss_pre: Tensor  # [] mean L(θ; future) before the inner step (detached)
    loss_post: Tensor  # [] mean L(θ'_j; future_j): the trained objective (detached)


def transitions(data: TensorDictBase) -> Transitions:
    """The (s, a, r, s') of stored transitions ``[..., n]`` (keys.STORED_KEYS)."""
    return Transitions(data[keys.OBS], data[keys.ACTION], data[keys.REWARD], data[keys.NEXT_OBS])


def reward_target(model: DeltaDynamicsModel, batch: Transitions) -> Tensor | None:
    """The reward as a model target: only with a reward head (else the planner knows the reward)."""
    return batch.reward if model.reward_head else None


def model_loss_fn(model: DeltaDynamicsModel) -> Callable[[Callable[..., Any], Transitions], Tensor]:
    """GrBAL's model loss L (§4.1) as ``algorithms.maml`` takes it: ``loss(f, batch)`` with ``f`` the model
    under the parameters being differentiated; the normalisation is the model's (buffers, not trained)."""

    def loss(f: Callable[..., Any], batch: Transitions) -> Tensor:
        pred = f(batch.obs, batch.action, normalized=True)
        return (pred - model.normalized_targets(batch.obs, batch.next_obs, reward_target(model, batch))).square().mean()

    return loss


def adapted_params(model: DeltaDynamicsModel, params: Mapping[str, Tensor], past: Transitions,
                   first_order: bool = True) -> dict[str, Tensor]:
    """GrBAL's update rule (§4.2), one SGD step of size ``model.inner_lr`` on all weights:
    θ' = θ − α ∇θ L(θ; past). Differentiable w.r.t. θ unless ``first_order`` (acting detaches it)."""
    return inner_update(model, params, model_loss_fn(model), past, model.inner_lr, first_order)


def split_segments(segments: TensorDictBase, past_steps: int) -> tuple[list[Transitions], list[Transitions]]:
    """Segments ``[N, M + K]`` -> per segment its M past and K future transitions."""
    past, future = transitions(segments[:, :past_steps]), transitions(segments[:, past_steps:])
    rows = range(segments.shape[0])
    return [Transitions(*(t[j] for t in past)) for j in rows], [Transitions(*(t[j] for t in future)) for j in rows]


def meta_step(model: DeltaDynamicsModel, segments: TensorDictBase, past_steps: int, first_order: bool,
              opt: torch.optim.Optimizer, backward: Callable[[Tensor], None]) -> MetaStep:
    """One outer step (Algorithm 1) on ``segments`` ``[N, M + K]``: the Adam step on the mean loss of the
    adapted models on their future transitions, through the inner step (second order unless
    ``first_order``); the N segments run as one vectorised call. ``loss_pre`` is θ's loss on the same
    future transitions."""
    past, future = transitions(segments[:, :past_steps]), transitions(segments[:, past_steps:])
    loss_fn = model_loss_fn(model)
    with torch.no_grad():
        # Every segment has K future rows, so the mean over all of them is the mean of the means.
        loss_pre = model.loss(future.obs, future.action, future.next_obs, reward_target(model, future))
    loss = batched_meta_loss(model, dict(model.named_parameters()), loss_fn, loss_fn, past, future, model.inner_lr,
                             first_order)
    opt.zero_grad()
    backward(loss)
    opt.step()
    return MetaStep(loss_pre, loss.detach())


@torch.no_grad()
def fit_normalization(model: DeltaDynamicsModel, data: TensorDictBase) -> None:
    """Set the model's input and target statistics from ``data`` ``[N]`` (all stored transitions)."""
    t = transitions(data.to(model.device))
    model.fit_normalization(t.obs, t.action, t.next_obs, reward_target(model, t))
