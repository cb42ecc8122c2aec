"""The batched cold start (metarl.data.cold_start) stores what the single-env cold start stored.

The reference is the single-env path as MQL ran it before (``Rollouts.collect(frames, "random",
episode_cap)`` in rounds of ``min(budget - s, episodes_per_iter x max_episode_steps)`` frames, each
episode written with ``episode_to_replay``). With the same seed the two give the same task cycle,
episode cuts, actions, flags, step counts, episode ids and stored keys while no episode ends before
the cap; only each episode's reset noise is drawn differently (docs/fidelity.md), so on the sparse point
robot, which always starts at the origin, the stored data are bit-identical. Where episodes end early
(ant-fb), each takes ``cap`` action draws: the cuts then follow other random draws, and the task cycle
and the way the rounds are filled are checked instead.
"""

from __future__ import annotations

import pytest
import torch

from metarl import keys
from metarl.data.cold_start import ColdStartRollouts, cold_start_plan
from metarl.data.policy import ActingPolicy
from metarl.data.replay import MultiTaskReplay, episode_to_replay
from metarl.data.rollouts import Rollouts, split_episodes
from metarl.data.tasks import TaskSampler
from metarl.data.transitions import batch_to_replay
from metarl.envs import make_task_family
from metarl.nets import Actor, ContextEncoder

SEED = 3
#: Observation-dependent keys: they differ where the reset noise does.
FROM_STATE = {keys.OBS, keys.NEXT_OBS, keys.REWARD}


def _replay(family) -> MultiTaskReplay:
    return MultiTaskReplay(len(family.train_tasks), 1000, family.obs_dim, family.act_dim, 2)


def single_env_cold_start(family, budget: int, round_frames: int, cap: int):
    """The pre-batching path (meta_train.py before this module), step by step through one env."""
    encoder = ContextEncoder(family.obs_dim, family.act_dim, 4)
    actor = Actor(family.obs_dim, family.act_dim, 4, hidden_sizes=(4,))
    policy = ActingPolicy(actor, encoder, family.act_dim, 0.1, torch.Generator().manual_seed(SEED + 3))
    ro = Rollouts(family, family.train_tasks, policy, history_len=1, seed=SEED)
    ro.sampler.mode = "cycle"
    replay, steps, n_episodes = _replay(family), 0, 0
    while steps < budget:
        batch = ro.collect(min(budget - steps, round_frames), "random", episode_cap=cap)
        for ep in split_episodes(batch):
            replay.extend(episode_to_replay(ep, int(ep[keys.TASK_ID][0]), n_episodes))
            n_episodes += 1
        steps += batch.shape[0]
    return replay, policy.generator.get_state()


