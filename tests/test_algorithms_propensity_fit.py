"""The propensity classifier of MQL eq. 11 (metarl.algorithms.fit_logistic).

Known closed-form answers first, then a cross-check against sklearn's LogisticRegression, which the
released MQL code fits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from metarl.algorithms import LogisticFit, beta_from_logits, fit_logistic


def _toy(seed: int, n_new: int = 40, n_meta: int = 60, d: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Two overlapping Gaussian clouds: separable-ish, so the fit is neither trivial nor degenerate."""
    g = torch.Generator().manual_seed(seed)
    x_new = torch.randn(n_new, d, generator=g) + 0.7
    x_meta = torch.randn(n_meta, d, generator=g) * 1.5 - 0.3
    return x_new, x_meta


def test_symmetric_two_point_closed_form() -> None:
    # x_new = -1, x_meta = +1: by symmetry b = 0 and the optimality condition is
    # w = 2 C sigmoid(-w). C = 2 ln 3 makes w = ln 3 the solution (sigmoid(-ln 3) = 1/4).
    fit = fit_logistic(torch.tensor([[-1.0]]), torch.tensor([[1.0]]), C=2.0 * math.log(3.0))
    assert fit.weight.shape == (1,) and fit.bias.shape == ()
    assert_close(fit.weight, torch.tensor([math.log(3.0)], dtype=torch.float64))
    assert abs(fit.bias.item()) < 1e-12
    assert fit.accuracy == 1.0 and fit.converged
    # beta at the new point is the odds P(new | x) / P(meta | x) = (3/4) / (1/4) = 3.
    beta = beta_from_logits(fit.logits(torch.tensor([[-1.0], [1.0]])), clip=5.0)
    assert_close(beta, torch.tensor([3.0, 1.0 / 3.0]))


def test_uninformative_features_give_the_class_prior() -> None:
    # All-zero features: w = 0 and the free intercept matches the label frequencies,
    # P(meta) = n_meta / N, so beta = n_new / n_meta everywhere.
    fit = fit_logistic(torch.zeros(20, 4), torch.zeros(80, 4), C=0.1)
    assert_close(fit.weight, torch.zeros(4, dtype=torch.float64))
    assert_close(fit.bias, torch.tensor(math.log(80.0 / 20.0), dtype=torch.float64))
    assert fit.accuracy == 0.8  # everything is predicted "meta"
    assert (fit.n_new, fit.n_meta) == (20, 80)


def test_duplicated_points_scale_like_c() -> None:
    # Repeating every point k times multiplies the data term by k: the same as C -> k C.
    x_new, x_meta = _toy(0, 10, 15)
    a = fit_logistic(x_new.repeat(3, 1), x_meta.repeat(3, 1), C=0.2)
    b = fit_logistic(x_new, x_meta, C=0.6)
    assert_close(a.weight, b.weight)
    assert_close(a.bias, b.bias)


def test_gradient_of_the_objective_vanishes_at_the_fit() -> None:
    x_new, x_meta = _toy(1)
    C = 0.5
    fit = fit_logistic(x_new, x_meta, C=C)
    w = fit.weight.clone().requires_grad_()
    b = fit.bias.clone().requires_grad_()
    x = torch.cat([x_new, x_meta]).double()
    y = torch.cat([-torch.ones(len(x_new)), torch.ones(len(x_meta))]).double()
    obj = 0.5 * w.square().sum() + C * torch.log1p(torch.exp(-y * (x @ w + b))).sum()
    gw, gb = torch.autograd.grad(obj, (w, b))
    assert gw.abs().max().item() < 1e-8 and abs(gb.item()) < 1e-8


@pytest.mark.parametrize(
    "seed, n_new, n_meta, d, C",
    [(0, 40, 60, 3, 1.0), (1, 200, 204, 30, 0.05), (2, 14, 200, 16, 0.1), (3, 50, 50, 8, 100.0)],
)
def test_matches_sklearn_logistic_regression(seed: int, n_new: int, n_meta: int, d: int, C: float) -> None:
    from sklearn import linear_model as sklearn_lm  # a dev extra: missing is a failure, not a skip
    x_new, x_meta = _toy(seed, n_new, n_meta, d)
    fit = fit_logistic(x_new, x_meta, C=C)
    x = torch.cat([x_new, x_meta]).double().numpy()
    y = np.r_[-np.ones(n_new), np.ones(n_meta)]
    # A tight tolerance so that sklearn's answer is the optimum, not an early stop.
    sk = sklearn_lm.LogisticRegression(C=C, solver="lbfgs", max_iter=10_000, tol=1e-10).fit(x, y)
    assert list(sk.classes_) == [-1.0, 1.0]
    np.testing.assert_allclose(fit.weight.numpy(), sk.coef_[0], rtol=0, atol=1e-5)
    assert fit.bias.item() == pytest.approx(sk.intercept_[0], abs=1e-5)
    assert fit.accuracy == pytest.approx(sk.score(x, y))
    # beta from our fit equals sklearn's P(new | x) / P(meta | x) on unseen points.
    x_test, _ = _toy(seed + 100, 25, 1, d)
    proba = sk.predict_proba(x_test.double().numpy())
    beta = beta_from_logits(fit.logits(x_test.double()), clip=50.0)
    np.testing.assert_allclose(beta.numpy(), proba[:, 0] / proba[:, 1], rtol=1e-4)


