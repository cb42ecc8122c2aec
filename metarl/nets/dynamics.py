"""Learned dynamics models: MIER's contextual Gaussian model and GrBAL's Δs model.

Both are LightningModules like the other nets: they own their hyperparameters (the references' model
settings, the inner-loop ones included) and optimizer settings, and define no training_step. Their
``forward`` is written so that ``torch.func.functional_call`` with adapted parameters (GrBAL) or an
adapted context (MIER) is all a method needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.func import functional_call

from metarl.algorithms.mier import ContextLoss, GaussianPrediction, ModelLoss, bounded_logvar, model_loss
from metarl.nets.optim import adam_over

LEAKY_SLOPE = 0.2  # tf.nn.leaky_relu's default alpha (mier_public); PyTorch's default is 0.01
NORM_EPS = 1e-10  # learning_to_adapt meta_mlp_dynamics.py normalize(): (x - mean) / (std + 1e-10)


def _check(owner: str, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {name} must be an int >= 1, got {value!r}")


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{owner}: {name} must be > 0, got {value}")


def _xavier_mlp(in_dim: int, hidden: Sequence[int], out_dim: int, act: Callable[[], nn.Module]) -> nn.Sequential:
    """Dense layers with Glorot-uniform weights and zero biases: both references' TF initialisers
    (``xavier_initializer``, ``zeros_initializer``), not PyTorch's Kaiming-uniform default."""
    layers: list[nn.Module] = []
    size = in_dim
    for width in [*hidden, out_dim]:
        linear = nn.Linear(size, width)
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers += [linear, act()]
        size = width
    return nn.Sequential(*layers[:-1])  # no activation after the output layer


