"""MultiTaskReplay: per-task rings, exact history windows, sampling, checkpoints, bad input.

Windows are checked against an independent oracle: a deque per task (maxlen = capacity) of the
(episode, step) pairs the ring should hold, and features that encode (task, episode, step).
"""

from __future__ import annotations

import io
from collections import deque

import pytest
import torch
from tensordict import TensorDict

from metarl import keys
from metarl.data.replay import MultiTaskReplay, episode_to_replay

OBS, ACT = 3, 2
D = ACT + 1 + OBS


def value(task: int, ep: int, step: int) -> float:
    return float(task * 1000 + ep * 50 + step)  # exact in float32 for the sizes used here


def feats(task: int, ep: int, step: int) -> torch.Tensor:
    """What a window step must hold for transition (task, ep, step): cat(a, r, o)."""
    v = value(task, ep, step)
    return torch.tensor([v + 0.5] * ACT + [v + 0.25] + [v + i / 8 for i in range(OBS)])


def make_episode(task: int, ep: int, n: int, start: int = 0) -> TensorDict:
    steps = torch.arange(start, start + n)
    v = torch.tensor([value(task, ep, int(s)) for s in steps])
    flags = torch.zeros(n, 1, dtype=torch.bool)
    return TensorDict(
        {
            keys.OBS: v[:, None] + torch.arange(OBS) / 8,
            keys.ACTION: (v[:, None] + 0.5).expand(n, ACT).clone(),
            keys.TASK_ID: torch.full((n,), task),
            keys.STEP_COUNT: steps,
            keys.EPISODE: torch.full((n,), ep),
            "next": {"observation": -v[:, None].expand(n, OBS).clone(), "reward": v[:, None] + 0.25,
                     "terminated": flags, "truncated": flags.clone(), "done": flags.clone()},
        },
        batch_size=[n],
    )


