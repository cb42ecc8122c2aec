"""TD3 math of metarl.algorithms.td3 against hand-computed values (MQL eqs. 7, 15, 19)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from metarl.algorithms import actor_loss, critic_loss, smooth_target_action, soft_update_, td3_target


def col(*values: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A [B, 1] column, the shape every per-sample quantity has in the losses."""
    return torch.tensor(values, dtype=dtype).unsqueeze(-1)


# --- td3_target -------------------------------------------------------------------------------


def test_td3_target_hand_values() -> None:
    reward = col(1.0, 2.0, -1.0, 0.5)
    terminated = col(0, 1, 0, 1).bool()
    next_q1 = col(10.0, 5.0, -3.0, 7.0)
    next_q2 = col(8.0, 6.0, -4.0, 1.0)
    y = td3_target(reward, terminated, next_q1, next_q2, gamma=0.9)
    # Rows 0 and 2 bootstrap from min(Q1', Q2') = 8 and -4; rows 1 and 3 terminated: y = r.
    assert_close(y, col(1.0 + 0.9 * 8.0, 2.0, -1.0 + 0.9 * -4.0, 0.5))
    assert y.shape == (4, 1)


def test_td3_target_truncation_bootstraps() -> None:
    # A time-limit truncation is not a termination: the same row bootstraps either way it ends.
    reward, q1, q2 = col(1.0), col(3.0), col(2.0)
    truncated_only = td3_target(reward, col(0).bool(), q1, q2, gamma=0.5)
    terminated = td3_target(reward, col(1).bool(), q1, q2, gamma=0.5)
    assert_close(truncated_only, col(2.0))
    assert_close(terminated, col(1.0))


def test_td3_target_takes_min_of_the_two_critics_elementwise() -> None:
    q1, q2 = col(1.0, 9.0), col(4.0, -2.0)
    y = td3_target(col(0.0, 0.0), col(0, 0).bool(), q1, q2, gamma=1.0)
    assert_close(y, col(1.0, -2.0))


def test_td3_target_accepts_float_terminated_and_gamma_zero() -> None:
    reward = col(1.5, -2.0)
    y = td3_target(reward, col(0.0, 1.0), col(100.0, 100.0), col(50.0, 50.0), gamma=0.0)
    assert_close(y, reward)
    y = td3_target(reward, col(0.0, 1.0), col(4.0, 4.0), col(6.0, 6.0), gamma=0.5)
    assert_close(y, col(3.5, -2.0))


def test_td3_target_leaves_inputs_unchanged() -> None:
    args = [col(1.0, 2.0), col(0, 1).bool(), col(3.0, 4.0), col(5.0, 6.0)]
    copies = [a.clone() for a in args]
    td3_target(*args, gamma=0.99)
    for a, c in zip(args, copies, strict=True):
        assert torch.equal(a, c)