class ContextualGaussianModel(pl.LightningModule):
    """MIER's p̂(r, s' − s | s, a; θ, φ) (mier_public ``models/bnn_contextual.py``).

    An MLP on [s, a, φ] (4 × 200 leaky-ReLU, Xavier) gives 2 (1 + O) outputs: the mean of
    y = [r, Δs] and a raw log-variance, softly bounded by learned per-output bounds (max 0.5,
    min −10 at init; a reward pair and a state pair, four TF variables). Inputs are not
    normalised: mier_public builds a ``TensorStandardScaler`` but never fits or applies it.

    Args:
        obs_dim, act_dim: sizes of s and a. context_dim: size of φ (5; 10 for cheetah-negated-joints).
        hidden_sizes: MLP widths. predict_reward, predict_state: which blocks the loss trains
            (mier_public ``rew_pred`` / ``state_pred``).
        lr: Adam learning rate of the outer step (1e-3).
        context_lr, context_steps, context_clip: the inner loop, eq. 3 (``fast_adapt_lr`` 0.01,
            ``fast_adapt_steps`` 2, ``clip_val_inner_grad`` 10).
        outer_clip: ``clip_val_outer_grad`` (10), per group of ``clip_groups``.
        learn_context0: train φ₀ (the paper's argmin over θ and φ, eq. 4). mier_public keeps φ₀ = 0
            (``fixed_preupdate_context``): ``False``.
    """

    def __init__(
        self, obs_dim: int, act_dim: int, context_dim: int = 5, hidden_sizes: Sequence[int] = (200, 200, 200, 200),
        predict_reward: bool = True, predict_state: bool = True, init_max_logvar: float = 0.5,
        init_min_logvar: float = -10.0, lr: float = 1e-3, context_lr: float = 0.01, context_steps: int = 2,
        context_clip: float = 10.0, outer_clip: float = 10.0, learn_context0: bool = True,
    ) -> None:
        super().__init__()
        _check("ContextualGaussianModel", obs_dim=obs_dim, act_dim=act_dim, context_dim=context_dim)
        _positive("ContextualGaussianModel", lr=lr, context_lr=context_lr, context_clip=context_clip,
                  outer_clip=outer_clip)
        if not init_min_logvar < init_max_logvar:
            raise ValueError(f"ContextualGaussianModel: need init_min_logvar < init_max_logvar, got "
                             f"{init_min_logvar}, {init_max_logvar}")
        if not (predict_reward or predict_state):
            raise ValueError("ContextualGaussianModel: at least one of predict_reward, predict_state must be true")
        if isinstance(context_steps, bool) or not isinstance(context_steps, int) or context_steps < 0:
            raise ValueError(f"ContextualGaussianModel: context_steps must be an int >= 0, got {context_steps!r}")
        self.save_hyperparameters()
        self.obs_dim, self.context_dim, self.lr = obs_dim, context_dim, lr
        self.predict_reward, self.predict_state = predict_reward, predict_state
        self.context_lr, self.context_steps, self.context_clip = context_lr, context_steps, context_clip
        self.outer_clip = outer_clip
        out = 1 + obs_dim
        self.net = _xavier_mlp(obs_dim + act_dim + context_dim, list(hidden_sizes), 2 * out,
                               lambda: nn.LeakyReLU(LEAKY_SLOPE))
        self.max_reward_logvar = nn.Parameter(torch.full((1,), init_max_logvar))
        self.min_reward_logvar = nn.Parameter(torch.full((1,), init_min_logvar))
        self.max_state_logvar = nn.Parameter(torch.full((obs_dim,), init_max_logvar))
        self.min_state_logvar = nn.Parameter(torch.full((obs_dim,), init_min_logvar))
        context0 = torch.zeros(context_dim)
        if learn_context0:
            self.context0 = nn.Parameter(context0)
        else:
            self.register_buffer("context0", context0)

    def forward(self, obs: Tensor, action: Tensor, context: Tensor) -> GaussianPrediction:
        """obs [..., N, O], action [..., N, A], context [..., C] (one per task, shared by its N rows)
        or [..., N, C] -> the prediction of y = [r, Δs], ``[..., N, 1 + O]``."""
        if context.dim() == obs.dim() - 1:
            context = context.unsqueeze(-2)
        context = context.expand(*obs.shape[:-1], self.context_dim)
        out = self.net(torch.cat([obs, action, context], dim=-1))
        mean, raw = out.chunk(2, dim=-1)
        min_lv = torch.cat([self.min_reward_logvar, self.min_state_logvar])
        max_lv = torch.cat([self.max_reward_logvar, self.max_state_logvar])
        return GaussianPrediction(mean, bounded_logvar(raw, min_lv, max_lv), min_lv, max_lv)

    def loss(self, obs: Tensor, action: Tensor, context: Tensor, target: Tensor) -> ModelLoss:
        """Per-task ``model_loss`` of the prediction at ``context`` against y = ``model_targets(...)``."""
        return model_loss(self(obs, action, context), target, self.predict_reward, self.predict_state)

    def context_loss(self, obs: Tensor, action: Tensor, target: Tensor) -> ContextLoss:
        """``(params, context) -> [...]`` total loss on this data, for ``algorithms.mier``'s inner
        and outer loops (``params``: e.g. ``dict(self.named_parameters())``)."""

        def loss(params: Mapping[str, Tensor], context: Tensor) -> Tensor:
            pred = functional_call(self, dict(params), (obs, action, context))
            return model_loss(pred, target, self.predict_reward, self.predict_state).total

        return loss

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """The outer clip's groups, as mier_public's TF variables: all weights (one flat variable)
        and each bound alone; φ₀ alone when it is learned."""
        groups = [list(self.net.parameters()), [self.max_state_logvar], [self.min_state_logvar],
                  [self.max_reward_logvar], [self.min_reward_logvar]]
        return groups + ([[self.context0]] if isinstance(self.context0, nn.Parameter) else [])

    def make_optimizer(self, extra: Iterable[nn.Module] = ()) -> torch.optim.Optimizer:
        """Adam over θ, the log-var bounds (mier_public trains them) and φ₀ if learned."""
        return adam_over(self, extra, self.lr)


