"""ESS (eq. 13), beta (eq. 12) and lambda (Remark 3) of metarl.algorithms.propensity.

The logistic fit of eq. 11 is tested in test_algorithms_propensity_fit.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from metarl.algorithms import beta_from_logits, effective_sample_size, prox_coef

# --- effective_sample_size ----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 1280])
def test_ess_equal_weights_is_one(n: int) -> None:
    assert_close(effective_sample_size(torch.full((n,), 0.8)), torch.tensor(1.0))


@pytest.mark.parametrize("n", [1, 2, 5, 256])
def test_ess_one_hot_is_one_over_n(n: int) -> None:
    beta = torch.zeros(n)
    beta[n // 2] = 3.0
    assert_close(effective_sample_size(beta), torch.tensor(1.0 / n))


def test_ess_hand_value() -> None:
    # (1 + 2 + 3)^2 / (3 * (1 + 4 + 9)) = 36 / 42.
    assert_close(effective_sample_size(torch.tensor([1.0, 2.0, 3.0])), torch.tensor(6.0 / 7.0))
    # Half the mass on zero weights: (2 * 1)^2 / (4 * 2) = 1/2.
    assert_close(effective_sample_size(torch.tensor([1.0, 0.0, 1.0, 0.0])), torch.tensor(0.5))


@pytest.mark.parametrize("scale", [1e-30, 1e-3, 7.0, 1e30])
def test_ess_is_scale_invariant_even_where_squares_would_under_or_overflow(scale: float) -> None:
    beta = torch.tensor([0.5, 2.0, 0.1, 1.0, 0.0])
    assert_close(effective_sample_size(beta * scale), effective_sample_size(beta))


@pytest.mark.parametrize("n", [1, 4])
def test_ess_all_zero_is_zero(n: int) -> None:
    ess = effective_sample_size(torch.zeros(n))
    assert ess.item() == 0.0
    assert prox_coef(ess).item() == 1.0


def test_ess_in_unit_interval_on_random_inputs() -> None:
    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        n = int(torch.randint(1, 300, (1,), generator=g))
        beta = torch.exp(torch.randn(n, generator=g) * (trial % 10))  # up to very heavy tails
        beta = beta * (torch.rand(n, generator=g) > 0.3)  # with zeros, as zero_below makes
        ess = effective_sample_size(beta)
        assert 0.0 <= ess.item() <= 1.0
        assert ess.item() >= 1.0 / n - 1e-6 or ess.item() == 0.0  # the one-hot lower bound


def test_ess_shapes_dtypes_and_empty() -> None:
    beta = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    ess = effective_sample_size(beta)
    assert ess.shape == () and ess.dtype == torch.float64
    assert_close(effective_sample_size(beta.unsqueeze(-1)), ess)  # a [B, 1] weight column
    assert_close(effective_sample_size(torch.tensor([1, 2, 3])), torch.tensor(6.0 / 7.0))
    with pytest.raises(ValueError, match="empty"):
        effective_sample_size(torch.zeros(0))


def test_ess_leaves_input_unchanged() -> None:
    beta = torch.tensor([1e-30, 2e-30, 0.0])
    before = beta.clone()
    effective_sample_size(beta)
    assert torch.equal(beta, before)


def test_ess_matches_the_released_code_formula_away_from_zero() -> None:
    # Released code: (sum b)^2 / (sum b^2 + 1e-7) / n; the epsilon is negligible for beta ~ 1.
    g = torch.Generator().manual_seed(1)
    beta = torch.rand(1280, generator=g, dtype=torch.float64) * 3.0
    reference = beta.sum() ** 2 / (beta.square().sum() + 1e-7) / beta.numel()
    assert_close(effective_sample_size(beta), reference)


# --- beta_from_logits ---------------------------------------------------------------------------


def test_beta_is_exp_minus_logit_with_upper_clip() -> None:
    f = torch.tensor([0.0, 1.0, -0.5, -3.0, 2.5])
    beta = beta_from_logits(f, clip=1.0)
    expected = torch.tensor([1.0, math.exp(-1.0), math.exp(0.5), math.e, math.exp(-2.5)])
    assert_close(beta, expected)
    assert beta.max().item() == pytest.approx(math.exp(1.0))


def test_beta_is_the_odds_of_new_versus_meta() -> None:
    f = torch.linspace(-0.9, 4.0, 11, dtype=torch.float64)
    p_meta = torch.sigmoid(f)
    assert_close(beta_from_logits(f, clip=1.0), (1.0 - p_meta) / p_meta)


@pytest.mark.parametrize("clip", [0.8, 1.0, 1.2, 2.0])
def test_beta_cap_is_exp_clip(clip: float) -> None:
    beta = beta_from_logits(torch.tensor([-100.0, -clip - 1e-3, -clip + 0.5]), clip=clip)
    assert_close(beta[:2], torch.full((2,), math.exp(clip)))
    assert_close(beta[2], torch.tensor(math.exp(clip - 0.5)))


def test_beta_zero_below() -> None:
    f = torch.tensor([math.log(10.0) + 0.01, math.log(10.0) - 0.01, 1.0, -5.0])
    beta = beta_from_logits(f, clip=2.0, zero_below=0.1)
    # exp(-ln 10 - 0.01) < 0.1 is zeroed; exp(-ln 10 + 0.01) > 0.1 stays.
    assert beta[0].item() == 0.0
    assert_close(beta[1:], torch.tensor([0.1 * math.exp(0.01), math.exp(-1.0), math.exp(2.0)]))
    # Default: nothing is zeroed, however small.
    assert beta_from_logits(torch.tensor([30.0]), clip=1.0).item() > 0.0


def test_beta_keeps_dtype_device_and_inputs() -> None:
    f = torch.tensor([0.3, -2.0], dtype=torch.float64)
    before = f.clone()
    beta = beta_from_logits(f, clip=1.1, zero_below=0.1)
    assert beta.dtype == torch.float64 and beta.shape == (2,)
    assert torch.equal(f, before)


@pytest.mark.parametrize("clip", [0.0, -1.0, math.nan])
def test_beta_rejects_bad_clip(clip: float) -> None:
    with pytest.raises(ValueError, match="clip must be > 0"):
        beta_from_logits(torch.zeros(3), clip=clip)


def test_beta_rejects_negative_zero_below() -> None:
    with pytest.raises(ValueError, match="zero_below"):
        beta_from_logits(torch.zeros(3), clip=1.0, zero_below=-0.1)


# --- prox_coef ----------------------------------------------------------------------------------


def test_prox_coef_is_one_minus_ess() -> None:
    assert_close(prox_coef(torch.tensor(0.25)), torch.tensor(0.75))
    assert_close(prox_coef(0.45), torch.tensor(0.55))  # the paper's Fig. 5 Ant-FB value
    assert prox_coef(1.0).item() == 0.0 and prox_coef(0).item() == 1.0
    g = torch.Generator().manual_seed(2)
    beta = torch.rand(64, generator=g, dtype=torch.float64)
    ess = effective_sample_size(beta)
    lam = prox_coef(ess)
    assert_close(lam, 1.0 - ess)
    assert lam.dtype == torch.float64


def test_prox_coef_range() -> None:
    # An ESS an ulp above 1 must not give a negative lambda.
    assert prox_coef(torch.tensor(1.0 + 1e-6)).item() == 0.0
    for bad in (-0.1, 1.1, math.nan):
        with pytest.raises(ValueError, match="ess"):
            prox_coef(bad)