def test_td3_target_rejects_broadcasting_shapes_and_bad_gamma() -> None:
    with pytest.raises(ValueError, match="one shape"):
        td3_target(torch.zeros(4), col(0, 0, 0, 0).bool(), col(0, 0, 0, 0), col(0, 0, 0, 0), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        td3_target(col(0.0), col(0).bool(), col(0.0), col(0.0), gamma=1.5)


# --- smooth_target_action ---------------------------------------------------------------------


def test_smooth_target_action_clips_noise_then_action() -> None:
    next_action = torch.tensor([[0.9, -0.2, 0.0, -0.9]])
    noise = torch.tensor([[0.3, -0.7, 0.1, -0.3]])
    out = smooth_target_action(next_action, noise, noise_clip=0.5)
    # 0.9+0.3 -> 1 (action clip); -0.7 -> -0.5 (noise clip); 0.1 kept; -0.9-0.3 -> -1.
    assert_close(out, torch.tensor([[1.0, -0.7, 0.1, -1.0]]))


def test_smooth_target_action_max_action_and_zero_clip() -> None:
    next_action = torch.tensor([[0.9, -0.2], [1.9, -2.5]])
    noise = torch.tensor([[0.3, -0.7], [0.4, 0.1]])
    out = smooth_target_action(next_action, noise, noise_clip=0.5, max_action=2.0)
    assert_close(out, torch.tensor([[1.2, -0.7], [2.0, -2.0]]))
    # With c = 0 the noise is ignored; only the action box remains.
    assert_close(smooth_target_action(next_action, noise, noise_clip=0.0), next_action.clamp(-1, 1))


def test_smooth_target_action_pure_and_validated() -> None:
    a, eps = torch.tensor([[0.5, 0.5]]), torch.tensor([[2.0, -2.0]])
    a0, eps0 = a.clone(), eps.clone()
    smooth_target_action(a, eps, noise_clip=0.5)
    assert torch.equal(a, a0) and torch.equal(eps, eps0)
    with pytest.raises(ValueError, match="noise_clip"):
        smooth_target_action(a, eps, noise_clip=-0.1)
    with pytest.raises(ValueError, match="max_action"):
        smooth_target_action(a, eps, noise_clip=0.5, max_action=0.0)
    with pytest.raises(ValueError, match="one shape"):
        smooth_target_action(a, eps[:, :1].expand(1, 3), noise_clip=0.5)


# --- critic_loss --------------------------------------------------------------------------------


def test_critic_loss_unweighted_hand_value() -> None:
    q1, q2, y = col(1.0, 2.0, 3.0), col(0.0, 2.0, 5.0), col(1.0, 1.0, 1.0)
    # Per sample: (0 + 1), (1 + 1), (4 + 16) -> mean 23 / 3.
    assert_close(critic_loss(q1, q2, y), torch.tensor(23.0 / 3.0))
    # Equals TD3's MSE(Q1, y) + MSE(Q2, y).
    mse = nn.functional.mse_loss
    assert_close(critic_loss(q1, q2, y), mse(q1, y) + mse(q2, y))
    assert critic_loss(q1, q2, y, weight=None).shape == ()


def test_critic_loss_weighted_and_zero_weight_rows() -> None:
    q1, q2, y = col(1.0, 2.0, 3.0), col(0.0, 2.0, 5.0), col(1.0, 1.0, 1.0)
    w = col(1.0, 0.5, 0.0)
    assert_close(critic_loss(q1, q2, y, w), torch.tensor((1.0 + 0.5 * 2.0 + 0.0) / 3.0))
    # A zero-weight row contributes nothing, however wrong its Q values are.
    far = critic_loss(col(1.0, 2.0, 1e6), col(0.0, 2.0, -1e6), y, w)
    assert_close(far, critic_loss(q1, q2, y, w))
    assert_close(critic_loss(q1, q2, y, torch.ones_like(w)), critic_loss(q1, q2, y))


def test_critic_loss_gradients_reach_q_but_never_target_or_weight() -> None:
    q1 = col(1.0, 2.0, 3.0).requires_grad_()
    q2 = col(0.0, 2.0, 5.0).requires_grad_()
    y = col(1.0, 1.0, 1.0).requires_grad_()
    w = col(1.0, 0.5, 0.0).requires_grad_()
    critic_loss(q1, q2, y, w).backward()
    # d/dq of mean(w (q - y)^2) = 2 w (q - y) / B.
    assert_close(q1.grad, 2.0 * col(1.0, 0.5, 0.0) * col(0.0, 1.0, 2.0) / 3.0)
    assert_close(q2.grad, 2.0 * col(1.0, 0.5, 0.0) * col(-1.0, 1.0, 4.0) / 3.0)
    assert q2.grad[2, 0] == 0.0
    assert y.grad is None
    assert w.grad is None


def test_critic_loss_leaves_inputs_unchanged_and_checks_shapes() -> None:
    args = [col(1.0, 2.0), col(3.0, 4.0), col(0.5, 0.5), col(1.0, 2.0)]
    copies = [a.clone() for a in args]
    critic_loss(*args)
    for a, c in zip(args, copies, strict=True):
        assert torch.equal(a, c)
    with pytest.raises(ValueError, match="one shape"):
        critic_loss(col(1.0, 2.0), col(1.0, 2.0), torch.tensor([0.0, 0.0]))
    with pytest.raises(ValueError, match="one shape"):
        critic_loss(col(1.0, 2.0), col(1.0, 2.0), col(0.0, 0.0), weight=torch.ones(2))


# --- actor_loss ---------------------------------------------------------------------------------


def test_actor_loss_values() -> None:
    q = col(1.0, 2.0, 6.0)
    assert_close(actor_loss(q), torch.tensor(-3.0))
    assert_close(actor_loss(q, col(1.0, 0.0, 0.5)), torch.tensor(-(1.0 + 0.0 + 3.0) / 3.0))
    # The zero-weight row does not matter.
    assert_close(actor_loss(col(1.0, -1e6, 6.0), col(1.0, 0.0, 0.5)), torch.tensor(-4.0 / 3.0))


def test_actor_loss_gradient_and_weight_is_constant() -> None:
    q = col(1.0, 2.0, 6.0).requires_grad_()
    w = col(1.0, 0.0, 0.5).requires_grad_()
    actor_loss(q, w).backward()
    assert_close(q.grad, -col(1.0, 0.0, 0.5) / 3.0)
    assert w.grad is None
    with pytest.raises(ValueError, match="one shape"):
        actor_loss(col(1.0, 2.0), torch.ones(2))


def test_actor_loss_gradient_flows_through_the_critic_to_the_action() -> None:
    # d(-mean Q1(a))/da = -dQ1/da / B: the deterministic policy gradient of eq. 6.
    critic = nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[2.0, -1.0]]))
        critic.bias.zero_()
    action = torch.tensor([[0.1, 0.2], [0.3, 0.4]], requires_grad=True)
    actor_loss(critic(action)).backward()
    assert_close(action.grad, -torch.tensor([[2.0, -1.0], [2.0, -1.0]]) / 2.0)