class DeltaDynamicsModel(pl.LightningModule):
    """GrBAL's f_θ(s, a) → Δs (learning_to_adapt ``dynamics/meta_mlp_dynamics.py``), with an
    optional reward head for families whose reward is not known to the planner (metarl's choice).

    An MLP (3 × 512 ReLU, Xavier) on normalised [s, a] predicts the normalised [Δs(, r)]; the
    loss is their MSE (mean over rows and outputs). The normalisation buffers are identity until
    ``fit_normalization`` sets them from data (learning_to_adapt: every ``fit``, population std).

    Args:
        obs_dim, act_dim: sizes of s and a. hidden_sizes: MLP widths (``run_grbal.py``: 512 × 3).
        reward_head: also predict r (one more output).
        lr: Adam learning rate of the outer step (1e-3). inner_lr: the one-step SGD rate of the
            adaptation on all weights (``run_grbal.py`` 0.001; the class default there is 0.1).
    """

    def __init__(
        self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (512, 512, 512), reward_head: bool = False,
        lr: float = 1e-3, inner_lr: float = 1e-3,
    ) -> None:
        super().__init__()
        _check("DeltaDynamicsModel", obs_dim=obs_dim, act_dim=act_dim)
        _positive("DeltaDynamicsModel", lr=lr, inner_lr=inner_lr)
        self.save_hyperparameters()
        self.obs_dim, self.reward_head, self.lr, self.inner_lr = obs_dim, reward_head, lr, inner_lr
        out = obs_dim + (1 if reward_head else 0)
        self.net = _xavier_mlp(obs_dim + act_dim, list(hidden_sizes), out, nn.ReLU)
        for name, size in (("obs", obs_dim), ("act", act_dim), ("target", out)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))

    def targets(self, obs: Tensor, next_obs: Tensor, reward: Tensor | None = None) -> Tensor:
        """[Δs] or [Δs, r] ``[..., out]``, in the data's units."""
        if self.reward_head != (reward is not None):
            raise ValueError(f"DeltaDynamicsModel: reward_head={self.reward_head} needs "
                             f"{'a' if self.reward_head else 'no'} reward")
        delta = next_obs - obs
        return delta if reward is None else torch.cat([delta, reward], dim=-1)

    @torch.no_grad()
    def fit_normalization(self, obs: Tensor, action: Tensor, next_obs: Tensor, reward: Tensor | None = None) -> None:
        """Set the buffers to the data's mean and population std per dim (rows: all leading dims)."""
        for name, x in (("obs", obs), ("act", action), ("target", self.targets(obs, next_obs, reward))):
            flat = x.reshape(-1, x.shape[-1])
            getattr(self, f"{name}_mean").copy_(flat.mean(dim=0))
            getattr(self, f"{name}_std").copy_(flat.std(dim=0, unbiased=False))

    def forward(self, obs: Tensor, action: Tensor, normalized: bool = False) -> Tensor:
        """[Δs(, r)] ``[..., out]``: in the data's units, or normalised with ``normalized=True``."""
        x = torch.cat([(obs - self.obs_mean) / (self.obs_std + NORM_EPS),
                       (action - self.act_mean) / (self.act_std + NORM_EPS)], dim=-1)
        y = self.net(x)
        return y if normalized else y * (self.target_std + NORM_EPS) + self.target_mean

    def normalized_targets(self, obs: Tensor, next_obs: Tensor, reward: Tensor | None = None) -> Tensor:
        """[Δs(, r)] normalised by the target buffers: what ``forward(..., normalized=True)`` predicts."""
        return (self.targets(obs, next_obs, reward) - self.target_mean) / (self.target_std + NORM_EPS)

    def loss(self, obs: Tensor, action: Tensor, next_obs: Tensor, reward: Tensor | None = None,
             params: Mapping[str, Tensor] | None = None) -> Tensor:
        """GrBAL's ``mean ‖norm(y) − f(norm(s), norm(a))‖²``; with ``params``, of those weights
        (``functional_call``: the inner step's θ' = θ − α ∇θ L on the past M transitions)."""
        target = self.normalized_targets(obs, next_obs, reward)
        pred = self._call(params, obs, action, normalized=True)
        return (pred - target).square().mean()

    def step(self, obs: Tensor, action: Tensor, params: Mapping[str, Tensor] | None = None
             ) -> tuple[Tensor, Tensor | None]:
        """One model step: ``(s + Δs, r or None)``; with the reward head this is an ``mpc.ModelStep``."""
        y = self._call(params, obs, action, normalized=False)
        next_obs = obs + y[..., : self.obs_dim]
        return next_obs, (y[..., self.obs_dim:] if self.reward_head else None)

    def _call(self, params: Mapping[str, Tensor] | None, obs: Tensor, action: Tensor, normalized: bool) -> Tensor:
        if params is None:
            return self(obs, action, normalized=normalized)
        return functional_call(self, dict(params), (obs, action), {"normalized": normalized})

    def make_optimizer(self, extra: Iterable[nn.Module] = ()) -> torch.optim.Optimizer:
        """Adam over the weights (the normalisation buffers are data statistics, not trained)."""
        return adam_over(self, extra, self.lr)
