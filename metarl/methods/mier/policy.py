"""MIER's acting policy: the tanh-Gaussian SAC actor on [s, φ], with φ a context vector held fixed
while it acts (φ₀ or an adapted φ_T; mier_public appends the context to every observation). All
randomness comes from its own generator (exact resume)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor

from metarl import keys
from metarl.nets import TanhGaussianActor

MODES = ("explore", "deterministic")


class ContextPolicy:
    """``mode``: "explore" samples the action (collection, the adaptation data), "deterministic" takes
    tanh(mean) (the evaluation episodes, softlearning's deterministic policy)."""

    def __init__(self, actor: TanhGaussianActor, context_dim: int, generator: torch.Generator) -> None:
        self.actor = actor
        self.generator = generator
        self.mode = "explore"
        self.context = torch.zeros(context_dim)

    def use(self, actor: TanhGaussianActor) -> None:
        """Act with another actor (an adapted copy) through the same collector."""
        self.actor = actor

    def set_context(self, context: Tensor) -> None:
        self.context = context.detach().reshape(-1).cpu().clone()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"ContextPolicy: unknown mode {mode!r}; allowed: {MODES}")
        self.mode = mode

    @torch.no_grad()
    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        device = next(self.actor.parameters()).device
        obs = td[keys.OBS].reshape(1, -1).to(device)
        context = self.context.reshape(1, -1).to(device)
        eps = None
        if self.mode == "explore":
            eps = torch.randn(1, self.actor.act_dim, generator=self.generator).to(device)
        action = self.actor(obs, context, eps).action
        td.set(keys.ACTION, action.cpu().reshape(*td.batch_size, -1))
        return td

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "context": self.context.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.context = state["context"].clone()