class Oracle:
    """What each task's ring holds, as (episode, step) in write order."""

    def __init__(self, n_tasks: int, cap: int) -> None:
        self.rings = [deque(maxlen=cap) for _ in range(n_tasks)]

    def extend(self, task: int, ep: int, n: int, start: int = 0) -> None:
        self.rings[task].extend((ep, s) for s in range(start, start + n))

    def windows(self, task: int, ep: int, step: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
        held = set(self.rings[task])
        rows = [feats(task, ep, k) if k >= 0 and (ep, k) in held else torch.zeros(D) for k in range(step - h, step)]
        hist = torch.stack(rows)
        return hist, torch.cat([hist[1:], feats(task, ep, step)[None]])


def fill(replay: MultiTaskReplay, oracle: Oracle, task: int, ep: int, n: int, start: int = 0) -> None:
    replay.extend(make_episode(task, ep, n, start))
    oracle.extend(task, ep, n, start)


def check_against_oracle(batch: TensorDict, oracle: Oracle, h: int) -> None:
    for i in range(batch.shape[0]):
        task, ep, step = (int(batch[k][i]) for k in (keys.TASK_ID, keys.EPISODE, keys.STEP_COUNT))
        assert (ep, step) in oracle.rings[task], "sampled a transition the ring no longer holds"
        hist, next_hist = oracle.windows(task, ep, step, h)
        assert torch.equal(batch[keys.HISTORY][i], hist), (task, ep, step)
        assert torch.equal(batch[keys.NEXT_HISTORY][i], next_hist), (task, ep, step)
        assert batch[keys.OBS][i, 0] == value(task, ep, step)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_windows_zero_padded_at_episode_start_and_never_leak() -> None:
    h = 4
    replay, oracle = MultiTaskReplay(1, 100, OBS, ACT, h), Oracle(1, 100)
    for ep, n in enumerate((3, 7, 5)):
        fill(replay, oracle, 0, ep, n)
    batch = replay.sample(600, gen())
    assert batch[keys.HISTORY].shape == (600, h, D) and batch[keys.NEXT_HISTORY].shape == (600, h, D)
    check_against_oracle(batch, oracle, h)
    first = batch[keys.STEP_COUNT] == 0
    assert first.any() and (batch[keys.HISTORY][first] == 0).all()
    assert (batch[keys.NEXT_HISTORY][first][:, :-1] == 0).all()


def test_ring_wraparound_and_partially_overwritten_episode() -> None:
    h, cap = 6, 10
    replay, oracle = MultiTaskReplay(1, cap, OBS, ACT, h), Oracle(1, cap)
    for ep, n in enumerate((5, 9, 8, 6, 7)):  # wraps the ring three times
        fill(replay, oracle, 0, ep, n)
    assert replay.size(0) == cap == len(replay)
    assert list(oracle.rings[0])[:3] == [(3, 3), (3, 4), (3, 5)]  # episode 3 lost steps 0-2 to episode 4
    batch = replay.sample(800, gen(1))
    check_against_oracle(batch, oracle, h)
    # The rows that held episode 3's steps 0-2 now hold episode 4: its windows must not show them.
    hist = batch[keys.HISTORY][batch[keys.EPISODE] == 3]
    obs0 = hist[..., ACT + 1]  # first obs component = value(task, ep, step)
    assert (obs0 != 0).any() and (((obs0 // 50) % 20)[obs0 != 0] == 3).all()
    assert ((obs0 % 50)[obs0 != 0] >= 3).all()


def test_write_longer_than_ring_and_chunked_writes() -> None:
    h, cap = 5, 10
    replay, oracle = MultiTaskReplay(1, cap, OBS, ACT, h), Oracle(1, cap)
    fill(replay, oracle, 0, 0, 25)  # one write longer than the ring
    fill(replay, oracle, 0, 1, 3)
    fill(replay, oracle, 0, 1, 4, start=3)  # the same episode continued in a second call
    assert replay.size() == cap
    check_against_oracle(replay.sample(400, gen(2)), oracle, h)


def test_per_task_regions_tasks_restriction_and_pooled_weighting() -> None:
    h = 3
    replay, oracle = MultiTaskReplay(3, 40, OBS, ACT, h), Oracle(3, 40)
    fill(replay, oracle, 0, 0, 30)
    fill(replay, oracle, 1, 1, 10)
    before = replay.sample(50, gen(3), tasks=[0])
    fill(replay, oracle, 1, 2, 5)
    assert torch.equal(replay.sample(50, gen(3), tasks=[0])[keys.HISTORY], before[keys.HISTORY])
    assert (replay.size(0), replay.size(1), replay.size(2)) == (30, 15, 0)
    batch = replay.sample(9000, gen(4))
    check_against_oracle(batch[:500], oracle, h)
    share = (batch[keys.TASK_ID] == 0).float().mean().item()
    assert abs(share - 30 / 45) < 0.02  # uniform over the pooled transitions, not over tasks
    only1 = replay.sample(300, gen(5), tasks=torch.tensor([1, 2]))
    assert (only1[keys.TASK_ID] == 1).all()
    check_against_oracle(only1[:100], oracle, h)


def test_recent_restricts_each_task_to_its_newest() -> None:
    cap, k = 20, 6
    replay, oracle = MultiTaskReplay(2, cap, OBS, ACT, 4), Oracle(2, cap)
    for ep, n in enumerate((9, 9, 9)):  # task 0 wraps
        fill(replay, oracle, 0, ep, n)
    fill(replay, oracle, 1, 5, 4)  # fewer than k: all of it
    batch = replay.sample(2000, gen(6), recent=k)
    cols = (batch[x].tolist() for x in (keys.TASK_ID, keys.EPISODE, keys.STEP_COUNT))
    seen = set(zip(*cols, strict=True))
    newest = {(t, e, s) for t in (0, 1) for e, s in list(oracle.rings[t])[-k:]}
    assert seen == newest
    check_against_oracle(batch[:200], oracle, 4)
    assert {int(t) for t in replay.sample(100, gen(7), tasks=[1], recent=2)[keys.STEP_COUNT]} == {2, 3}


def test_sample_is_a_copy_deterministic_and_leaves_global_rng_alone() -> None:
    replay = MultiTaskReplay(2, 30, OBS, ACT, 4)
    replay.extend(make_episode(0, 0, 12))
    replay.extend(make_episode(1, 1, 7))
    rng = torch.get_rng_state()
    a, b = replay.sample(64, gen(8)), replay.sample(64, gen(8))
    assert torch.equal(torch.get_rng_state(), rng)
    assert (a == b).all()
    assert not (a == replay.sample(64, gen(9))).all()
    a[keys.OBS].fill_(7.0)
    a[keys.HISTORY].fill_(7.0)
    a[keys.NEXT_OBS].fill_(7.0)
    assert (replay.sample(64, gen(8)) == b).all()


def test_state_dict_round_trip_weights_only() -> None:
    replay = MultiTaskReplay(2, 10, OBS, ACT, 5)
    for ep, n in enumerate((7, 8)):
        replay.extend(make_episode(0, ep, n))
    replay.extend(make_episode(1, 9, 4))
    buf = io.BytesIO()
    torch.save(replay.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert state["data"][keys.OBS].shape[0] == 14  # only the written rows
    restored = MultiTaskReplay(2, 10, OBS, ACT, 5)
    restored.load_state_dict(state)
    assert (restored.sample(128, gen(10)) == replay.sample(128, gen(10))).all()
    assert (restored._data == replay._data).all()  # unwritten rows too
    for r in (replay, restored):  # and the two keep behaving the same
        r.extend(make_episode(0, 2, 6))
        r.extend(make_episode(1, 10, 3))
    assert (restored.sample(128, gen(11)) == replay.sample(128, gen(11))).all()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: s.update(obs_dim=17), "obs_dim=17"),
        (lambda s: s.update(n_tasks=3), "n_tasks=3"),
        (lambda s: s.update(size=torch.tensor([11, 0])), "inconsistent"),
        (lambda s: s.update(cursor=torch.tensor([1])), "cursor"),
        (lambda s: s["data"].pop("observation"), "observation"),
        (lambda s: s["data"]["next"].update(reward=torch.zeros(7, 2)), "next.reward"),
        (lambda s: s.pop("size"), "missing"),
        (lambda s: s["data"].update(task_id=torch.ones(7, dtype=torch.int64)), "task_id"),
    ],
)
def test_load_state_dict_rejects_mismatch_without_changing_anything(change, match) -> None:  # type: ignore[no-untyped-def]
    source = MultiTaskReplay(2, 10, OBS, ACT, 5)
    source.extend(make_episode(0, 0, 7))
    target = MultiTaskReplay(2, 10, OBS, ACT, 5)
    target.extend(make_episode(1, 3, 4))
    before = target.state_dict()
    state = source.state_dict()
    change(state)
    with pytest.raises(ValueError, match=match):
        target.load_state_dict(state)
    after = target.state_dict()
    assert torch.equal(after["size"], before["size"])
    assert torch.equal(after["data"][keys.OBS], before["data"][keys.OBS])


def _bad_step_count(td: TensorDict) -> None:
    td.set(keys.STEP_COUNT, td[keys.STEP_COUNT][:, None])


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda td: td.del_(keys.REWARD), "missing keys.*next.reward"),
        (lambda td: td.set(keys.OBS, torch.zeros(4, OBS + 1)), "observation has shape"),
        (_bad_step_count, "episode_to_replay"),
        (lambda td: td.set(keys.DONE, torch.zeros(4, 1)), "next.done"),
        (lambda td: td.set(keys.TASK_ID, torch.tensor([0, 0, 1, 1])), "transition 2 .* task 1"),
        (lambda td: td.set(keys.TASK_ID, torch.full((4,), 2)), "out of range"),
        (lambda td: td.set(keys.STEP_COUNT, torch.tensor([0, 1, 3, 4])), "transition 2"),
        (lambda td: td.set(keys.STEP_COUNT, torch.arange(2, 6)), "transition 0"),
        (lambda td: td.set(keys.EPISODE, torch.full((4,), 0)), "episode ids increasing"),
    ],
)
def test_extend_rejects_bad_input_without_writing(mutate, match) -> None:  # type: ignore[no-untyped-def]
    replay = MultiTaskReplay(2, 10, OBS, ACT, 3)
    replay.extend(make_episode(0, 0, 3))
    td = make_episode(0, 1, 4)
    mutate(td)
    with pytest.raises(ValueError, match=match):
        replay.extend(td)
    assert replay.size() == 3 and int(replay._cursor[0]) == 3


