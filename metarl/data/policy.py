"""The acting policy the collector runs: the actor on its own context, with TD3 exploration noise."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import nn

from metarl import keys

MODES = ("random", "explore", "deterministic")


def uniform_actions(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Uniform actions in [-1, 1] from ``generator``: the cold start's (one step here, or a whole
    batch of episodes in ``metarl.data.cold_start``: CPU ``torch.rand`` draws element by element, so
    one draw of [n, act_dim] equals n draws of [act_dim], tested)."""
    return torch.rand(shape, generator=generator) * 2 - 1


class ActingPolicy:
    """a = clip(pi(o, z) + N(0, expl_noise^2), -1, 1), with z = encoder(history).

    ``mode``: "random" draws uniform actions in [-1, 1] (the cold start), "explore" adds Gaussian
    noise (meta-training collection), "deterministic" acts greedily (evaluation and the adaptation
    episode, as in the MQL reference). All noise comes from ``generator`` so collection is
    reproducible and resumable; the policy never touches the global RNG.
    """

    def __init__(
        self, actor: nn.Module, encoder: nn.Module, act_dim: int, expl_noise: float, generator: torch.Generator
    ) -> None:
        self.actor = actor
        self.encoder = encoder
        self.act_dim = act_dim
        self.expl_noise = expl_noise
        self.generator = generator
        self.mode = "explore"

    def use(self, actor: nn.Module, encoder: nn.Module) -> None:
        """Act with other nets (an adapted copy) through the same collector."""
        self.actor, self.encoder = actor, encoder

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"ActingPolicy: unknown mode {mode!r}; allowed: {MODES}")
        self.mode = mode

    @torch.no_grad()
    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        shape = (*td.batch_size, self.act_dim)
        if self.mode == "random":
            action = uniform_actions(shape, self.generator)
        else:
            device = next(self.actor.parameters()).device
            obs = td[keys.OBS].reshape(-1, td[keys.OBS].shape[-1]).to(device)
            hist = td[keys.HISTORY]
            hist = hist.reshape(-1, *hist.shape[-2:]).to(device)
            action = self.actor(obs, self.encoder(hist)).cpu().reshape(shape)
            if self.mode == "explore":
                noise = torch.randn(shape, generator=self.generator) * self.expl_noise
                action = (action + noise).clamp(-1.0, 1.0)
        td.set(keys.ACTION, action)
        return td

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
