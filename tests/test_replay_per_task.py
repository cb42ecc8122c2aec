"""MultiTaskReplay for PEARL: history_len = 0, clear(task), sample_per_task -> [T, n].

Uses the oracle and episode builder of ``test_replay.py``: features encode (task, episode, step),
so every sampled row can be traced back to the transition it must be.
"""

from __future__ import annotations

import io

import pytest
import torch

from metarl import keys
from metarl.data.replay import MultiTaskReplay
from tests.test_replay import ACT, OBS, Oracle, check_against_oracle, fill, gen, make_episode, value


def _ids(batch) -> set[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    cols = (batch[k].reshape(-1).tolist() for k in (keys.TASK_ID, keys.EPISODE, keys.STEP_COUNT))
    return set(zip(*cols, strict=True))


def test_history_len_zero_gathers_no_windows() -> None:
    plain, windowed = MultiTaskReplay(2, 20, OBS, ACT, 0), MultiTaskReplay(2, 20, OBS, ACT, 3)
    for r in (plain, windowed):
        r.extend(make_episode(0, 0, 7))
        r.extend(make_episode(1, 4, 5))
    for batch, ref in ((plain.sample(64, gen(0)), windowed.sample(64, gen(0))),
                       (plain.sample_per_task([1, 0], 16, gen(1)), windowed.sample_per_task([1, 0], 16, gen(1)))):
        assert set(batch.keys(True, True)) == set(keys.STORED_KEYS)  # no history, no next.history
        assert (batch == ref.select(*keys.STORED_KEYS)).all()  # the same rows as with windows
    assert ref[keys.HISTORY].shape == (2, 16, 3, ACT + 1 + OBS)


def test_sample_per_task_rows_hold_their_own_task_duplicates_drawn_independently() -> None:
    h = 2
    replay, oracle = MultiTaskReplay(3, 50, OBS, ACT, h), Oracle(3, 50)
    fill(replay, oracle, 0, 0, 30)
    fill(replay, oracle, 1, 3, 4)
    fill(replay, oracle, 2, 1, 6)
    fill(replay, oracle, 2, 2, 5)
    tasks = [2, 0, 2, 1]
    batch = replay.sample_per_task(torch.tensor(tasks), 600, gen(2))
    assert batch.batch_size == torch.Size([4, 600])
    assert batch[keys.HISTORY].shape == (4, 600, h, ACT + 1 + OBS)
    for i, t in enumerate(tasks):
        row = batch[i]
        assert (row[keys.TASK_ID] == t).all()
        assert _ids(row) == {(t, e, s) for e, s in oracle.rings[t]}  # every transition of the task, nothing else
        assert torch.equal(row[keys.OBS][:, 0], torch.tensor(
            [value(t, e, s) for e, s in zip(row[keys.EPISODE].tolist(), row[keys.STEP_COUNT].tolist(), strict=True)]))
        check_against_oracle(row[:50], oracle, h)
    assert not torch.equal(batch[0][keys.STEP_COUNT], batch[2][keys.STEP_COUNT])  # a repeated task: fresh draws
    # Uniform within a task (not weighted by anything else): 11 transitions, 600 * 2 draws.
    counts = torch.bincount(torch.cat([batch[0][keys.OBS][:, 0], batch[2][keys.OBS][:, 0]]).long() % 1000)
    counts = counts[counts > 0].double()
    chi2 = ((counts - 1200 / 11).square() / (1200 / 11)).sum()
    assert counts.numel() == 11 and chi2 < 35  # 10 dof: P(chi2 > 35) ~ 1e-4 under uniform draws


def test_sample_per_task_recent_deterministic_and_leaves_global_rng_alone() -> None:
    cap, k = 12, 5
    replay, oracle = MultiTaskReplay(2, cap, OBS, ACT, 0), Oracle(2, cap)
    for ep in range(3):
        fill(replay, oracle, 0, ep, 7)  # task 0 wraps its ring
    fill(replay, oracle, 1, 0, 3)  # fewer than k: all of it
    rng = torch.get_rng_state()
    a = replay.sample_per_task([0, 1], 400, gen(3), recent=k)
    assert torch.equal(torch.get_rng_state(), rng)
    assert _ids(a[0]) == {(0, e, s) for e, s in list(oracle.rings[0])[-k:]}
    assert _ids(a[1]) == {(1, e, s) for e, s in oracle.rings[1]}
    assert (a == replay.sample_per_task([0, 1], 400, gen(3), recent=k)).all()
    assert not (a == replay.sample_per_task([0, 1], 400, gen(4), recent=k)).all()
    a[keys.OBS].fill_(-5.0)  # a copy: the storage is untouched
    assert (replay.sample_per_task([0, 1], 400, gen(3), recent=k)[keys.OBS] != -5.0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tasks": [0, 2, 0]}, r"no transitions stored for task\(s\) \[2\]"),
        ({"tasks": [1, 2, 2]}, r"task\(s\) \[1, 2\]"),
        ({"tasks": []}, "non-empty"),
        ({"tasks": [0, 3]}, r"\[0, 2\]"),
        ({"tasks": [0.0]}, "sequence of ints"),
        ({"n": 0}, "n must be an int >= 1"),
        ({"recent": 0}, "recent"),
        ({"generator": 3}, "generator"),
    ],
)
def test_sample_per_task_errors(kwargs, match) -> None:  # type: ignore[no-untyped-def]
    replay = MultiTaskReplay(3, 10, OBS, ACT, 0)
    replay.extend(make_episode(0, 0, 4))
    call = {"tasks": [0], "n": 4, "generator": gen(), **kwargs}
    with pytest.raises(ValueError, match=match):
        replay.sample_per_task(**call)