def batched_cold_start(family, budget: int, round_frames: int, cap: int, max_episodes: int, every: int | None = None):
    """The batched path as MQLMetaTrain runs it: one iteration per plan, one replay write per iteration."""
    sampler, generator = TaskSampler(len(family.train_tasks), SEED), torch.Generator().manual_seed(SEED + 3)
    sampler.mode = "cycle"
    cold = ColdStartRollouts(family, family.train_tasks, sampler, generator, SEED, cap, max_episodes)
    replay, steps, n_episodes, iterations = _replay(family), 0, 0, []
    while steps < budget:
        stop = budget if every is None else (steps // every + 1) * every  # the next evaluation
        plan = cold_start_plan(steps, budget, round_frames, cap, stop, max_episodes)
        batch = cold.collect(plan, n_episodes)
        assert_fills_rounds(batch, plan, cap)
        assert batch.shape[0] == sum(plan)
        transitions = batch_to_replay(batch, n_episodes)
        replay.extend(transitions)
        n_episodes = int(transitions[keys.EPISODE][-1]) + 1
        steps += batch.shape[0]
        iterations.append(plan)
    cold.close()
    return replay, generator.get_state(), iterations


def assert_same_data(a: MultiTaskReplay, b: MultiTaskReplay, except_keys=frozenset()) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert torch.equal(sa["size"], sb["size"]) and torch.equal(sa["cursor"], sb["cursor"])
    flat_a, flat_b = dict(_flatten(sa["data"])), dict(_flatten(sb["data"]))
    assert flat_a.keys() == flat_b.keys() == set(keys.STORED_KEYS)
    for key in flat_a:
        if key in except_keys:
            continue
        assert flat_a[key].dtype == flat_b[key].dtype and torch.equal(flat_a[key], flat_b[key]), key


def _flatten(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, (*prefix, k))
        else:
            yield ((*prefix, k) if prefix else k), v


def round_lengths(frames: int, cap: int) -> list[int]:
    return [cap] * (frames // cap) + ([frames % cap] if frames % cap else [])


def assert_fills_rounds(batch, rounds, cap) -> None:
    """Each round is filled by whole episodes in order (cut at the cap or their end), the last one cut at
    the round's end; a new round starts a new episode."""
    step = batch[keys.STEP_COUNT].reshape(-1)
    done = batch[keys.DONE].reshape(-1)
    start = 0
    for frames in rounds:
        s, d = step[start : start + frames], done[start : start + frames]
        assert int(s[0]) == 0 and bool((s < cap).all())
        after_end = torch.cat([torch.tensor([True]), d[:-1]])  # a new episode exactly after each end
        assert torch.equal(s == 0, after_end)
        ones = s[1:] - s[:-1]
        assert bool(((ones == 1) | (s[1:] == 0)).all())
        start += frames
    assert start == batch.shape[0]


def test_plan_runs_the_single_env_rounds() -> None:
    # cheetah_fb: rounds of 200 steps (4 episodes); 200 episodes split evenly into 2 iterations.
    assert cold_start_plan(0, 10_000, 200, 50, 10_000, 128) == [200] * 25
    assert cold_start_plan(5000, 10_000, 200, 50, 10_000, 128) == [200] * 25
    # A ragged budget: the last round is 130 steps; an evaluation at 400 ends the first iteration.
    assert cold_start_plan(0, 530, 200, 50, 400, 128) == [200, 200]
    assert cold_start_plan(400, 530, 200, 50, 800, 128) == [130]
    # At least one whole round, whatever max_episodes says.
    assert cold_start_plan(0, 1000, 200, 50, 1000, 1) == [200]
    # Every plan starting where the previous ended covers the budget exactly, in the same rounds.
    steps, rounds = 0, []
    while steps < 2345:
        plan = cold_start_plan(steps, 2345, 300, 70, (steps // 1000 + 1) * 1000, 9)
        assert sum(len(round_lengths(f, 70)) for f in plan) <= 9 or len(plan) == 1
        rounds += plan
        steps += sum(plan)
    assert steps == 2345 and rounds == [300] * 7 + [245]


def test_uniform_draws_do_not_depend_on_how_they_are_chunked() -> None:
    from metarl.data.policy import uniform_actions

    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    one_by_one = torch.stack([uniform_actions((8,), g1) for _ in range(3000)])
    assert torch.equal(one_by_one, torch.cat([uniform_actions((n, 8), g2) for n in (1, 999, 2000)]))
    assert torch.equal(g1.get_state(), g2.get_state())


@pytest.mark.parametrize(("name", "budget", "round_frames", "cap", "max_episodes"), [
    ("sparse-point-robot", 400, 100, 20, 7),
    ("point-robot", 400, 100, 20, 128),
    ("cheetah-fb", 450, 200, 50, 3),  # 3 envs for rounds of 4 episodes, a ragged last round of 50
])
def test_batched_cold_start_stores_the_single_env_data(name, budget, round_frames, cap, max_episodes) -> None:
    family = make_task_family(name)
    old, old_gen = single_env_cold_start(family, budget, round_frames, cap)
    new, new_gen, _ = batched_cold_start(family, budget, round_frames, cap, max_episodes)
    # The reset noise is drawn per episode now; the sparse point robot has none (it starts at the origin).
    assert_same_data(old, new, except_keys=frozenset() if name == "sparse-point-robot" else FROM_STATE)
    assert torch.equal(old_gen, new_gen)  # the same actions drawn: the generator leaves in the same state
    if name == "point-robot":  # the same dynamics from another start: o' - o = clip(a) x 0.1
        so, sn = old.state_dict()["data"], new.state_dict()["data"]
        moved_old = so["next"]["observation"] - so["observation"]
        moved_new = sn["next"]["observation"] - sn["observation"]
        assert torch.allclose(moved_old, moved_new, atol=1e-5)
        assert not torch.equal(so["observation"], sn["observation"])


def test_early_ends_are_followed_by_the_next_task_of_the_cycle() -> None:
    """Ant-FB ends about a third of its random episodes early (the torso leaves [0.2, 1]): the rounds are
    still filled in order with the episodes of the cycle, and the data do not depend on how many
    episodes run together."""
    family = make_task_family("ant-fb")
    reference, gen, _ = batched_cold_start(family, 1000, 500, 50, 64)
    state = reference.state_dict()
    episode, step = state["data"]["episode"], state["data"]["step_count"]
    task, terminated = state["data"]["task_id"], state["data"]["next"]["terminated"].reshape(-1)
    assert bool(terminated.any())  # the test needs early ends
    order = torch.argsort(episode, stable=True)
    first = order[step[order] == 0]  # each episode's first transition, in episode order
    assert task[first].tolist() == [k % 2 for k in range(first.numel())]
    assert episode[first].tolist() == list(range(first.numel()))
    other, other_gen, _ = batched_cold_start(family, 1000, 500, 50, 5)
    assert_same_data(reference, other)
    assert torch.equal(gen, other_gen)


def test_the_data_do_not_depend_on_how_many_episodes_run_together() -> None:
    family = make_task_family("point-robot")
    reference, gen, iterations = batched_cold_start(family, 600, 100, 20, 128)
    assert iterations == [[100] * 6]  # one iteration, 30 episodes together
    for max_episodes, every in ((1, None), (12, None), (128, 250)):
        other, other_gen, its = batched_cold_start(family, 600, 100, 20, max_episodes, every)
        assert len(its) > 1
        assert_same_data(reference, other)
        assert torch.equal(gen, other_gen)
