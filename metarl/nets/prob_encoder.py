"""PEARL's inference network q(z | c) (Rakelly et al., 2019, §3.1, eq. 2)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytorch_lightning as pl
import torch
from tensordict import TensorDictBase
from torch import Tensor, nn
from torch.nn import functional as F

from metarl import keys
from metarl.algorithms.pearl import product_of_gaussians
from metarl.nets.mlp import mlp
from metarl.nets.optim import adam_over


class ProbContextEncoder(pl.LightningModule):
    """Per-transition Gaussian factors N(mu_n, var_n) of z from one MLP applied to each context row.

    Each transition c_n = [o, a, r] (or [o, a, r, o'] with ``use_next_obs``, oyster's
    ``use_next_obs_in_context``, on for the envs whose dynamics change between tasks) gives
    ``2 * latent_size`` outputs: the means and ``softplus`` of the rest as variances (oyster
    ``agent.py`` ``infer_posterior``). The reward in the context is the raw one: only the Bellman
    target is scaled. Owns its hyperparameters and optimizer settings; defines no training_step.

    Args:
        obs_dim, act_dim: sizes of o and a.
        latent_size: d, the size of z (oyster: 5).
        hidden_sizes: MLP widths (oyster: 200, 200, 200).
        use_next_obs: append o' to each context row.
        lr: Adam learning rate (oyster ``context_lr``: 3e-4 in ``configs/default.py``).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        latent_size: int = 5,
        hidden_sizes: Sequence[int] = (200, 200, 200),
        use_next_obs: bool = False,
        lr: float = 3e-4,
    ) -> None:
        super().__init__()
        for name, value in (("obs_dim", obs_dim), ("act_dim", act_dim), ("latent_size", latent_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ProbContextEncoder: {name} must be an int >= 1, got {value!r}")
        if not lr > 0:
            raise ValueError(f"ProbContextEncoder: lr must be > 0, got {lr}")
        self.save_hyperparameters()
        self.lr = lr
        self.latent_size = latent_size
        self.use_next_obs = use_next_obs
        self.context_dim = obs_dim + act_dim + 1 + (obs_dim if use_next_obs else 0)
        self.net = mlp(self.context_dim, list(hidden_sizes), 2 * latent_size)

    def forward(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """context [..., N, context_dim] -> factors (mu [..., N, d], var [..., N, d]), var > 0."""
        if context.dim() < 2 or context.shape[-1] != self.context_dim:
            raise ValueError(
                f"ProbContextEncoder: context must be [..., N, {self.context_dim}], got {list(context.shape)}"
            )
        out = self.net(context)
        mu, raw = out.split(self.latent_size, dim=-1)
        return mu, F.softplus(raw)

    def posterior(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | c_1:N) per task (eq. 2): context [..., N, context_dim] -> (mu [..., d], var [..., d])."""
        return product_of_gaussians(*self(context))

    @staticmethod
    def context_from(td: TensorDictBase, use_next_obs: bool) -> Tensor:
        """Context rows [*td.batch_size, context_dim] = cat(o, a, r(, o')) from stored transitions.

        Reads keys.OBS, keys.ACTION, keys.REWARD (raw, [..., 1]) and keys.NEXT_OBS, as stored by
        MultiTaskReplay; the order is oyster's (``sample_context``). Leading batch dims are kept,
        so a ``[T, N]`` batch from ``sample_per_task`` gives ``[T, N, context_dim]``.
        """
        parts = [td.get(keys.OBS), td.get(keys.ACTION), td.get(keys.REWARD)]
        if use_next_obs:
            parts.append(td.get(keys.NEXT_OBS))
        return torch.cat([p.to(torch.float32) for p in parts], dim=-1)

    def make_optimizer(self, extra: Iterable[nn.Module] = ()) -> torch.optim.Optimizer:
        """Adam over the encoder (its gradient: the KL term plus the critic loss through z)."""
        return adam_over(self, extra, self.lr)
