"""PEARL's posterior math against closed forms and torch.distributions."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from metarl.algorithms.pearl import kl_to_standard_normal, product_of_gaussians, reparam_sample


def _rand(*shape: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g), torch.rand(*shape, generator=g) * 2 + 0.05


def test_one_factor_is_its_own_posterior() -> None:
    mu, var = _rand(4, 1, 5)
    post_mu, post_var = product_of_gaussians(mu, var)
    assert post_mu.shape == post_var.shape == (4, 5)
    torch.testing.assert_close(post_mu, mu[:, 0])
    torch.testing.assert_close(post_var, var[:, 0])


def test_two_equal_factors_halve_the_variance_and_keep_the_mean() -> None:
    mu, var = _rand(3, 1, 2)
    post_mu, post_var = product_of_gaussians(mu.expand(3, 2, 2), var.expand(3, 2, 2))
    torch.testing.assert_close(post_var, var[:, 0] / 2)
    torch.testing.assert_close(post_mu, mu[:, 0])


def test_random_case_matches_a_float64_hand_computation_and_is_order_free() -> None:
    mu, var = _rand(2, 3, 7, 4, seed=1)  # leading dims [2, 3], N = 7 factors, d = 4
    post_mu, post_var = product_of_gaussians(mu, var)
    m, v = mu.double(), var.double()
    ref_var = torch.empty(2, 3, 4, dtype=torch.float64)
    ref_mu = torch.empty_like(ref_var)
    for idx in torch.cartesian_prod(torch.arange(2), torch.arange(3), torch.arange(4)).tolist():
        a, b, d = idx
        precision = sum(1.0 / float(v[a, b, n, d]) for n in range(7))
        ref_var[a, b, d] = 1.0 / precision
        ref_mu[a, b, d] = ref_var[a, b, d] * sum(float(m[a, b, n, d] / v[a, b, n, d]) for n in range(7))
    torch.testing.assert_close(post_var.double(), ref_var, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(post_mu.double(), ref_mu, rtol=1e-5, atol=1e-6)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(2))
    p_mu, p_var = product_of_gaussians(mu[:, :, perm], var[:, :, perm])
    torch.testing.assert_close(p_mu, post_mu)
    torch.testing.assert_close(p_var, post_var)


def test_variances_are_clamped_below_at_min_var() -> None:
    mu = torch.tensor([[[1.0], [3.0]]])
    var = torch.tensor([[[0.0], [1e-7]]])  # a zero variance would give 0/0 without the clamp
    post_mu, post_var = product_of_gaussians(mu, var)
    torch.testing.assert_close(post_var, torch.tensor([[0.5e-7]]))
    torch.testing.assert_close(post_mu, torch.tensor([[2.0]]))
    _, big = product_of_gaussians(mu, var, min_var=0.5)
    torch.testing.assert_close(big, torch.tensor([[0.25]]))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_kl_matches_torch_distributions(reduction: str) -> None:
    mu, var = _rand(6, 5, seed=3)
    per_task = kl_divergence(Normal(mu, var.sqrt()), Normal(torch.zeros(5), torch.ones(5))).sum(-1)
    expected = per_task.sum() if reduction == "sum" else per_task.mean()
    got = kl_to_standard_normal(mu, var, reduction)
    assert got.shape == ()
    torch.testing.assert_close(got, expected)
    assert kl_to_standard_normal(torch.zeros(3, 5), torch.ones(3, 5), reduction) == 0.0  # the prior itself


def test_kl_sum_grows_with_the_number_of_tasks_mean_does_not() -> None:
    mu, var = _rand(1, 5, seed=4)
    one = kl_to_standard_normal(mu, var)
    torch.testing.assert_close(kl_to_standard_normal(mu.expand(4, 5), var.expand(4, 5)), 4 * one)
    torch.testing.assert_close(kl_to_standard_normal(mu.expand(4, 5), var.expand(4, 5), "mean"), one)


def test_reparam_sample_and_its_gradients() -> None:
    mu, var = _rand(3, 5, seed=5)
    mu.requires_grad_(True)
    var.requires_grad_(True)
    eps = torch.randn(3, 5, generator=torch.Generator().manual_seed(6), requires_grad=True)
    z = reparam_sample(mu, var, eps)
    torch.testing.assert_close(z, mu + var.sqrt() * eps)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(3, 5))
    torch.testing.assert_close(var.grad, eps.detach() / (2 * var.detach().sqrt()))
    assert eps.grad is None  # the noise is a constant of the sample
    torch.testing.assert_close(reparam_sample(mu, var, torch.zeros(3, 5)), mu)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="share one shape"):
        product_of_gaussians(torch.zeros(2, 3, 4), torch.ones(2, 3, 5))
    with pytest.raises(ValueError, match="N >= 1"):
        product_of_gaussians(torch.zeros(2, 0, 4), torch.ones(2, 0, 4))
    with pytest.raises(ValueError, match="min_var"):
        product_of_gaussians(torch.zeros(2, 3, 4), torch.ones(2, 3, 4), min_var=0.0)
    with pytest.raises(ValueError, match="reduction"):
        kl_to_standard_normal(torch.zeros(2, 3), torch.ones(2, 3), "batchmean")
    with pytest.raises(ValueError, match="share one shape"):
        reparam_sample(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(3))