def test_beta_from_fit_is_the_probability_ratio() -> None:
    x_new, x_meta = _toy(4)
    fit = fit_logistic(x_new, x_meta, C=0.3)
    x = torch.cat([x_new, x_meta]).double()
    f = x @ fit.weight + fit.bias
    p_meta = 1.0 / (1.0 + torch.exp(-f))  # computed without the library's helpers
    assert_close(beta_from_logits(fit.logits(x), clip=50.0), (1.0 - p_meta) / p_meta)


def test_global_rng_state_and_inputs_untouched() -> None:
    x_new, x_meta = _toy(5)
    x_new.requires_grad_()
    x_new_before, x_meta_before = x_new.detach().clone(), x_meta.clone()
    cpu_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    fit = fit_logistic(x_new, x_meta, C=0.2)
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(x_new.detach(), x_new_before) and torch.equal(x_meta, x_meta_before)
    assert x_new.grad is None
    assert not fit.weight.requires_grad and not fit.bias.requires_grad


def test_float64_inputs_are_not_aliased() -> None:
    x_new, x_meta = (x.double() for x in _toy(6))
    before = x_new.clone()
    fit = fit_logistic(x_new, x_meta, C=1.0)
    assert torch.equal(x_new, before)
    assert fit.weight.data_ptr() != x_new.data_ptr()


def test_deterministic() -> None:
    x_new, x_meta = _toy(7, 100, 120, 20)
    a, b = fit_logistic(x_new, x_meta, C=0.1), fit_logistic(x_new, x_meta, C=0.1)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert a.accuracy == b.accuracy


def test_max_iter_reached_is_reported() -> None:
    x_new, x_meta = _toy(9, 30, 30, 10)
    fit = fit_logistic(x_new, x_meta, C=10.0, max_iter=1)
    assert fit.n_iter == 1 and not fit.converged


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_matches_cpu() -> None:
    x_new, x_meta = _toy(10, 60, 80, 12)
    cpu = fit_logistic(x_new, x_meta, C=0.3)
    gpu = fit_logistic(x_new.cuda(), x_meta.cuda(), C=0.3)
    assert gpu.weight.is_cuda
    assert_close(gpu.weight.cpu(), cpu.weight)
    assert_close(gpu.bias.cpu(), cpu.bias)
    assert_close(cpu.logits(x_new.cuda()).cpu(), gpu.logits(x_new).cpu())  # either device for x


def test_separable_data_stays_finite() -> None:
    x_new = torch.tensor([[-3.0, 0.0], [-2.0, 1.0], [-4.0, -1.0]])
    x_meta = torch.tensor([[3.0, 0.0], [2.0, -1.0], [4.0, 1.0]])
    fit = fit_logistic(x_new, x_meta, C=1e4)
    assert fit.converged and fit.accuracy == 1.0
    assert torch.isfinite(fit.weight).all() and torch.isfinite(fit.bias)
    assert fit.weight[0].item() > 0  # meta lies at positive x_0


def test_realistic_size_is_fast_and_converges() -> None:
    # The released code's largest case: 200 new vs 450 meta samples of [o, z] features.
    x_new, x_meta = _toy(8, 200, 450, 150)
    fit = fit_logistic(x_new, x_meta, C=0.1)
    assert fit.converged and fit.n_iter < 50


def test_logits_follow_the_input_dtype_and_check_shape() -> None:
    fit = LogisticFit(
        torch.tensor([1.0, -2.0], dtype=torch.float64),
        torch.tensor(0.5, dtype=torch.float64),
        accuracy=1.0,
        n_new=1,
        n_meta=1,
    )
    x = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    out = fit.logits(x)
    assert out.dtype == torch.float32 and out.shape == (2,)
    assert_close(out, torch.tensor([-0.5, -3.5]))
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        fit.logits(torch.zeros(3, 4))
    with pytest.raises(AttributeError):
        fit.accuracy = 0.0  # frozen


def test_validation_errors() -> None:
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="x_new"):
        fit_logistic(torch.zeros(0, 2), x, C=1.0)
    with pytest.raises(ValueError, match="x_meta"):
        fit_logistic(x, torch.zeros(3), C=1.0)
    with pytest.raises(ValueError, match="feature sizes differ"):
        fit_logistic(x, torch.zeros(3, 5), C=1.0)
    for bad_c in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="C must"):
            fit_logistic(x, x, C=bad_c)
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_logistic(torch.tensor([[math.nan, 0.0]]), x, C=1.0)
    with pytest.raises(ValueError, match="max_iter"):
        fit_logistic(x, x, C=1.0, max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        fit_logistic(x, x, C=1.0, tol=0.0)
