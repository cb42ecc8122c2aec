"""MQLAdapt (MQL §3.2): it moves an adapted copy, never its source, and each ablation switch
changes what adaptation does."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from metarl.methods.mql import MQLAdapt, evaluate_task


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def trained():
    from tests.conftest import cli_model

    model = cli_model("--config", "point_robot.yaml", "--config", "debug.yaml").model
    model.rollouts.sampler.mode = "cycle"
    for _ in range(5):  # a little data on every task region that gets drawn
        model._store(model.rollouts.collect(100, "random"))
    return model


_EPISODES: dict[int, object] = {}


def _adapt(model, **changes):
    """Adapt a fresh copy on the same new-task episode every time (the eval env's RNG moves on)."""
    if id(model) not in _EPISODES:
        model.eval_rollouts.policy.use(model.actor, model.actor_encoder)
        _EPISODES[id(model)] = model.eval_rollouts.run_episode(0)
    settings = dataclasses.replace(model.adapt_cfg, **changes)
    adapter = MQLAdapt(model, settings, seed=0)
    stats = adapter.adapt(_EPISODES[id(model)])
    return adapter, stats


def test_adapt_moves_the_copy_and_never_the_source(trained) -> None:
    before = _state(trained)
    adapter, stats = _adapt(trained)
    after = _state(trained)
    assert all(torch.equal(before[k], after[k]) for k in before), "adaptation changed its source module"
    moved = [n for n, p in adapter.actor.named_parameters() if not torch.equal(p, trained.actor.get_parameter(n))]
    assert moved, "the adapted actor did not move"
    assert 0.0 <= stats.ess <= 1.0 and 0.0 <= stats.lambda_ <= 1.0
    assert 0.0 <= stats.classifier_acc <= 1.0
    assert stats.n_new == trained.family.max_episode_steps


def test_lambda_is_one_minus_ess_or_fixed(trained) -> None:
    _, ess_stats = _adapt(trained, old_data_updates=0)
    assert ess_stats.lambda_ == pytest.approx(1 - ess_stats.ess, abs=1e-6)
    _, fixed = _adapt(trained, lambda_mode="fixed", fixed_lambda=0.1)
    assert all(lam == 0.1 for lam in fixed.lambdas)


def _actor_after(trained, **changes) -> list[torch.Tensor]:
    adapter, _ = _adapt(trained, **changes)
    return [p.detach().clone() for p in adapter.actor.parameters()]


@pytest.mark.parametrize(
    "changes",
    [
        {"old_data_updates": 0},  # eq. 19 off
        {"lambda_mode": "fixed", "fixed_lambda": 0.1},  # the released code's constant lambda
        {"classifier_features": "obs_z"},  # classifier on [o, z]
        {"prox_half": False},  # the released code's proximal term without 1/2
    ],
)
def test_each_ablation_changes_the_result(trained, changes) -> None:
    base = _actor_after(trained)
    ablated = _actor_after(trained, **changes)
    assert any(not torch.equal(a, b) for a, b in zip(base, ablated, strict=True)), f"{changes} changed nothing"


def test_same_seed_same_adaptation(trained) -> None:
    a = _actor_after(trained)
    b = _actor_after(trained)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_adaptation_off_is_td3_context(trained) -> None:
    before = _state(trained)
    result = evaluate_task(trained, 0, adapt=False)
    assert result.stats is None and result.return_post == result.return_pre
    result = evaluate_task(trained, 0, adapt=True)
    assert result.stats is not None
    after = _state(trained)
    assert all(torch.equal(before[k], after[k]) for k in before)
