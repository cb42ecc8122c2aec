"""On-policy pieces shared by RL² and MAML-PG: returns, the linear feature baseline, advantages,
policy-gradient surrogates and the diagonal-Gaussian KL.

Time runs along dim -2 of every per-step tensor (``[..., T, 1]``, TorchRL's layout and the one a
batched collector returns as ``[n_envs, T]`` plus a trailing feature dim). Episode ends are given by
``done`` (terminated or truncated); a row's last step always ends what is left of its episode. GAE and
reward-to-go are TorchRL's (``torchrl.objectives.value.functional``), not re-written here.

Surrogates are written on plain log-prob tensors rather than through ``torchrl.objectives.ClipPPOLoss``
because MAML evaluates them under adapted (non-leaf) parameters through ``functional_call``, which
TorchRL's losses, holding their own parameter copies, do not take (pytorch/rl #338).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchrl.objectives.value.functional import generalized_advantage_estimate, reward2go

from metarl.algorithms.td3 import _same_shape

__all__ = [
    "clipped_surrogate",
    "discounted_returns",
    "episode_advantages",
    "gaussian_kl",
    "generalized_advantage_estimate",
    "likelihood_ratio_surrogate",
    "linear_feature_baseline_features",
    "linear_feature_baseline_fit",
    "linear_feature_baseline_predict",
    "lvc_surrogate",
    "normalize_advantages",
    "vpg_surrogate",
]


def _check_time(fn: str, x: Tensor) -> None:
    if x.dim() < 2 or x.shape[-1] != 1:
        raise ValueError(f"{fn}: per-step tensors must have shape [..., T, 1], got {tuple(x.shape)}")


def _check_gamma(fn: str, gamma: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"{fn}: gamma must be in [0, 1], got {gamma}")


def discounted_returns(reward: Tensor, done: Tensor, gamma: float) -> Tensor:
    """Reward-to-go per episode, ``R_t = sum_{k >= t, same episode} gamma^(k-t) r_k`` (MAML-PG step 3 of
    methods-reference §5.1; the lecture's policy gradient). A return never crosses a ``done``; an
    episode cut by the end of the row sums what it has. TorchRL's ``reward2go``.

    Args:
        reward, done: ``[..., T, 1]``; done is bool (terminated or truncated).
        gamma: in [0, 1] (references: 0.99).
    """
    _check_time("discounted_returns", reward)
    _same_shape("discounted_returns", reward=reward, done=done)
    _check_gamma("discounted_returns", gamma)
    return reward2go(reward, done.bool(), gamma).reshape(reward.shape)


def linear_feature_baseline_features(obs: Tensor, step: Tensor) -> Tensor:
    """rllab's features (Duan et al. 2016, "Benchmarking Deep RL for Continuous Control"; ProMP
    ``baselines/linear_baseline.py``): ``[clip(o, -10, 10), o^2, t/100, (t/100)^2, (t/100)^3, 1]``,
    with o clipped before squaring and t the step within the episode. ``[..., D] -> [..., 2D + 4]``."""
    if step.shape != obs.shape[:-1]:
        raise ValueError(f"linear_feature_baseline_features: step must have shape {tuple(obs.shape[:-1])} "
                         f"(obs without its last dim), got {tuple(step.shape)}")
    o = obs.clamp(-10.0, 10.0)
    t = (step.to(obs.dtype) / 100.0).unsqueeze(-1)
    return torch.cat([o, o * o, t, t * t, t * t * t, torch.ones_like(t)], dim=-1)


def linear_feature_baseline_fit(obs: Tensor, step: Tensor, returns: Tensor, reg: float = 1e-5) -> Tensor:
    """Coefficients of the linear feature baseline b(o, t) by damped least squares, as ProMP does:
    solve ``(F^T F + reg I) c = F^T R`` and, should c hold a NaN, retry with reg x10 (5 tries).

    Fitted in float64 (ProMP: numpy) since F^T F of the cubic time features is badly conditioned.
    ``obs [..., D]``, ``step [...]``, ``returns [..., 1]`` (all leading dims are samples). Returns
    ``[2D + 4]`` float64 coefficients.
    """
    if not reg > 0.0:
        raise ValueError(f"linear_feature_baseline_fit: reg must be > 0, got {reg}")
    if returns.shape != (*obs.shape[:-1], 1):
        raise ValueError(f"linear_feature_baseline_fit: returns must have shape {(*obs.shape[:-1], 1)}, "
                         f"got {tuple(returns.shape)}")
    if not (torch.isfinite(obs).all() and torch.isfinite(returns).all()):
        raise ValueError("linear_feature_baseline_fit: obs and returns must be finite")
    feats = linear_feature_baseline_features(obs.double(), step).reshape(-1, 2 * obs.shape[-1] + 4)
    target = returns.double().reshape(-1, 1)
    gram, rhs = feats.T @ feats, feats.T @ target
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    for _ in range(5):
        coeffs = torch.linalg.lstsq(gram + reg * eye, rhs, driver="gelsd").solution.reshape(-1)
        if not torch.isnan(coeffs).any():
            break
        reg *= 10.0
    return coeffs


def linear_feature_baseline_predict(coeffs: Tensor, obs: Tensor, step: Tensor) -> Tensor:
    """b(o, t) = features(o, t) . c, as ``[..., 1]`` in the dtype of ``obs``."""
    feats = linear_feature_baseline_features(obs.double(), step)
    if coeffs.shape != (feats.shape[-1],):
        raise ValueError(f"linear_feature_baseline_predict: coeffs must have shape ({feats.shape[-1]},), "
                         f"got {tuple(coeffs.shape)}")
    return (feats @ coeffs.double()).unsqueeze(-1).to(obs.dtype)


def episode_advantages(
    reward: Tensor, value: Tensor, done: Tensor, gamma: float, lmbda: float
) -> tuple[Tensor, Tensor]:
    """GAE (Schulman et al. 2016, eq. 16) with a baseline evaluated at every step and **no bootstrap past
    an episode's end**: V(s_{t+1}) is the next step's value inside an episode and 0 after its last step,
    as ProMP's ``_compute_advantages`` appends 0 to each path's baselines. With lmbda = 1 the advantage
    is ``R_t - b(s_t)``. TorchRL's ``generalized_advantage_estimate``; returns (advantage, value target).

    Args:
        reward, value, done: ``[..., T, 1]``; value is b(s_t) (e.g. the linear baseline).
        gamma, lmbda: in [0, 1] (ProMP: 0.99 and 1.0; garage RL²: 0.99 and 0.95).
    """
    _check_time("episode_advantages", reward)
    _same_shape("episode_advantages", reward=reward, value=value, done=done)
    _check_gamma("episode_advantages", gamma)
    if not 0.0 <= lmbda <= 1.0:
        raise ValueError(f"episode_advantages: lmbda must be in [0, 1], got {lmbda}")
    end = done.bool().clone()
    end[..., -1, :] = True  # the row's last step ends what is left of its episode: nothing to bootstrap
    next_value = torch.cat([value[..., 1:, :], torch.zeros_like(value[..., :1, :])], dim=-2)
    next_value = next_value.masked_fill(end, 0.0)
    return generalized_advantage_estimate(gamma, lmbda, value, next_value, reward, end, end)


def normalize_advantages(adv: Tensor, eps: float = 1e-8, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """``(A - mean) / (std + eps)`` over ``dim`` (all elements when None), with the population std as
    ProMP (``np.std``). Per-task normalisation (MAML) passes the per-task dims. garage's VPG divides by
    the *variance* + 1e-8 instead (methods-reference §5.4); metarl follows ProMP."""
    if not eps > 0.0:
        raise ValueError(f"normalize_advantages: eps must be > 0, got {eps}")
    dims = tuple(range(adv.dim())) if dim is None else dim
    mean = adv.mean(dim=dims, keepdim=True)
    std = adv.std(dim=dims, keepdim=True, correction=0)
    return (adv - mean) / (std + eps)


def vpg_surrogate(log_prob: Tensor, adv: Tensor) -> Tensor:
    """Vanilla policy gradient loss ``-mean(log pi(a|s) A)`` (REINFORCE with a baseline; the lecture's
    inner step; garage's and ProMP's ``log_likelihood`` inner objective). The advantage is a constant."""
    _same_shape("vpg_surrogate", log_prob=log_prob, adv=adv)
    return -(log_prob * adv.detach()).mean()


def lvc_surrogate(log_prob: Tensor, adv: Tensor) -> Tensor:
    """ProMP's low-variance curvature inner loss (Rothfuss et al. 2019, eq. 11): ``-mean(pi/stopgrad(pi)
    A)``. Its value is -mean(A) and its gradient equals :func:`vpg_surrogate`'s, but its Hessian is the
    right one for differentiating through the inner step."""
    _same_shape("lvc_surrogate", log_prob=log_prob, adv=adv)
    return -(torch.exp(log_prob - log_prob.detach()) * adv.detach()).mean()


def likelihood_ratio_surrogate(log_prob: Tensor, old_log_prob: Tensor, adv: Tensor) -> Tensor:
    """TRPO's surrogate (Schulman et al. 2015, eq. 14) as a loss: ``-mean(pi/pi_old A)``; MAML-TRPO's
    outer loss with pi = pi_{phi(theta)} and pi_old the sampling policy."""
    _same_shape("likelihood_ratio_surrogate", log_prob=log_prob, old_log_prob=old_log_prob, adv=adv)
    return -(torch.exp(log_prob - old_log_prob.detach()) * adv.detach()).mean()


def clipped_surrogate(log_prob: Tensor, old_log_prob: Tensor, adv: Tensor, clip_eps: float) -> Tensor:
    """PPO's clipped loss (Schulman et al. 2017, eq. 7): ``-mean(min(rho A, clip(rho, 1-eps, 1+eps) A))``
    with rho = pi/pi_old (MAML-PPO, ProMP's outer loss with eps 0.3; RL² PPO with eps 0.2)."""
    _same_shape("clipped_surrogate", log_prob=log_prob, old_log_prob=old_log_prob, adv=adv)
    if not clip_eps > 0.0:
        raise ValueError(f"clipped_surrogate: clip_eps must be > 0, got {clip_eps}")
    a = adv.detach()
    ratio = torch.exp(log_prob - old_log_prob.detach())
    return -torch.minimum(ratio * a, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * a).mean()


def gaussian_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """KL(p || q) of diagonal Gaussians, summed over the last (action) dim into ``[..., 1]``:
    ``sum_i log(s_q/s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2``. For TRPO's constraint p is the
    old (sampling) policy, detached by the caller, and q the policy being optimised. The means share one
    shape ``[..., A]``; a log std may be any shape that broadcasts to it (a state-independent ``[A]``)."""
    _same_shape("gaussian_kl", mean_p=mean_p, mean_q=mean_q)
    for name, log_std in (("log_std_p", log_std_p), ("log_std_q", log_std_q)):
        try:
            ok = torch.broadcast_shapes(log_std.shape, mean_p.shape) == mean_p.shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(f"gaussian_kl: {name} of shape {tuple(log_std.shape)} does not broadcast to the "
                             f"means' shape {tuple(mean_p.shape)}")
    var_ratio = torch.exp(2.0 * (log_std_p - log_std_q))
    mean_term = ((mean_p - mean_q) * torch.exp(-log_std_q)).square()
    kl = (log_std_q - log_std_p) + 0.5 * (var_ratio + mean_term) - 0.5
    return kl.sum(dim=-1, keepdim=True)
