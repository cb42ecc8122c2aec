"""MAML's inner step and meta-gradient (metarl.algorithms.maml): the inner step equals torch's SGD,
the second-order meta-gradient matches central finite differences, and first order equals the same
gradient with the Hessian term dropped (both against explicit computations, in float64)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from torch.testing import assert_close

from metarl.algorithms.maml import adapt, batched_meta_loss, functional_model, inner_update, meta_gradient, meta_loss

ALPHA = 0.3


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()


def _batch(seed: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=torch.float64), torch.randn(n, 1, generator=g, dtype=torch.float64)


def mse(model: Callable[..., torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return (model(x) - y).square().mean()


INNER, OUTER = _batch(1), _batch(2)


def test_inner_step_equals_torch_sgd_and_leaves_the_module_untouched() -> None:
    net = _net()
    before = copy.deepcopy(net.state_dict())
    phi = inner_update(net, dict(net.named_parameters()), mse, INNER, lr=ALPHA, first_order=True)
    ref = copy.deepcopy(net)
    opt = torch.optim.SGD(ref.parameters(), lr=ALPHA)
    mse(ref, INNER).backward()
    opt.step()
    for name, p in ref.named_parameters():
        assert_close(phi[name], p.detach())
    for name, t in net.state_dict().items():
        assert torch.equal(t, before[name])  # theta is not mutated: phi is a new dict


def test_adapt_takes_one_step_per_batch_and_none_means_theta() -> None:
    net = _net()
    theta = dict(net.named_parameters())
    assert adapt(net, theta, mse, [], ALPHA) == theta
    two = adapt(net, theta, mse, [INNER, OUTER], ALPHA)
    by_hand = inner_update(net, inner_update(net, theta, mse, INNER, ALPHA), mse, OUTER, ALPHA)
    for name in theta:
        assert_close(two[name], by_hand[name])


def _objective(net: nn.Module, flat: torch.Tensor) -> torch.Tensor:
    """F(theta) = L_out(theta - alpha grad L_in(theta)), theta given flat."""
    probe = copy.deepcopy(net)
    vector_to_parameters(flat, probe.parameters())
    with torch.enable_grad():
        theta = dict(probe.named_parameters())
        phi = inner_update(probe, theta, mse, INNER, ALPHA, first_order=False)
        return mse(functional_model(probe, phi), OUTER).detach()


def test_second_order_meta_gradient_matches_central_finite_differences() -> None:
    net = _net()
    grads, loss = meta_gradient(net, dict(net.named_parameters()), mse, mse, [([INNER], OUTER)], ALPHA)
    flat = parameters_to_vector(net.parameters()).detach()
    assert_close(loss, _objective(net, flat))
    eps = 1e-6
    fd = torch.stack([
        (_objective(net, flat + eps * e) - _objective(net, flat - eps * e)) / (2 * eps)
        for e in torch.eye(flat.numel(), dtype=torch.float64)
    ])
    assert_close(parameters_to_vector(grads.values()), fd, rtol=1e-6, atol=1e-8)


def _explicit_terms(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """grad L_out at phi, and the Hessian of L_in at theta, from flat vectors (no torch.func)."""
    flat = parameters_to_vector(net.parameters()).detach()
    shapes = {n: p.shape for n, p in net.named_parameters()}

    def as_dict(f: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for n, s in shapes.items():
            out[n] = f[i:i + s.numel()].view(s)
            i += s.numel()
        return out

    def loss_at(f: torch.Tensor, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return mse(lambda x: torch.func.functional_call(net, as_dict(f), (x,)), batch)

    g_in = torch.autograd.functional.jacobian(lambda f: loss_at(f, INNER), flat)
    phi = flat - ALPHA * g_in
    g_out = torch.autograd.functional.jacobian(lambda f: loss_at(f, OUTER), phi)
    h_in = torch.autograd.functional.hessian(lambda f: loss_at(f, INNER), flat)
    return g_out, h_in


def test_first_order_drops_exactly_the_hessian_term() -> None:
    net = _net()
    g_out, h_in = _explicit_terms(net)
    theta = dict(net.named_parameters())
    first, _ = meta_gradient(net, theta, mse, mse, [([INNER], OUTER)], ALPHA, first_order=True)
    second, _ = meta_gradient(net, theta, mse, mse, [([INNER], OUTER)], ALPHA, first_order=False)
    assert_close(parameters_to_vector(first.values()), g_out)  # grad L_out(phi), no Hessian term
    eye = torch.eye(g_out.numel(), dtype=torch.float64)
    assert_close(parameters_to_vector(second.values()), (eye - ALPHA * h_in) @ g_out)
    assert (parameters_to_vector(first.values()) - parameters_to_vector(second.values())).abs().max() > 1e-4


def test_meta_loss_averages_tasks_and_first_order_phi_has_no_graph_through_the_gradient() -> None:
    net = _net()
    theta = dict(net.named_parameters())
    both = meta_loss(net, theta, mse, mse, [([INNER], OUTER), ([OUTER], INNER)], ALPHA)
    one = meta_loss(net, theta, mse, mse, [([INNER], OUTER)], ALPHA)
    two = meta_loss(net, theta, mse, mse, [([OUTER], INNER)], ALPHA)
    assert_close(both, (one + two) / 2)
    phi = inner_update(net, theta, mse, INNER, ALPHA, first_order=True)
    # d phi / d theta = I: the gradient of sum(phi) w.r.t. each parameter is all ones.
    g = torch.autograd.grad(sum(v.sum() for v in phi.values()), list(theta.values()))
    assert all(torch.equal(x, torch.ones_like(x)) for x in g)


@pytest.mark.parametrize("first_order", [False, True])
def test_the_batched_meta_loss_equals_the_loop_over_tasks_in_value_and_gradient(first_order: bool) -> None:
    net = _net()
    theta = dict(net.named_parameters())
    inner = [_batch(s) for s in (1, 3, 5)]
    outer = [_batch(s) for s in (2, 4, 6)]
    loop = meta_loss(net, theta, mse, mse, [([i], o) for i, o in zip(inner, outer, strict=True)], ALPHA, first_order)
    stack = lambda batches: tuple(torch.stack(t) for t in zip(*batches, strict=True))  # noqa: E731
    batched = batched_meta_loss(net, theta, mse, mse, stack(inner), stack(outer), ALPHA, first_order)
    assert_close(batched, loop)
    for g, h in zip(torch.autograd.grad(batched, list(theta.values())), torch.autograd.grad(loop, list(theta.values())),
                    strict=True):
        assert_close(g, h)


def test_bad_inputs_raise_one_line_errors() -> None:
    net = _net()
    theta = dict(net.named_parameters())
    with pytest.raises(ValueError, match="lr must be > 0"):
        inner_update(net, theta, mse, INNER, lr=0.0)
    with pytest.raises(ValueError, match="must return a scalar"):
        inner_update(net, theta, lambda model, b: model(b[0]), INNER, lr=0.1)
    with pytest.raises(ValueError, match="tasks must not be empty"):
        meta_loss(net, theta, mse, mse, [], ALPHA)
