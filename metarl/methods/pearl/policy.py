"""PEARL's acting policy: the tanh-Gaussian actor on a latent z held for a whole trajectory.

z is drawn from the current belief (the prior N(0, I), or a posterior set with ``set_belief``) by
``sample_z``; the caller draws it before each collector call, and the policy draws a new one itself
when another episode starts inside the same call (oyster resamples z after every trajectory,
``obtain_samples(resample=1)``). All randomness comes from its own generator (exact resume).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor

from metarl import keys
from metarl.algorithms.pearl import reparam_sample
from metarl.nets import TanhGaussianActor

MODES = ("explore", "deterministic")


class LatentPolicy:
    """``mode``: "explore" samples the action (meta-training collection), "deterministic" takes
    tanh(mean) (evaluation, as oyster's ``MakeDeterministic``); z is sampled in both."""

    def __init__(self, actor: TanhGaussianActor, latent_size: int, generator: torch.Generator) -> None:
        self.actor = actor
        self.latent_size = latent_size
        self.generator = generator
        self.mode = "explore"
        self.mu, self.var = torch.zeros(latent_size), torch.ones(latent_size)
        self.z = torch.zeros(latent_size)
        self._fresh = False  # z was drawn for the episode that the next reset starts

    def reset_belief(self) -> None:
        """The prior N(0, I) (oyster ``clear_z``)."""
        self.set_belief(torch.zeros(self.latent_size), torch.ones(self.latent_size))

    def set_belief(self, mu: Tensor, var: Tensor) -> None:
        self.mu, self.var = mu.detach().reshape(-1).cpu(), var.detach().reshape(-1).cpu()

    def sample_z(self) -> None:
        eps = torch.randn(self.latent_size, generator=self.generator)
        self.z = reparam_sample(self.mu, self.var, eps)
        self._fresh = True

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"LatentPolicy: unknown mode {mode!r}; allowed: {MODES}")
        self.mode = mode

    @torch.no_grad()
    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        if int(td[keys.STEP_COUNT].reshape(-1)[0]) == 0 and not self._fresh:
            self.sample_z()  # a new trajectory inside this collector call
        self._fresh = False
        device = next(self.actor.parameters()).device
        obs = td[keys.OBS].reshape(1, -1).to(device)
        z = self.z.reshape(1, -1).to(device)
        if self.mode == "deterministic":
            action = self.actor(obs, z, None).action
        else:
            eps = torch.randn(1, self.actor.act_dim, generator=self.generator).to(device)
            action = self.actor(obs, z, eps).action
        td.set(keys.ACTION, action.cpu().reshape(*td.batch_size, -1))
        return td

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "mu": self.mu.clone(), "var": self.var.clone(),
                "z": self.z.clone(), "fresh": self._fresh}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.mu, self.var, self.z = state["mu"].clone(), state["var"].clone(), state["z"].clone()
        self._fresh = bool(state["fresh"])
