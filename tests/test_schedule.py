"""The run's schedule: evaluations land exactly on the multiples of ``eval.every_env_steps``, one
before any update (env step 0), and the run stops exactly at its budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarl.training.schedule import EpochPlan
from tests.resume_support import counters, load, metrics, straight_run  # noqa: F401


def test_evaluations_at_step_0_and_every_multiple_and_the_budget_is_exact(straight_run: Path) -> None:  # noqa: F811
    rows = metrics(straight_run)
    evals = [float(r["eval/env_steps"]) for r in rows if r["eval/env_steps"]]
    assert evals == [0.0, 200.0, 400.0]
    step0 = next(r for r in rows if r["eval/env_steps"] == "0.0")
    assert step0["eval/return_pre_adapt"] and step0["eval/return_pre_adapt"] == step0["eval/return_post_adapt"]
    assert counters(load(straight_run / "ckpt" / "last.ckpt"))["env_steps"] == 400
    assert max(float(r["train/env_steps"]) for r in rows if r["train/env_steps"]) == 400


@pytest.mark.parametrize(("every", "budget", "sizes", "ends"), [
    (10_000, 50_000, [200], [10_000, 20_000, 30_000, 40_000, 50_000]),  # Cheetah-FB: 200-step iterations
    (300, 1_000, [250], [500, 750, 1_000]),  # iterations that straddle the multiples: the first boundary after
    (1_000, 2_500, [2_000, 500], [2_000, 2_500]),  # a large first iteration (PEARL's initial collection)
])
def test_epoch_plan_ends_on_the_first_iteration_boundary_at_or_after_each_multiple(
    every: int, budget: int, sizes: list[int], ends: list[int]
) -> None:
    def size(env_steps: int) -> int:
        return sizes[0] if env_steps == 0 else sizes[-1]

    plan, env_steps, seen = EpochPlan(every, budget, size), 0, []
    while not plan.budget_reached:
        plan.start(env_steps)
        while plan.next():
            env_steps += size(env_steps)  # the iteration runs
        if env_steps not in seen and env_steps > 0:
            seen.append(env_steps)
    assert seen == ends


def test_a_resumed_plan_decides_what_the_stopped_one_had_decided() -> None:
    plan = EpochPlan(1_000, 5_000, lambda _: 200)
    plan.start(600)
    assert [plan.next() for _ in range(3)] == [True, True, False]  # 600 -> 800 -> 1000, then validation
    resumed = EpochPlan(1_000, 5_000, lambda _: 200)
    resumed.start(800)  # a checkpoint after the iteration that reached 800
    assert [resumed.next(), resumed.next()] == [True, False]
