"""The cold start visits the train tasks in order, one episode each per pass (the released MQL code:
one random episode of at most max_path_length / 4 steps per train task, in task order, until
max(num_initial_steps x n_train_tasks, burn_in) steps), so every task gets the same share of the
cold-start episodes, to within one.

The share test runs the batched cold start MQLMetaTrain uses (metarl.data.cold_start). With the
single-env collector, a batch that ends on an episode's last step is followed by the collector's
auto-reset and then by the next batch's own reset; the first of the two starts no episode and must not
use up a slot of the task cycle (it did: with cheetah-vel's settings, train tasks 4, 9, ..., 99 got no
cold-start data at all). The give-back tests below keep that path right (the other methods use it).
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import yaml

from metarl import keys
from metarl.data.cold_start import ColdStartRollouts, cold_start_plan
from metarl.data.policy import ActingPolicy
from metarl.data.rollouts import Rollouts, episode_returns
from metarl.data.tasks import TaskSampler
from metarl.envs import make_task_family
from metarl.nets import Actor, ContextEncoder
from metarl.training.settings import EvalSettings
from tests.conftest import CONFIGS

#: The MQL configs (the cold start is MQL's).
EXPERIMENTS = sorted(p.name for p in CONFIGS.glob("*.yaml")
                     if yaml.safe_load(p.read_text()).get("model", {}).get("class_path", "").endswith("MQLMetaTrain"))
#: Steps per config at most: the real cold starts are 2 000 to 225 000.
MAX_STEPS = 6000
#: Episodes per iteration (collect.cold_start_envs): fewer than a run's, so two iterations stay short.
ENVS = 16


def _rollouts(family, seed: int = 0) -> Rollouts:
    # Random actions never run the nets: tiny ones, and a one-step history (sizes that do not matter).
    encoder = ContextEncoder(family.obs_dim, family.act_dim, 4)
    actor = Actor(family.obs_dim, family.act_dim, 4, hidden_sizes=(4,))
    policy = ActingPolicy(actor, encoder, family.act_dim, 0.1, torch.Generator().manual_seed(seed))
    return Rollouts(family, family.train_tasks, policy, history_len=1, seed=seed)


def _cold_start(name: str) -> tuple[list[int], int, int, int]:
    """The cold start of a shipped config through the path MQLMetaTrain runs (``cold_start_plan`` and
    ``ColdStartRollouts``), with the config's own task count, episode length, cold-start cap,
    cold_start_steps, episodes_per_iter and evaluation period, in iterations of at most ``ENVS``
    episodes (the data do not depend on it: tests/test_cold_start_batched.py).

    The full budget (up to 225 000 steps) is too long for a test. Iterations stop at the real budget,
    or once every train task has had an episode and one more iteration has run, or after MAX_STEPS
    (but never before two iterations: a skipped slot would show at the boundary between them). All
    but ant_goal (150 tasks) make a whole pass over their tasks within MAX_STEPS. Returns the task of
    every cold-start episode in order, the number of train tasks, the steps run and the config's
    cold_start_steps.
    """
    init = yaml.safe_load((CONFIGS / name).read_text())["model"]["init_args"]
    collect = init["collect"]
    every = (init.get("eval") or {}).get("every_env_steps", EvalSettings.every_env_steps)
    family = make_task_family(init["family"], **(init.get("family_overrides") or {}))
    n_tasks, horizon = len(family.train_tasks), family.max_episode_steps
    budget = collect["cold_start_steps"]
    cap = min(collect.get("cold_start_episode_len") or horizon, horizon)
    sampler = TaskSampler(n_tasks, 0)
    sampler.mode = "cycle"
    cold = ColdStartRollouts(family, family.train_tasks, sampler, torch.Generator().manual_seed(0), 0, cap, ENVS)
    tasks: list[int] = []
    steps = rounds = 0
    passed = False
    while steps < budget:
        stop = (steps // every + 1) * every
        plan = cold_start_plan(steps, budget, collect["episodes_per_iter"] * horizon, cap, stop, ENVS)
        batch = cold.collect(plan, len(tasks))
        assert batch.shape[0] == sum(plan)
        assert int(batch[keys.STEP_COUNT].max()) < cap  # no cold-start episode runs past the cap
        steps, rounds = steps + batch.shape[0], rounds + 1
        tasks += [task for task, _, _ in episode_returns(batch)]
        if rounds >= 2 and (passed or steps >= MAX_STEPS):
            break
        passed = len(tasks) >= n_tasks
    cold.close()
    return tasks, n_tasks, steps, budget


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_cold_start_gives_every_train_task_the_same_share_of_episodes(name: str) -> None:
    tasks, n_tasks, steps, budget = _cold_start(name)
    if name != "ant_goal.yaml":
        assert len(tasks) > n_tasks or steps == budget, "the test must cover a whole pass over the tasks"
    # In task order, one slot of the cycle per episode (a cut episode too), no slot skipped ...
    assert tasks == [k % n_tasks for k in range(len(tasks))], f"{name}: cold-start tasks skip slots of the cycle"
    # ... so at any cut-off, the real cold_start_steps included, the shares differ by at most one episode.
    counts = Counter(tasks)
    shares = [counts[t] for t in range(n_tasks)]
    assert max(shares) - min(shares) <= 1, f"{name}: cold-start episodes per task range {min(shares)}..{max(shares)}"


def test_a_reset_that_starts_no_episode_gives_its_task_back_and_resumes_exactly() -> None:
    """Point robot (80 tasks, 20-step episodes): rounds of 5 episodes end on an episode's last step,
    so each is followed by a reset that starts no episode. The cycle continues where it stopped, and
    the sampler's state alone (what a checkpoint holds) resumes it exactly."""
    family = make_task_family("point-robot")
    a = _rollouts(family)
    a.sampler.mode = "cycle"
    first = [t for t, _, _ in episode_returns(a.collect(100, "random"))]
    state, policy_state = a.state_dict(), a.policy.state_dict()
    second = a.collect(100, "random")
    assert first + [t for t, _, _ in episode_returns(second)] == list(range(10))
    b = _rollouts(family, seed=1)
    b.load_state_dict(state)
    b.policy.load_state_dict(policy_state)
    b.sampler.mode = "cycle"
    again = b.collect(100, "random")
    assert torch.equal(again[keys.TASK_ID], second[keys.TASK_ID])
    assert torch.equal(again[keys.OBS], second[keys.OBS])
    assert torch.equal(again[keys.ACTION], second[keys.ACTION])


def test_task_sampler_give_back() -> None:
    s = TaskSampler(3, seed=0)
    s.mode = "cycle"
    assert [s(), s()] == [0, 1]
    s.give_back()
    s.give_back()  # only the last draw is given back
    assert [s(), s(), s()] == [1, 2, 0]
    u = TaskSampler(1000, seed=0)
    draws = [u(), u()]
    u.give_back()
    assert u() == draws[1]
    reference = TaskSampler(1000, seed=0)
    assert [reference() for _ in range(3)] == [*draws, u()]
    u.fixed = 7
    before = u.state_dict()
    assert u() == 7
    u.give_back()  # a fixed task used nothing up
    assert torch.equal(u.state_dict()["generator"], before["generator"])
