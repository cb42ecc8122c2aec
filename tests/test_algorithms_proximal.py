"""The proximal term of MQL eqs. 18-19 (metarl.algorithms.proximal) against hand values."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from metarl.algorithms import effective_sample_size, prox_coef, proximal_penalty


def _theta() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    params = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    anchor = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]
    return params, anchor


def test_value_by_hand_half_and_full() -> None:
    params, anchor = _theta()
    # |theta - theta_meta|^2 = 1 + 4 + 4 = 9.
    assert_close(proximal_penalty(params, anchor, 0.5), torch.tensor(0.25 * 9.0))
    assert_close(proximal_penalty(params, anchor, 0.5, half=False), torch.tensor(0.5 * 9.0))
    assert_close(proximal_penalty(params, anchor, torch.tensor(0.5)), torch.tensor(2.25))
    assert proximal_penalty(params, anchor, 0.5).shape == ()


def test_zero_at_anchor_or_zero_lambda() -> None:
    params, anchor = _theta()
    assert proximal_penalty(params, [p.clone() for p in params], 0.7).item() == 0.0
    assert proximal_penalty(params, anchor, 0.0).item() == 0.0
    assert proximal_penalty([], [], 0.3).item() == 0.0


@pytest.mark.parametrize("half, factor", [(True, 1.0), (False, 2.0)])
def test_gradient_is_lambda_times_displacement(half: bool, factor: float) -> None:
    g = torch.Generator().manual_seed(3)
    params = [torch.randn(4, 3, generator=g).requires_grad_(), torch.randn(5, generator=g).requires_grad_()]
    anchor = [torch.randn(4, 3, generator=g), torch.randn(5, generator=g)]
    lam = 0.37
    proximal_penalty(params, anchor, lam, half=half).backward()
    for p, a in zip(params, anchor, strict=True):
        assert_close(p.grad, factor * lam * (p.detach() - a))


def test_no_gradient_reaches_anchor_or_lambda() -> None:
    params, anchor = _theta()
    params = [p.requires_grad_() for p in params]
    anchor = [a.requires_grad_() for a in anchor]
    lam = torch.tensor(0.5, requires_grad=True)
    proximal_penalty(params, anchor, lam).backward()
    assert all(a.grad is None for a in anchor)
    assert lam.grad is None
    assert all(p.grad is not None for p in params)


def test_inputs_unchanged() -> None:
    params, anchor = _theta()
    p0, a0 = [p.clone() for p in params], [a.clone() for a in anchor]
    proximal_penalty(params, anchor, 0.5)
    assert all(torch.equal(p, q) for p, q in zip(params, p0, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(anchor, a0, strict=True))


def test_sgd_step_on_a_module_moves_towards_the_snapshot() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    meta = copy.deepcopy(net)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)  # theta = theta_meta + 1 everywhere
    lam, lr = 0.4, 0.5
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    proximal_penalty(list(net.parameters()), list(meta.parameters()), lam).backward()
    opt.step()
    for p, m in zip(net.parameters(), meta.parameters(), strict=True):
        # theta - lr * lam * (theta - theta_meta) = theta_meta + 1 - 0.2.
        assert_close(p.detach(), m.detach() + 0.8)
        assert m.grad is None


def test_lambda_from_ess_pipeline() -> None:
    params, anchor = _theta()
    beta = torch.tensor([1.0, 0.0, 0.0, 0.0])  # ESS = 1/4, lambda = 3/4
    lam = prox_coef(effective_sample_size(beta))
    assert_close(proximal_penalty(params, anchor, lam), torch.tensor(0.375 * 9.0))


def test_float64_and_validation() -> None:
    params = [torch.tensor([1.0], dtype=torch.float64)]
    anchor = [torch.tensor([0.5], dtype=torch.float64)]
    out = proximal_penalty(params, anchor, 2.0)
    assert out.dtype == torch.float64 and out.item() == 0.25
    with pytest.raises(ValueError, match="2 params but 1 anchor"):
        proximal_penalty(params * 2, anchor, 0.1)
    with pytest.raises(ValueError, match="shape"):
        proximal_penalty([torch.zeros(2)], [torch.zeros(3)], 0.1)
    with pytest.raises(ValueError, match=">= 0"):
        proximal_penalty(params, anchor, -0.1)
    with pytest.raises(ValueError, match="scalar"):
        proximal_penalty(params, anchor, torch.tensor([0.1, 0.2]))
