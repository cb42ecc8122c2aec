"""The tanh-Gaussian SAC actor pi(a | s, z) of PEARL and MIER (Haarnoja et al., 2018a, §4.2, app. C)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from metarl.algorithms.sac import tanh_gaussian_log_prob
from metarl.nets.optim import adam_over


class TanhGaussianOutput(NamedTuple):
    """One evaluation of the actor, every field ``[..., act_dim]`` except ``log_prob [..., 1]``."""

    action: Tensor  # tanh(pre_tanh), in (-1, 1)
    mean: Tensor  # the Gaussian's mean m(s, z)
    log_std: Tensor  # its log standard deviation, clamped
    log_prob: Tensor  # log pi(action | s, z), tanh-corrected, summed over action dims
    pre_tanh: Tensor  # u, with action = tanh(u)


class TanhGaussianActor(pl.LightningModule):
    """a = tanh(u), u = m(o, z) + exp(log_std(o, z)) * eps: a ReLU body on [o, z] with two linear heads.

    The heads are initialised uniform in ±init_w (weights and biases), as oyster's
    ``TanhGaussianPolicy`` (1e-3), so the initial policy is near N(0, 1) before the tanh whatever
    the body; the body keeps PyTorch's default init. log_std is clamped to
    [log_std_min, log_std_max] (oyster: [-20, 2]); the clamp passes no gradient outside the range.

    Args:
        obs_dim, act_dim, context_dim: sizes of o, a and z.
        hidden_sizes: body widths (oyster ``net_size``: 300, 300, 300).
        lr: Adam learning rate (oyster ``policy_lr``: 3e-4).
        log_std_min, log_std_max: clamp of log_std.
        init_w: half-width of the heads' uniform init, > 0.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        context_dim: int,
        hidden_sizes: Sequence[int] = (300, 300, 300),
        lr: float = 3e-4,
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        init_w: float = 1e-3,
    ) -> None:
        super().__init__()
        if not lr > 0:
            raise ValueError(f"TanhGaussianActor: lr must be > 0, got {lr}")
        if not log_std_min < log_std_max:
            raise ValueError(f"TanhGaussianActor: need log_std_min < log_std_max, got {log_std_min}, {log_std_max}")
        if not init_w > 0:
            raise ValueError(f"TanhGaussianActor: init_w must be > 0, got {init_w}")
        in_dim = obs_dim + context_dim
        if in_dim < 1 or act_dim < 1 or any(h < 1 for h in hidden_sizes):
            raise ValueError(
                f"TanhGaussianActor: sizes must be >= 1, got obs_dim + context_dim={in_dim}, act_dim={act_dim}, "
                f"hidden={list(hidden_sizes)}"
            )
        self.save_hyperparameters()
        self.lr, self.act_dim = lr, act_dim
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        layers: list[nn.Module] = []
        size = in_dim
        for h in hidden_sizes:
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        self.body = nn.Sequential(*layers)
        self.mean_head = nn.Linear(size, act_dim)
        self.log_std_head = nn.Linear(size, act_dim)
        with torch.no_grad():
            for p in (*self.mean_head.parameters(), *self.log_std_head.parameters()):
                p.uniform_(-init_w, init_w)

    def forward(self, obs: Tensor, z: Tensor, eps: Tensor | None) -> TanhGaussianOutput:
        """obs [..., obs_dim], z [..., context_dim], eps [..., act_dim] ~ N(0, I) or None.

        With ``eps`` the action is the reparameterised sample tanh(m + std * eps) (gradients reach
        m and log_std). With ``eps=None`` it is the deterministic tanh(m) of PEARL's evaluation:
        ``pre_tanh`` is m and ``log_prob`` is pi's log-density at that action (it was not sampled).
        The noise is an argument so that the caller's generator, not the global RNG, draws it.
        """
        h = self.body(torch.cat([obs, z], dim=-1))
        mean = self.mean_head(h)
        log_std = self.log_std_head(h).clamp(self.log_std_min, self.log_std_max)
        if eps is None:
            pre_tanh = mean
        else:
            if eps.shape != mean.shape:
                raise ValueError(f"TanhGaussianActor: eps has shape {list(eps.shape)}, expected {list(mean.shape)}")
            pre_tanh = mean + log_std.exp() * eps
        return TanhGaussianOutput(
            action=torch.tanh(pre_tanh), mean=mean, log_std=log_std,
            log_prob=tanh_gaussian_log_prob(pre_tanh, mean, log_std), pre_tanh=pre_tanh,
        )

    def make_optimizer(self, extra: Iterable[nn.Module] = ()) -> torch.optim.Optimizer:
        """Adam over the actor (and any module its loss should train; PEARL: none, z is detached)."""
        return adam_over(self, extra, self.lr)