# --- soft_update_ -------------------------------------------------------------------------------


def _pair() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    target = [torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([[0.0]], dtype=torch.float64)]
    source = [torch.tensor([3.0, 2.0], dtype=torch.float64), torch.tensor([[10.0]], dtype=torch.float64)]
    return target, source


def test_soft_update_tau_zero_keeps_target_exactly() -> None:
    target, source = _pair()
    before = [t.clone() for t in target]
    soft_update_(target, source, tau=0.0)
    assert all(torch.equal(t, b) for t, b in zip(target, before, strict=True))


def test_soft_update_tau_one_copies_source_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    target = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    source = [torch.randn(5, 3, generator=g) * 1e3, torch.randn(7, generator=g) * 1e-3]
    soft_update_(target, source, tau=1.0)
    assert all(torch.equal(t, s) for t, s in zip(target, source, strict=True))


def test_soft_update_polyak_hand_values() -> None:
    target, source = _pair()
    src_before = [s.clone() for s in source]
    soft_update_(target, source, tau=0.005)
    # 0.005 * 3 + 0.995 * 1 = 1.01; 0.005 * 2 + 0.995 * -2 = -1.98; 0.005 * 10 = 0.05.
    assert_close(target[0], torch.tensor([1.01, -1.98], dtype=torch.float64), rtol=0, atol=1e-15)
    assert_close(target[1], torch.tensor([[0.05]], dtype=torch.float64), rtol=0, atol=1e-15)
    assert all(torch.equal(s, b) for s, b in zip(source, src_before, strict=True))


def test_soft_update_on_modules_records_no_graph() -> None:
    torch.manual_seed(0)
    online, tgt = nn.Linear(3, 2), nn.Linear(3, 2)
    pairs = zip(online.parameters(), tgt.parameters(), strict=True)
    expected = [0.25 * p.detach() + 0.75 * q.detach() for p, q in pairs]
    soft_update_(tgt.parameters(), online.parameters(), tau=0.25)  # generators are fine
    for q, e in zip(tgt.parameters(), expected, strict=True):
        assert_close(q.detach(), e)
        assert q.requires_grad and q.grad_fn is None and q.grad is None
    assert all(p.grad is None for p in online.parameters())


def test_soft_update_validates() -> None:
    target, source = _pair()
    with pytest.raises(ValueError, match="tau"):
        soft_update_(target, source, tau=1.5)
    with pytest.raises(ValueError, match="tau"):
        soft_update_(target, source, tau=math.nan)
    with pytest.raises(ValueError, match="2 target tensors but 1 source"):
        soft_update_(target, source[:1], tau=0.5)
    with pytest.raises(ValueError, match="shape"):
        soft_update_(target, source[::-1], tau=0.5)
    soft_update_([], [], tau=0.5)  # nothing to do is not an error
