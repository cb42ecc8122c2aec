"""RL²'s trials (metarl.data.trial.TrialWrapper through make_trial_env): is_init only at a trial's start,
a TorchRL GRUModule's hidden state carried across inner episodes and reset at each trial, the
[o, a_prev, r_prev, d_prev] input at both boundary conventions, and the training-time re-unroll
(recurrent mode over the whole batch) reproducing the acting-time hidden states."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.modules import GRUModule, set_recurrent_mode

from metarl import keys
from metarl.data.rollouts import BatchedRollouts
from metarl.data.trial import TrialWrapper
from metarl.envs import make_task_family

T, N = 5, 2  # inner episodes of 5 steps, 2 per trial: a trial is 10 steps
FAMILY = make_task_family("point-robot", max_episode_steps=T)
OBS_IN = FAMILY.obs_dim + FAMILY.act_dim + 2


def _policy() -> tuple[TensorDictSequential, GRUModule]:
    torch.manual_seed(0)
    gru = GRUModule(input_size=OBS_IN, hidden_size=8, in_key=keys.OBS, out_key="h")
    head = TensorDictModule(nn.Sequential(nn.Linear(8, FAMILY.act_dim), nn.Tanh()), in_keys=["h"],
                            out_keys=[keys.ACTION])
    return TensorDictSequential(gru, head), gru


def _collect(boundary: str = "paper", trials: int = 2) -> tuple[TensorDictBase, GRUModule, TensorDictSequential]:
    policy, gru = _policy()
    ro = BatchedRollouts(FAMILY, FAMILY.train_tasks[:3], horizon=trials * N * T, seed=0, policy=policy,
                         trial_episodes=N, trial_boundary=boundary, extra_transforms=[gru.make_tensordict_primer()])
    with torch.no_grad():
        return ro.collect(), gru, policy


def _gru_step(gru: GRUModule, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU step from hidden state h ([n, 1, H]) on input x ([n, D]), outside TorchRL."""
    out, _ = gru.gru(x[:, None, :], h.transpose(0, 1).contiguous())
    return out[:, 0]


def test_is_init_only_at_a_trials_start_and_inner_episodes_are_indexed() -> None:
    data, _, _ = _collect()
    t = torch.arange(2 * N * T)
    assert data["is_init"].squeeze(-1).tolist() == [(t % (N * T) == 0).tolist()] * 3
    assert data[("next", "inner_episode")].tolist() == [((t % (N * T)) // T).tolist()] * 3
    # One TorchRL episode per trial: done only at a trial's end; step_count counts trial steps.
    assert data[keys.DONE].squeeze(-1).tolist() == [(t % (N * T) == N * T - 1).tolist()] * 3
    assert data[keys.STEP_COUNT].squeeze(-1).tolist() == [(t % (N * T)).tolist()] * 3
    # Both inner episodes run the row's own task: r = -|p' - g_i|. The step that ends an inner episode
    # observes the next one's start (the trial goes on), so p' is not its position there.
    goal = torch.tensor([task.params["goal"] for task in FAMILY.train_tasks[:3]], dtype=torch.float32)[:, None]
    expected = -(data[keys.NEXT_OBS][..., :2] - goal).norm(dim=-1, keepdim=True)
    inner_end = (t % T == T - 1) & (t % (N * T) != N * T - 1)
    assert torch.allclose(data[keys.REWARD][:, ~inner_end], expected[:, ~inner_end], atol=1e-5)
    assert not torch.isclose(data[keys.REWARD][:, inner_end], expected[:, inner_end]).any()


def test_hidden_state_crosses_inner_episodes_and_resets_at_a_trials_start() -> None:
    data, gru, _ = _collect()
    x, h_in, h_out = data[keys.OBS], data["recurrent_state"], data[("next", "recurrent_state")]
    zeros = torch.zeros_like(h_in[:, 0])
    with torch.no_grad():
        # Inner boundary (t = T): the state goes on from the last step of the first inner episode.
        assert torch.equal(h_in[:, T], h_out[:, T - 1]) and h_in[:, T].abs().sum() > 0
        assert torch.allclose(data["h"][:, T], _gru_step(gru, x[:, T], h_out[:, T - 1]), atol=1e-6)
        assert not torch.allclose(data["h"][:, T], _gru_step(gru, x[:, T], zeros), atol=1e-3)
        # Trial start (t = N T): the state restarts from zeros, whatever the previous trial left.
        assert torch.allclose(data["h"][:, N * T], _gru_step(gru, x[:, N * T], zeros), atol=1e-6)
        assert not torch.allclose(data["h"][:, N * T], _gru_step(gru, x[:, N * T], h_out[:, N * T - 1]), atol=1e-3)


def test_recurrent_mode_re_unrolls_the_trials_as_collected() -> None:
    data, _, policy = _collect()
    replay = data.select(keys.OBS, "is_init", "recurrent_state").clone()
    with torch.no_grad(), set_recurrent_mode(True):
        policy(replay)  # the whole [n, T] batch at once, split at is_init (RL²'s training pass)
    assert torch.allclose(replay["h"], data["h"], atol=1e-5)


@pytest.mark.parametrize("boundary", ["paper", "zeros"])
def test_previous_action_reward_and_done_in_the_input(boundary: str) -> None:
    data, _, _ = _collect(boundary, trials=1)
    obs, act, rew = data[keys.OBS], data[keys.ACTION], data[keys.REWARD]
    o, a, r, d = obs[..., :2], obs[..., 2:4], obs[..., 4:5], obs[..., 5:6]
    assert (obs[:, 0, 2:] == 0).all()  # trial start: no previous step
    inside = [t for t in range(1, N * T) if t != T]
    assert torch.allclose(a[:, inside], act[:, [t - 1 for t in inside]].clamp(-1, 1))
    assert torch.allclose(r[:, inside], rew[:, [t - 1 for t in inside]])
    assert (d[:, inside] == 0).all()
    if boundary == "paper":  # the ended episode's last (a, r) and d = 1
        assert torch.allclose(a[:, T], act[:, T - 1]) and torch.allclose(r[:, T], rew[:, T - 1])
        assert (d[:, T] == 1).all()
    else:  # garage / ProMP: zeros, the policy never sees d = 1
        assert (obs[:, T, 2:] == 0).all()
    # The new inner episode starts from a reset, not from where the last one ended.
    ended_at = o[:, T - 1] + 0.1 * act[:, T - 1].clamp(-1, 1)
    assert not torch.isclose(o[:, T], ended_at).all(-1).any()
    assert torch.allclose(o[:, T + 1], o[:, T] + 0.1 * act[:, T].clamp(-1, 1), atol=1e-6)


def test_bad_trial_arguments_raise_one_line_errors() -> None:
    env = FAMILY.make_env(FAMILY.train_tasks[0])
    with pytest.raises(ValueError, match="n_episodes must be >= 1"):
        TrialWrapper(env, 0)
    with pytest.raises(ValueError, match="boundary must be 'paper' or 'zeros'"):
        TrialWrapper(env, 2, boundary="carry")  # type: ignore[arg-type]