def test_constructor_and_sample_argument_errors() -> None:
    for args, name in (((0, 5, 3, 2, 4), "n_tasks"), ((1, 0, 3, 2, 4), "capacity_per_task"),
                       ((1, 5, 3, 2, -1), "history_len"), ((1, 5, 3.0, 2, 4), "obs_dim")):
        with pytest.raises(ValueError, match=name):
            MultiTaskReplay(*args)  # type: ignore[arg-type]
    replay = MultiTaskReplay(2, 5, OBS, ACT, 2)
    with pytest.raises(ValueError, match="no transitions"):
        replay.sample(4, gen())
    replay.extend(make_episode(0, 0, 3))
    for kwargs, match in (({"tasks": []}, "non-empty"), ({"tasks": [2]}, r"\[0, 1\]"),
                          ({"tasks": [1]}, "no transitions"), ({"recent": 0}, "recent"),
                          ({"batch_size": 0}, "batch_size")):
        call = {"batch_size": 4, "generator": gen(), **kwargs}
        with pytest.raises(ValueError, match=match):
            replay.sample(**call)


def test_bytes_per_transition_does_not_grow_with_history() -> None:
    sizes = {MultiTaskReplay(2, 50, 27, 8, h).bytes_per_transition() for h in (1, 20, 200)}
    assert sizes == {4 * (27 + 8 + 27 + 1) + 8 * 3 + 3}


def test_episode_to_replay_converts_a_rollout_layout() -> None:
    n = 4
    stored = make_episode(1, 0, n)
    td = stored.clone().exclude(keys.TASK_ID, keys.EPISODE)
    td.set(keys.STEP_COUNT, td[keys.STEP_COUNT][:, None])  # StepCounter's [n, 1]
    td.set(keys.HISTORY, torch.ones(n, 3, D))
    td.set(keys.NEXT_HISTORY, torch.ones(n, 3, D))
    td.set(keys.TASK_ID, torch.full((n,), 4))  # overridden by the argument
    td.set(("collector", "traj_ids"), torch.zeros(n, dtype=torch.int64))
    out = episode_to_replay(td, 1, 0)
    assert set(out.keys(True, True)) == set(keys.STORED_KEYS)
    assert (out == stored).all()
    MultiTaskReplay(2, 10, OBS, ACT, 3).extend(out)
    td.set(keys.STEP_COUNT, torch.tensor([[0], [1], [0], [1]]))
    with pytest.raises(ValueError, match="more than one episode"):
        episode_to_replay(td, 1, 0)
    with pytest.raises(ValueError, match="episode_id"):
        episode_to_replay(stored, 1, -1)
