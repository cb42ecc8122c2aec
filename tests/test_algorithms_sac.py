"""SAC pieces (PEARL's V-form, MIER's twin-Q form) against torch.distributions and hand values,
and the gradients each loss must (not) send."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from metarl.algorithms.sac import (
    policy_loss,
    policy_regularizer,
    q_target,
    soft_q_target,
    tanh_gaussian_log_prob,
    temperature_loss,
    twin_q_loss,
    value_loss,
    value_target,
)


def col(*values: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor([[v] for v in values], requires_grad=grad)  # [B, 1], a leaf


def _gaussian(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(8, 3, generator=g, dtype=torch.float64)
    log_std = torch.rand(8, 3, generator=g, dtype=torch.float64) * 2 - 1.5
    u = mean + log_std.exp() * torch.randn(8, 3, generator=g, dtype=torch.float64)
    return u, mean, log_std


def test_tanh_gaussian_log_prob_against_transformed_distribution() -> None:
    u, mean, log_std = _gaussian()
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    exact = dist.log_prob(torch.tanh(u)).sum(-1, keepdim=True)
    got0 = tanh_gaussian_log_prob(u, mean, log_std, eps=0.0)
    assert got0.shape == (8, 1)
    torch.testing.assert_close(got0, exact, rtol=1e-9, atol=1e-9)
    # oyster's 1e-6 inside the log: exactly sum_i log(1 + 1e-6 / (1 - tanh^2 u_i)) below the exact value.
    gap = torch.log1p(1e-6 / (1 - torch.tanh(u).square())).sum(-1, keepdim=True)
    torch.testing.assert_close(tanh_gaussian_log_prob(u, mean, log_std), exact - gap, rtol=1e-9, atol=1e-9)
    assert (gap > 0).all()


def test_tanh_gaussian_log_prob_float32_and_saturation() -> None:
    u, mean, log_std = (t.float() for t in _gaussian(1))
    ref = tanh_gaussian_log_prob(u.double(), mean.double(), log_std.double()).float()
    torch.testing.assert_close(tanh_gaussian_log_prob(u, mean, log_std), ref, rtol=1e-5, atol=1e-5)
    far = torch.full((1, 2), 30.0)  # tanh(30) == 1 in float32: the eps keeps the log finite
    assert torch.isfinite(tanh_gaussian_log_prob(far, far, torch.zeros(1, 2))).all()
    assert torch.isinf(tanh_gaussian_log_prob(far, far, torch.zeros(1, 2), eps=0.0)).all()


def test_q_target_hand_values() -> None:
    y = q_target(col(1.0, -2.0, 0.5), col(0.0, 1.0, 0.0), col(10.0, 10.0, -4.0), gamma=0.9, reward_scale=5.0)
    torch.testing.assert_close(y, col(5.0 + 9.0, -10.0, 2.5 - 3.6))
    y_bool = q_target(col(1.0), torch.tensor([[True]]), col(3.0), gamma=0.99, reward_scale=2.0)
    torch.testing.assert_close(y_bool, col(2.0))


def test_twin_q_loss_hand_value_and_no_gradient_to_the_target() -> None:
    q1, q2 = col(1.0, 2.0, grad=True), col(0.0, 4.0, grad=True)
    target = col(2.0, 2.0, grad=True)
    loss = twin_q_loss(q1, q2, target)
    torch.testing.assert_close(loss, torch.tensor((1.0 + 0.0) / 2 + (4.0 + 4.0) / 2))
    loss.backward()
    torch.testing.assert_close(q1.grad, col(-1.0, 0.0))  # d/dq mean (q - y)^2 = 2 (q - y) / B
    torch.testing.assert_close(q2.grad, col(-2.0, 2.0))
    assert target.grad is None


def test_value_target_and_value_loss_send_no_gradient_to_q_or_pi() -> None:
    min_q, log_pi = col(3.0, -1.0, grad=True), col(0.5, -2.0, grad=True)
    target = value_target(min_q, log_pi)
    torch.testing.assert_close(target, col(2.5, 1.0))
    torch.testing.assert_close(value_target(min_q, log_pi, alpha=0.2), col(2.9, -0.6))
    v = col(2.0, 2.0, grad=True)
    loss = value_loss(v, target)
    torch.testing.assert_close(loss, torch.tensor((0.25 + 1.0) / 2))
    loss.backward()
    torch.testing.assert_close(v.grad, col(-0.5, 1.0))
    assert min_q.grad is None and log_pi.grad is None


def test_policy_loss_trains_through_both_terms_but_not_alpha() -> None:
    log_pi, min_q = col(0.5, -1.5, grad=True), col(4.0, 2.0, grad=True)
    torch.testing.assert_close(policy_loss(log_pi, min_q), torch.tensor((0.5 - 4.0 - 1.5 - 2.0) / 2))
    log_alpha = torch.tensor(-1.0, requires_grad=True)
    loss = policy_loss(log_pi, min_q, alpha=log_alpha.exp())
    torch.testing.assert_close(loss, torch.tensor((0.5 * 0.3678794 - 4.0 - 1.5 * 0.3678794 - 2.0) / 2))
    loss.backward()
    torch.testing.assert_close(min_q.grad, col(-0.5, -0.5))
    torch.testing.assert_close(log_pi.grad, col(0.5, 0.5) * 0.36787944)
    assert log_alpha.grad is None


def test_policy_regularizer_hand_values() -> None:
    mean = torch.tensor([[1.0, -3.0], [0.0, 2.0]])
    log_std = torch.tensor([[0.5, 0.5], [-1.0, 1.0]])
    pre = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    reg = policy_regularizer(mean, log_std, pre)
    torch.testing.assert_close(reg, torch.tensor(1e-3 * 14.0 / 4 + 1e-3 * 2.5 / 4))
    full = policy_regularizer(mean, log_std, pre, w_mean=1.0, w_std=0.0, w_pre=0.5)
    torch.testing.assert_close(full, torch.tensor(14.0 / 4 + 0.5 * (4.0 + 2.0) / 2))  # sum over dims, mean over B


def test_soft_q_target_hand_values_and_detached_alpha() -> None:
    log_alpha = torch.tensor(0.0, requires_grad=True)
    y = soft_q_target(col(1.0, 2.0), col(0.0, 1.0), col(5.0, 1.0), col(3.0, 7.0), col(-1.0, 0.0),
                      gamma=0.5, alpha=log_alpha.exp() * 0.1, reward_scale=2.0)
    torch.testing.assert_close(y, col(2.0 + 0.5 * (3.0 + 0.1), 4.0))
    assert not y.requires_grad


def test_temperature_loss_value_sign_and_gradients() -> None:
    log_alpha = torch.tensor(0.3, requires_grad=True)
    log_pi = col(2.0, 0.0, grad=True)  # entropy estimate -1, below the target 0.5: alpha must grow
    loss = temperature_loss(log_alpha, log_pi, target_entropy=0.5)
    torch.testing.assert_close(loss, torch.tensor(-0.3 * (2.5 + 0.5) / 2))
    loss.backward()
    torch.testing.assert_close(log_alpha.grad, torch.tensor(-1.5))
    assert log_alpha.grad < 0 and log_pi.grad is None  # descent raises log alpha; pi is not trained here
    with pytest.raises(ValueError, match="one value"):
        temperature_loss(torch.zeros(2), log_pi, -1.0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: q_target(torch.zeros(4), torch.zeros(4, 1), torch.zeros(4, 1), 0.9, 1.0), "q_target"),
        (lambda: q_target(torch.zeros(4, 1), torch.zeros(4, 1), torch.zeros(4, 1), 1.5, 1.0), "gamma"),
        (lambda: q_target(torch.zeros(4, 1), torch.zeros(4, 1), torch.zeros(4, 1), 0.9, 0.0), "reward_scale"),
        (lambda: twin_q_loss(torch.zeros(4, 1), torch.zeros(4, 1), torch.zeros(4)), "twin_q_loss"),
        (lambda: value_loss(torch.zeros(4, 1), torch.zeros(4)), "value_loss"),
        (lambda: policy_loss(torch.zeros(4), torch.zeros(4, 1)), "policy_loss"),
        (lambda: policy_regularizer(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), w_std=-1.0), "w_std"),
        (lambda: tanh_gaussian_log_prob(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 2)), "tanh_gaussian"),
        (lambda: soft_q_target(*(torch.zeros(3, 1),) * 4, torch.zeros(3), 0.9), "soft_q_target"),
    ],
)
def test_shape_and_value_errors(call, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()