def test_clear_empties_one_task_and_accepts_any_new_episode() -> None:
    h, cap = 4, 10
    replay, oracle = MultiTaskReplay(3, cap, OBS, ACT, h), Oracle(3, cap)
    fill(replay, oracle, 0, 0, 6)
    fill(replay, oracle, 1, 7, 8)
    fill(replay, oracle, 1, 8, 5)  # task 1's ring has wrapped
    others = replay.sample(200, gen(5), tasks=[0])
    replay.clear(1)
    replay.clear(2)  # an empty task: nothing to do
    oracle.rings[1].clear()
    assert (replay.size(0), replay.size(1), replay.size(2)) == (6, 0, 0)
    assert (replay.sample(200, gen(5), tasks=[0]) == others).all()  # other tasks untouched
    assert (replay.sample(300, gen(6))[keys.TASK_ID] == 0).all()
    with pytest.raises(ValueError, match=r"task\(s\) \[1\]"):
        replay.sample_per_task([0, 1], 4, gen())
    # The write order restarts: an episode id below the cleared ones is accepted, and the windows are exact.
    fill(replay, oracle, 1, 2, 3)
    fill(replay, oracle, 1, 3, 9)  # wraps again
    batch = replay.sample_per_task([1], 400, gen(7))
    assert _ids(batch) == {(1, e, s) for e, s in oracle.rings[1]}
    check_against_oracle(batch[0], oracle, h)
    # Equal, row for row (unwritten rows included), to a replay that never held the cleared data.
    fresh = MultiTaskReplay(3, cap, OBS, ACT, h)
    for t, ep, n in ((0, 0, 6), (1, 2, 3), (1, 3, 9)):
        fresh.extend(make_episode(t, ep, n))
    assert (fresh._data == replay._data).all()
    assert torch.equal(fresh._cursor, replay._cursor) and torch.equal(fresh._size, replay._size)


def test_clear_mid_episode_then_continuing_it_is_rejected_and_bad_task_ids() -> None:
    replay = MultiTaskReplay(2, 10, OBS, ACT, 2)
    replay.extend(make_episode(0, 0, 3))
    replay.clear(0)
    with pytest.raises(ValueError, match="starts a new episode"):
        replay.extend(make_episode(0, 0, 2, start=3))
    assert replay.size() == 0
    replay.clear(torch.tensor(1))  # a 0-d integer tensor is an int
    for bad in (-1, 2, True, 1.0, "0"):
        with pytest.raises(ValueError, match=r"clear: task must be an int in \[0, 1\]"):
            replay.clear(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("refill", [False, True])
def test_state_dict_round_trip_after_clear(refill: bool) -> None:
    replay = MultiTaskReplay(2, 10, OBS, ACT, 3)
    replay.extend(make_episode(0, 0, 7))
    replay.extend(make_episode(1, 5, 10))
    replay.extend(make_episode(1, 6, 4))
    replay.clear(1)
    if refill:
        replay.extend(make_episode(1, 1, 4))
    buf = io.BytesIO()
    torch.save(replay.state_dict(), buf)
    buf.seek(0)
    restored = MultiTaskReplay(2, 10, OBS, ACT, 3)
    restored.load_state_dict(torch.load(buf, weights_only=True))
    assert (restored._data == replay._data).all()
    assert restored.size(1) == replay.size(1) == (4 if refill else 0)
    for r in (replay, restored):  # and both keep behaving the same
        r.extend(make_episode(1, 9, 6))
    assert (restored.sample_per_task([1, 0, 1], 64, gen(8)) == replay.sample_per_task([1, 0, 1], 64, gen(8))).all()
