"""RL² without learning: the recurrent state in the module's own data path (carried across inner
episodes, zero at each trial's start, re-unrolled as collected), one iteration of PPO and of TRPO,
per-episode returns. (Through the CLI: tests/test_method_contract.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from metarl import keys
from metarl.methods.rl2 import inner_episode_returns
from metarl.nets.recurrent_policy import HIDDEN
from tests.conftest import cli_model

T, N = 5, 2  # debug-sized trials: 2 inner episodes of 5 steps


@pytest.fixture
def model():
    return cli_model("--config", "rl2_point_robot.yaml", "--config", "debug.yaml",
                     f"--model.init_args.family_overrides={json.dumps({'max_episode_steps': T})}",
                     "--model.init_args.trial.tasks_per_iter=3").model


def _gru_step(gru: Any, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    out, _ = gru.gru(x[:, None, :], h.transpose(0, 1).contiguous())
    return out[:, 0]


# ----------------------------------------------------------------------------- the data path
def test_hidden_state_crosses_inner_episodes_and_resets_at_each_trials_start(model) -> None:
    gru = model.policy.gru
    for _ in range(2):  # the second collection starts new trials: the state must restart from zeros
        data = model.collect()
        assert data.shape == (3, N * T)
        assert data["is_init"].squeeze(-1)[:, 0].all() and not data["is_init"].squeeze(-1)[:, 1:].any()
        assert data[("next", "inner_episode")].tolist() == [[t // T for t in range(N * T)]] * 3
        h_in, h_out, x = data["recurrent_state"], data[("next", "recurrent_state")], data[keys.OBS]
        assert (h_in[:, 0] == 0).all()
        with torch.no_grad():
            assert torch.allclose(data[HIDDEN][:, 0], _gru_step(gru, x[:, 0], torch.zeros_like(h_in[:, 0])),
                                  atol=1e-6)
            # Inner boundary: the state goes on from the end of the first episode, not from zeros.
            assert torch.equal(h_in[:, T], h_out[:, T - 1]) and h_in[:, T].abs().sum() > 0
            assert torch.allclose(data[HIDDEN][:, T], _gru_step(gru, x[:, T], h_out[:, T - 1]), atol=1e-6)
            assert not torch.allclose(data[HIDDEN][:, T], _gru_step(gru, x[:, T], torch.zeros_like(h_in[:, T])),
                                      atol=1e-3)
        assert (x[:, T, -1] == 1).all()  # the paper boundary: d = 1 at the next episode's first step


def test_training_re_unroll_reproduces_the_acting_policy(model) -> None:
    data = model.collect()
    with torch.no_grad():
        mean, log_std = model.policy.unroll(data)
        assert torch.allclose(mean, model.policy.mean_head(data[HIDDEN]), atol=1e-5)
    # The sampled actions are mean + sigma * eps with sigma = init_std = 1 at the start.
    assert torch.equal(log_std, torch.zeros_like(log_std))


def test_inner_episode_returns_split_each_trial() -> None:
    from tensordict import TensorDict

    reward = torch.arange(8, dtype=torch.float32).reshape(2, 4, 1)
    done = torch.zeros(2, 4, 1, dtype=torch.bool)
    done[:, 3] = True
    done[1, 1] = True  # row 1: a trial ended early (termination) and a new one started: not counted
    inner = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 0]])
    data = TensorDict({"next": {"reward": reward, "done": done, "inner_episode": inner}}, batch_size=[2, 4])
    assert inner_episode_returns(data, 2).tolist() == [[0 + 1, 2 + 3], [4, 5]]


# ----------------------------------------------------------------------------- the update
def test_one_ppo_iteration_updates_the_policy(model) -> None:
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.optimizers = lambda: model.configure_optimizers()  # outside a Trainer
    metrics = model.meta_train_iteration()
    assert model.num_updates == model.outer_cfg.epochs and model.env_steps == 3 * N * T
    assert all(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    assert metrics["rl2/kl"] > 0 and metrics["rl2/loss_surrogate_after"] < metrics["rl2/loss_surrogate"]
    assert {"rl2/entropy", "rl2/clip_fraction", "rl2/return_episode_1", "rl2/return_episode_2",
            "train/return"} <= metrics.keys()


def test_one_trpo_iteration_stays_in_the_trust_region(model) -> None:
    import dataclasses

    model.outer_cfg = dataclasses.replace(model.outer_cfg, algorithm="trpo")
    before = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone()
    metrics = model.meta_train_iteration()
    after = torch.nn.utils.parameters_to_vector(model.policy.parameters())
    assert metrics["rl2/step_fraction"] > 0 and not torch.equal(before, after)
    assert 0 < metrics["rl2/kl"] <= model.outer_cfg.max_kl
    assert metrics["rl2/loss_surrogate_after"] < metrics["rl2/loss_surrogate"]


def test_evaluation_reports_every_inner_episode(model) -> None:
    state = {k: v.clone() for k, v in model.policy.state_dict().items()}
    result = model.evaluate_task(0)
    assert result.return_pre == result.metrics["eval/return_episode_1"]
    assert result.return_post == result.metrics["eval/return_episode_2"]
    assert all(torch.equal(v, model.policy.state_dict()[k]) for k, v in state.items())  # no update


def test_the_first_ppo_step_follows_the_policy_gradient(model) -> None:
    """At the old policy the ratio is 1 and nothing is clipped: the first PPO step's gradient is that of
    ``-mean(log pi(a | h) A)`` over the re-unrolled trials (no gradient reaches A or pi_old)."""
    import dataclasses

    from metarl.methods.rl2.update import ppo_update, trial_advantages

    data = model.collect()
    cfg = dataclasses.replace(model.outer_cfg, epochs=1, minibatches=1)
    adv = trial_advantages(data, cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages)
    mean, _ = model.policy.unroll(data)
    want = torch.autograd.grad(-(model.policy.log_prob(mean, data[keys.ACTION]) * adv).mean(),
                               list(model.policy.parameters()))
    seen: list[list[torch.Tensor]] = []

    class Capture(torch.optim.SGD):
        def step(self, closure: object = None) -> None:
            seen.append([p.grad.clone() for p in model.policy.parameters()])

    opt = Capture(model.policy.parameters(), lr=0.0)
    ppo_update(model.policy, opt, data, adv, cfg, torch.Generator().manual_seed(0), lambda loss: loss.backward())
    assert len(seen) == 1
    for g, w in zip(seen[0], want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
