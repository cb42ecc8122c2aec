"""TRPO pieces of metarl.algorithms.trpo: CG against a direct solve, the Fisher-vector product against
the explicit Hessian of the KL, the step scale against its closed form, and the line search's trust
region (it never accepts a KL over the limit, and keeps the old parameters when nothing is acceptable)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.utils import parameters_to_vector
from torch.testing import assert_close

from metarl.algorithms.onpolicy import gaussian_kl, likelihood_ratio_surrogate
from metarl.algorithms.trpo import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    fvp_operator,
    trpo_direction,
    trpo_step_scale,
    unflatten_like,
)

OBS, ACT, BATCH = 3, 2, 16


def _spd(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    return m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64)


def test_conjugate_gradient_solves_a_random_spd_system() -> None:
    a = _spd(6, 0)
    b = torch.randn(6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # CG is exact after n iterations in exact arithmetic; float64 gets within round-off.
    x = conjugate_gradient(lambda v: a @ v, b, iters=6, residual_tol=1e-20)
    assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-8)


def test_conjugate_gradient_stops_at_the_tolerance_and_on_identity_in_one_step() -> None:
    b = torch.tensor([3.0, -4.0], dtype=torch.float64)
    calls = []

    def identity(v: torch.Tensor) -> torch.Tensor:
        calls.append(v)
        return v

    assert_close(conjugate_gradient(identity, b, iters=10), b)
    assert len(calls) == 1  # the residual is 0 after one step: no further product is asked for


# --- a tiny Gaussian policy: mean = W o + c, state-independent log std -------------------------


def _policy_params(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(ACT, OBS, generator=g, dtype=torch.float64) * 0.5,
            "c": torch.randn(ACT, generator=g, dtype=torch.float64) * 0.1,
            "log_std": torch.randn(ACT, generator=g, dtype=torch.float64) * 0.2}


OBS_BATCH = torch.randn(BATCH, OBS, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


def _mean_kl(p: dict[str, torch.Tensor], old: dict[str, torch.Tensor]) -> torch.Tensor:
    mean_old = OBS_BATCH @ old["w"].T + old["c"]
    mean_new = OBS_BATCH @ p["w"].T + p["c"]
    return gaussian_kl(mean_old.detach(), old["log_std"].detach(), mean_new, p["log_std"]).mean()


def _explicit_hessian(p: dict[str, torch.Tensor], old: dict[str, torch.Tensor]) -> torch.Tensor:
    flat = parameters_to_vector(p.values()).detach()
    return torch.autograd.functional.hessian(lambda f: _mean_kl(unflatten_like(f, p), old), flat)


@pytest.mark.parametrize("at_old", [True, False], ids=["at_theta_old", "away_from_theta_old"])
def test_fisher_vector_product_equals_explicit_hessian_of_the_kl(at_old: bool) -> None:
    old = _policy_params(0)
    p = {k: (v if at_old else v + 0.3).clone().requires_grad_(True) for k, v in old.items()}
    v = torch.randn(sum(t.numel() for t in p.values()), generator=torch.Generator().manual_seed(3),
                    dtype=torch.float64)
    hess = _explicit_hessian(p, old)
    damping = 1e-3
    fvp = fisher_vector_product(_mean_kl(p, old), list(p.values()), v, damping)
    assert_close(fvp, hess @ v + damping * v, rtol=1e-10, atol=1e-12)
    if at_old:
        # At theta_old the KL's Hessian is the Fisher information: symmetric positive semi-definite.
        assert torch.linalg.eigvalsh(hess).min() > -1e-10


def test_step_scale_closed_form_and_quadratic_kl_model_at_the_limit() -> None:
    s = torch.tensor([1.0, 2.0], dtype=torch.float64)
    hs = torch.tensor([2.0, 1.0], dtype=torch.float64)
    assert_close(trpo_step_scale(s, hs, max_kl=0.02), torch.tensor(math.sqrt(0.04 / 4.0), dtype=torch.float64))
    # The full TRPO step's quadratic KL model 0.5 x^T H x equals max_kl.
    old = _policy_params(1)
    p = {k: v.clone().requires_grad_(True) for k, v in old.items()}
    loss = -(OBS_BATCH @ p["w"].T + p["c"]).sum() * 0.01 + p["log_std"].sum() * 0.01
    kl = _mean_kl(p, old)
    step = trpo_direction(loss, kl, list(p.values()), max_kl=0.01, damping=0.0, cg_iters=20)
    h = _explicit_hessian(p, old)
    assert_close(0.5 * step @ h @ step, torch.tensor(0.01, dtype=torch.float64), rtol=1e-6, atol=0.0)


def test_line_search_never_accepts_a_step_over_the_kl_limit() -> None:
    old = torch.zeros(2, dtype=torch.float64)
    full = torch.ones(2, dtype=torch.float64)
    seen: list[tuple[float, float]] = []

    def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, kl = -x.sum(), 0.5 * x.square().sum()  # every step improves; KL grows as f^2
        seen.append((float(loss), float(kl)))
        return loss, kl

    res = backtracking_line_search(evaluate, old, full, old_loss=0.0, max_kl=0.01, backtrack_ratio=0.8)
    # f^2 <= 0.01 first holds at f = 0.8^11 (0.8^10 = 0.107 > 0.1): the 12th try.
    assert res.accepted and res.tries == 12
    assert res.step_fraction == pytest.approx(0.8 ** 11)
    assert_close(res.params, old + 0.8 ** 11 * full)
    assert res.kl <= 0.01
    assert all(kl > 0.01 for _, kl in seen[:-1])  # every earlier (larger) step broke the trust region


def test_line_search_keeps_the_old_parameters_when_nothing_is_acceptable() -> None:
    old = torch.tensor([0.5, -1.0], dtype=torch.float64)
    full = torch.tensor([10.0, 10.0], dtype=torch.float64)
    calls = []

    def worse(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(x)
        return torch.tensor(1.0), torch.tensor(0.0)  # within the trust region, but never improves

    res = backtracking_line_search(worse, old, full, old_loss=1.0, max_kl=0.01)
    assert not res.accepted and res.step_fraction == 0.0 and len(calls) == 15
    assert torch.equal(res.params, old)

    def too_far(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return -x.sum(), torch.tensor(1e6)  # improves, but always breaks the KL limit

    res = backtracking_line_search(too_far, old, full, old_loss=0.0, max_kl=0.01, max_backtracks=4)
    assert not res.accepted and res.tries == 4 and torch.equal(res.params, old)

    def nan(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(float("nan")), torch.tensor(float("nan"))

    assert not backtracking_line_search(nan, old, full, old_loss=0.0, max_kl=0.01).accepted


def test_trpo_update_on_a_gaussian_policy_improves_within_the_trust_region() -> None:
    old = _policy_params(2)
    p = {k: v.clone().requires_grad_(True) for k, v in old.items()}
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        mean_old = OBS_BATCH @ old["w"].T + old["c"]
        actions = mean_old + torch.exp(old["log_std"]) * torch.randn(BATCH, ACT, generator=g, dtype=torch.float64)
    adv = torch.randn(BATCH, 1, generator=g, dtype=torch.float64)

    def log_prob(q: dict[str, torch.Tensor]) -> torch.Tensor:
        dist = torch.distributions.Normal(OBS_BATCH @ q["w"].T + q["c"], torch.exp(q["log_std"]))
        return dist.log_prob(actions).sum(-1, keepdim=True)

    old_lp = log_prob(old).detach()
    loss = likelihood_ratio_surrogate(log_prob(p), old_lp, adv)
    step = trpo_direction(loss, _mean_kl(p, old), list(p.values()), max_kl=0.01)

    def evaluate(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = unflatten_like(flat, p)
        return likelihood_ratio_surrogate(log_prob(q), old_lp, adv), _mean_kl(q, old)

    res = backtracking_line_search(evaluate, parameters_to_vector(p.values()), step, loss, max_kl=0.01)
    assert res.accepted and res.loss < float(loss.detach()) and res.kl <= 0.01


def test_fvp_operator_and_bad_inputs_raise_one_line_errors() -> None:
    old = _policy_params(0)
    p = {k: v.clone().requires_grad_(True) for k, v in old.items()}
    fvp = fvp_operator(_mean_kl(p, old), list(p.values()))
    with pytest.raises(ValueError, match="v must have shape"):
        fvp(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="damping must be >= 0"):
        fvp_operator(_mean_kl(p, old), list(p.values()), damping=-1.0)
    with pytest.raises(ValueError, match="max_kl must be > 0"):
        trpo_step_scale(torch.ones(2), torch.ones(2), 0.0)
    with pytest.raises(ValueError, match="s\\^T H s must be > 0"):
        trpo_step_scale(torch.ones(2), -torch.ones(2), 0.01)
    with pytest.raises(ValueError, match="backtrack_ratio"):
        backtracking_line_search(lambda x: (x.sum(), x.sum()), torch.zeros(2), torch.ones(2), 0.0, 0.01, 1.0)
    with pytest.raises(ValueError, match="iters must be >= 1"):
        conjugate_gradient(lambda v: v, torch.ones(2), iters=0)
    with pytest.raises(ValueError, match="flat must be a vector of 10"):
        unflatten_like(torch.zeros(3), p)
