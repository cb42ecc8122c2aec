"""MAML-PG's policy (Finn et al. 2017, §5.3; ProMP / garage / pytorch-maml-rl): a Gaussian MLP, 64x64
tanh, mean = MLP(o), with a state-independent learned log sigma. MAML runs it under adapted parameters
(``torch.func.functional_call``), so ``forward`` is a pure function of the parameters and the input."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytorch_lightning as pl
import torch
from tensordict import TensorDictBase
from torch import Tensor, nn
from torch.func import functional_call

from metarl import keys

__all__ = ["GaussianMLPPolicy", "GroupActing", "gaussian_log_prob"]


def gaussian_log_prob(mean: Tensor, log_std: Tensor, action: Tensor) -> Tensor:
    """log N(action; mean, exp(log_std)^2) summed over the action dim into ``[..., 1]``."""
    return torch.distributions.Normal(mean, log_std.exp()).log_prob(action).sum(-1, keepdim=True)


class GaussianMLPPolicy(pl.LightningModule):
    """Args:
    obs_dim, act_dim: sizes.
    hidden_sizes: tanh MLP widths (ProMP / garage / pytorch-maml-rl: 64, 64).
    init_std: initial sigma (the codes: 1.0).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (64, 64),
                 init_std: float = 1.0) -> None:
        super().__init__()
        if not init_std > 0 or any(h < 1 for h in hidden_sizes):
            raise ValueError(f"GaussianMLPPolicy: need init_std > 0 and widths >= 1, got {init_std}, "
                             f"{list(hidden_sizes)}")
        self.save_hyperparameters()
        layers: list[nn.Module] = []
        size = obs_dim
        for h in hidden_sizes:
            layers += [nn.Linear(size, h), nn.Tanh()]
            size = h
        layers.append(nn.Linear(size, act_dim))
        self.mean_net = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """obs ``[..., obs_dim]`` -> (mean ``[..., act_dim]``, log_std ``[act_dim]``)."""
        return self.mean_net(obs), self.log_std


class GroupActing:
    """The collector's policy: samples a = mean + sigma * eps from its own generator. Rows are in
    ``len(params)`` equal groups, group g acting with ``params[g]`` (MAML's adapted phi_g of task g);
    ``params = None`` acts with the policy's own parameters (theta) everywhere."""

    def __init__(self, policy: GaussianMLPPolicy, generator: torch.Generator) -> None:
        self.policy, self.generator = policy, generator
        self.params: list[Mapping[str, Tensor]] | None = None

    @torch.no_grad()
    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        obs = td[keys.OBS].to(self.policy.device)  # the envs step on the CPU
        if self.params is None:
            mean, log_std = self.policy(obs)
            std = log_std.exp().expand_as(mean)
        else:
            n = len(self.params)
            outs = [functional_call(self.policy, dict(p), (o,)) for p, o in zip(self.params, obs.chunk(n), strict=True)]
            mean = torch.cat([m for m, _ in outs])
            std = torch.cat([s.exp().expand_as(m) for m, s in outs])
        eps = torch.randn(mean.shape, generator=self.generator).to(mean.device)
        td.set(keys.ACTION, (mean + std * eps).to(td[keys.OBS].device))
        return td
