"""On-policy math of metarl.algorithms.onpolicy against hand-computed values: reward-to-go per episode,
GAE without bootstrap past an episode end, the linear feature baseline of ProMP, advantage
normalisation, the surrogates (values and gradients) and the Gaussian KL against torch.distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from metarl.algorithms.onpolicy import (
    clipped_surrogate,
    discounted_returns,
    episode_advantages,
    gaussian_kl,
    likelihood_ratio_surrogate,
    linear_feature_baseline_features,
    linear_feature_baseline_fit,
    linear_feature_baseline_predict,
    lvc_surrogate,
    normalize_advantages,
    vpg_surrogate,
)


def steps(*values: float) -> torch.Tensor:
    """One row of a [1, T, 1] per-step tensor."""
    return torch.tensor(values, dtype=torch.float64).reshape(1, -1, 1)


REWARD = steps(1.0, 2.0, 3.0, 4.0, 5.0)
DONE = steps(0, 0, 1, 0, 0).bool()  # episode [1, 2, 3], then [4, 5] cut by the row's end


def test_discounted_returns_stop_at_episode_ends() -> None:
    returns = discounted_returns(REWARD, DONE, gamma=0.5)
    # 1 + .5*2 + .25*3 = 2.75; 2 + .5*3 = 3.5; 3; 4 + .5*5 = 6.5; 5.
    assert_close(returns, steps(2.75, 3.5, 3.0, 6.5, 5.0))
    batched = discounted_returns(torch.cat([REWARD, 2 * REWARD]), torch.cat([DONE, DONE]), 0.5)
    assert_close(batched[1:], 2 * steps(2.75, 3.5, 3.0, 6.5, 5.0))


def test_gae_with_lambda_one_is_return_minus_baseline_and_never_bootstraps_past_an_end() -> None:
    value = steps(0.5, -1.0, 2.0, 10.0, 1.0)
    adv, target = episode_advantages(REWARD, value, DONE, gamma=0.5, lmbda=1.0)
    assert_close(adv, discounted_returns(REWARD, DONE, 0.5) - value)
    assert_close(target, adv + value)
    # lambda = 0: one-step TD errors, r + gamma V(s') - V(s), with V(s') = 0 after an episode's last step.
    adv0, _ = episode_advantages(REWARD, value, DONE, gamma=0.5, lmbda=0.0)
    assert_close(adv0, steps(1 + 0.5 * -1 - 0.5, 2 + 0.5 * 2 + 1, 3 - 2, 4 + 0.5 * 1 - 10, 5 - 1))
    # lambda = 0.5 at the first step: delta_0 + (gamma lambda) delta_1 + (gamma lambda)^2 delta_2.
    adv_half, _ = episode_advantages(REWARD, value, DONE, gamma=0.5, lmbda=0.5)
    assert_close(adv_half[0, 0, 0], torch.tensor(0.0 + 0.25 * 4.0 + 0.0625 * 1.0, dtype=torch.float64))


def test_linear_baseline_features_are_rllabs() -> None:
    obs = torch.tensor([[[0.5, -20.0], [1.0, 2.0]]], dtype=torch.float64)
    step = torch.tensor([[0, 50]])
    f = linear_feature_baseline_features(obs, step)
    assert f.shape == (1, 2, 8)
    assert_close(f[0, 0], torch.tensor([0.5, -10.0, 0.25, 100.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64))
    assert_close(f[0, 1], torch.tensor([1.0, 2.0, 1.0, 4.0, 0.5, 0.25, 0.125, 1.0], dtype=torch.float64))


def test_linear_baseline_fit_equals_promps_damped_least_squares_and_recovers_a_linear_target() -> None:
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(4, 20, 3, generator=g)
    step = torch.arange(20).expand(4, 20)
    returns = torch.randn(4, 20, 1, generator=g)
    coeffs = linear_feature_baseline_fit(obs, step, returns, reg=1e-5)
    # ProMP's LinearBaseline.fit, in numpy, on the same features.
    o = np.clip(obs.double().numpy().reshape(-1, 3), -10, 10)
    t = step.double().numpy().reshape(-1, 1) / 100.0
    feat = np.concatenate([o, o ** 2, t, t ** 2, t ** 3, np.ones_like(t)], axis=1)
    ref = np.linalg.lstsq(feat.T @ feat + 1e-5 * np.eye(10), feat.T @ returns.double().numpy().reshape(-1),
                          rcond=-1)[0]
    assert_close(coeffs, torch.from_numpy(ref), rtol=1e-8, atol=1e-10)
    # A target that *is* linear in the features is predicted (almost) exactly.
    true = torch.linspace(-1, 1, 10, dtype=torch.float64)
    target = linear_feature_baseline_features(obs.double(), step) @ true
    fitted = linear_feature_baseline_fit(obs, step, target.unsqueeze(-1).float(), reg=1e-10)
    pred = linear_feature_baseline_predict(fitted, obs, step)
    assert pred.shape == (4, 20, 1) and pred.dtype == torch.float32
    assert_close(pred.double(), target.unsqueeze(-1), rtol=1e-4, atol=1e-4)


def test_normalize_advantages_mean_zero_std_one() -> None:
    adv = torch.tensor([[1.0, 2.0, 3.0, 6.0], [10.0, 10.0, 10.0, 10.0]])
    out = normalize_advantages(adv)
    assert_close(out.mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
    assert_close(out.std(correction=0), torch.tensor(1.0), atol=1e-6, rtol=0)
    per_row = normalize_advantages(adv, dim=1)
    assert_close(per_row[0], (adv[0] - 3.0) / (np.sqrt(3.5) + 1e-8))  # population std of [1, 2, 3, 6]
    assert_close(per_row[1], torch.zeros(4))  # a constant row: 0 / (0 + eps), not NaN


def test_surrogates_hand_values_and_gradients() -> None:
    lp = torch.tensor([[-1.0], [-0.5], [-2.0]], requires_grad=True)
    adv = torch.tensor([[2.0], [-1.0], [1.0]])
    assert_close(vpg_surrogate(lp, adv), torch.tensor(-(-2.0 + 0.5 - 2.0) / 3))
    assert_close(lvc_surrogate(lp, adv), -adv.mean())
    g_vpg = torch.autograd.grad(vpg_surrogate(lp, adv), lp)[0]
    g_lvc = torch.autograd.grad(lvc_surrogate(lp, adv), lp)[0]
    assert_close(g_vpg, g_lvc)
    # At pi = pi_old the likelihood-ratio gradient equals the vanilla one.
    g_lr = torch.autograd.grad(likelihood_ratio_surrogate(lp, lp.detach(), adv), lp)[0]
    assert_close(g_lr, g_vpg)
    # PPO: rho = [1, e^0.5, e^-0.5, e^0.5], A = [1, 1, -1, -1], eps = 0.2.
    lp4 = torch.tensor([[-1.0], [-0.5], [-2.0], [-0.5]], requires_grad=True)
    old4 = torch.tensor([[-1.0], [-1.0], [-1.5], [-1.0]])
    adv4 = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    r = float(np.exp(0.5))
    # min(rho A, clip(rho) A): row 1 is clipped at 1.2 (A > 0), row 2 at 0.8 (A < 0); row 3 keeps the
    # unclipped, more pessimistic -rho.
    expected = -torch.tensor([1.0, 1.2, -0.8, -r]).mean()
    assert_close(clipped_surrogate(lp4, old4, adv4, clip_eps=0.2), expected)
    g = torch.autograd.grad(clipped_surrogate(lp4, old4, adv4, clip_eps=0.2), lp4)[0]
    # d/dlp of -rho A / 4 = -rho A / 4 on unclipped rows; clipped rows carry no gradient.
    assert_close(g, torch.tensor([[-0.25], [0.0], [0.0], [r / 4]]))


def test_gaussian_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mp, mq = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    sp, sq = torch.randn(5, 3, generator=g) * 0.3, torch.randn(3, generator=g) * 0.3  # q: state-independent
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mp, sp.exp()), torch.distributions.Normal(mq, sq.exp())).sum(-1, keepdim=True)
    assert_close(gaussian_kl(mp, sp, mq, sq), ref)
    assert_close(gaussian_kl(mp, sp, mp, sp), torch.zeros(5, 1))


def test_bad_inputs_raise_one_line_errors() -> None:
    with pytest.raises(ValueError, match="gamma must be in"):
        discounted_returns(REWARD, DONE, 1.5)
    with pytest.raises(ValueError, match=r"\[..., T, 1\]"):
        discounted_returns(REWARD.reshape(-1), DONE.reshape(-1), 0.9)
    with pytest.raises(ValueError, match="must share one shape"):
        vpg_surrogate(torch.zeros(3), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="must be finite"):
        linear_feature_baseline_fit(torch.full((2, 1), float("nan")), torch.zeros(2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="does not broadcast"):
        gaussian_kl(torch.zeros(4, 2), torch.zeros(3), torch.zeros(4, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="clip_eps must be > 0"):
        clipped_surrogate(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 1), 0.0)
