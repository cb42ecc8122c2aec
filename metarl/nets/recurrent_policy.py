"""RL²'s recurrent Gaussian policy (Duan et al. 2016, §2.2 and §3; garage ``GaussianGRUPolicy``):
h_t = GRU(h_{t-1}, x_t) on the trial input x_t = [o_t, a_{t-1}, r_{t-1}, d_{t-1}], and
pi(a_t | h_t) = N(W h_t + b, diag sigma^2) with a state-independent, learned log sigma.

The GRU is TorchRL's ``GRUModule``: acting steps one time step per call, reading the hidden state
that the env's primer (:meth:`RecurrentGaussianPolicy.make_tensordict_primer`) carries in the data and
zeroing it wherever ``is_init`` is true (a trial's start only: ``metarl.data.trial``); training
re-unrolls whole ``[B, T]`` trials in one call (``set_recurrent_mode(True)``), split at ``is_init``.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from tensordict import TensorDictBase
from torch import Tensor, nn
from torchrl.envs import TensorDictPrimer
from torchrl.modules import GRUModule, set_recurrent_mode

from metarl import keys
from metarl.nets.optim import adam

__all__ = ["RecurrentActing", "RecurrentGaussianPolicy"]

#: Where the GRU writes its output h_t in the data.
HIDDEN = "rl2_hidden"


class RecurrentGaussianPolicy(pl.LightningModule):
    """Args:
    input_dim: size of x_t (obs + act + 2 for an RL² trial).
    act_dim: action size.
    hidden_size: GRU units (garage ``GaussianGRUPolicy(hidden_dim=64)``; ProMP: an LSTM of 64).
    init_std: initial sigma (garage ``init_std=1.0``).
    lr: Adam learning rate (ProMP and garage RL²-PPO: 1e-3).
    """

    def __init__(self, input_dim: int, act_dim: int, hidden_size: int = 64, init_std: float = 1.0,
                 lr: float = 1e-3) -> None:
        super().__init__()
        for name, value in (("hidden_size", hidden_size), ("init_std", init_std), ("lr", lr)):
            if not value > 0:
                raise ValueError(f"RecurrentGaussianPolicy: {name} must be > 0, got {value}")
        self.save_hyperparameters()
        self.lr = lr
        self.gru = GRUModule(input_size=input_dim, hidden_size=hidden_size, in_key=keys.OBS, out_key=HIDDEN)
        self.mean_head = nn.Linear(hidden_size, act_dim)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))

    def make_tensordict_primer(self) -> TensorDictPrimer:
        """The env transform that carries the hidden state between acting steps (pytorch/rl #4220:
        without it the collector silently zeroes the state)."""
        return self.gru.make_tensordict_primer()

    def step(self, td: TensorDictBase) -> Tensor:
        """One acting step on a ``[n_envs]`` batch: runs the GRU (writing h and the next hidden state
        into ``td``) and returns the mean ``[n_envs, A]``."""
        self.gru(td)
        return self.mean_head(td[HIDDEN])

    def unroll(self, td: TensorDictBase) -> tuple[Tensor, Tensor]:
        """The training pass: re-unrolls ``[B, T]`` trials from the collected first hidden state of each
        row (zeros at a trial's start) and returns (mean ``[B, T, A]``, log_std ``[A]``)."""
        replay = td.select(keys.OBS, "is_init", *self._state_keys()).clone(False)
        with set_recurrent_mode(True):
            self.gru(replay)
        return self.mean_head(replay[HIDDEN]), self.log_std

    def _state_keys(self) -> list[str]:
        return [k for k in self.gru.in_keys if k not in (keys.OBS, "is_init")]

    def log_prob(self, mean: Tensor, action: Tensor) -> Tensor:
        """log N(action; mean, sigma^2), summed over the action dim into ``[..., 1]``."""
        return torch.distributions.Normal(mean, self.log_std.exp()).log_prob(action).sum(-1, keepdim=True)

    def entropy(self) -> Tensor:
        """The (state-independent) entropy of the Gaussian, a scalar."""
        return (self.log_std + 0.5 * math.log(2 * math.pi * math.e)).sum()

    def make_optimizer(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), self.lr)


class RecurrentActing:
    """The collector's policy: a TensorDict callable over a :class:`RecurrentGaussianPolicy` that samples
    a = mean + sigma * eps from its own generator (checkpointable, never the global RNG), or acts with
    the mean when ``deterministic``. Not an nn.Module: it holds the policy, it does not own it."""

    def __init__(self, policy: RecurrentGaussianPolicy, generator: torch.Generator, deterministic: bool = False):
        self.policy, self.generator, self.deterministic = policy, generator, deterministic

    @torch.no_grad()
    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        device = self.policy.device
        # The envs step on the CPU; a policy on an accelerator acts on a copy and writes its outputs back.
        work = td if device.type == "cpu" else td.to(device)
        mean = self.policy.step(work)
        if self.deterministic:
            action = mean
        else:
            eps = torch.randn(mean.shape, generator=self.generator).to(mean.device)
            action = mean + self.policy.log_std.exp() * eps
        work.set(keys.ACTION, action)
        if work is not td:
            td.update(work.select(keys.ACTION, *self.policy.gru.out_keys).to("cpu"))
        return td
