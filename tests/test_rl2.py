"""RL² without learning: the recurrent state in the module's own data path (carried across inner
episodes, zero at each trial's start, re-unrolled as collected), one iteration of PPO and of TRPO,
per-episode returns; and, through the CLI, exact resume, SIGTERM, the meta-test report and the
checkpoint of another method."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from metarl import keys
from metarl.methods.rl2 import inner_episode_returns
from metarl.nets.recurrent_policy import HIDDEN
from tests.conftest import cli_model
from tests.resume_support import counters, fit, load, metrics, run_main

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


# ----------------------------------------------------------------------------- through the CLI
#: rl2_point_robot + debug: 2 trials x 40 steps = 80 env steps per iteration; evaluations at 0, 160, 320.
TINY = ["fit", "--config", "rl2_point_robot.yaml", "--config", "debug.yaml",
        "--model.init_args.eval.every_env_steps=160", "--model.init_args.total_env_steps=320",
        "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu"]
COMPARED = ["step", "epoch", "train/env_steps", "train/updates", "train/return", "rl2/loss_surrogate",
            "rl2/loss_surrogate_after", "rl2/kl", "rl2/entropy", "eval/env_steps", "eval/return_pre_adapt",
            "eval/return_post_adapt", "eval/return_episode_1"]


def _fit(out: Path, *extra: str) -> None:
    fit(out, *extra, base=TINY)


def _metrics(out: Path) -> list[dict[str, str]]:
    return metrics(out, COMPARED)


def _assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert counters(a) == counters(b)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), f"parameter {key} differs"
    for oa, ob in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for pid, sa in oa["state"].items():
            for name, value in sa.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(ob["state"][pid][name]))
    gens = [k for k, v in a["metarl"].items() if k.endswith("_gen")]
    assert {"task_gen", "acting_gen", "eval_acting_gen"} <= set(gens)
    for name in gens:
        assert torch.equal(a["metarl"][name], b["metarl"][name]), f"{name} differs"
    assert a["metarl"]["rollouts"]["batch"] == b["metarl"]["rollouts"]["batch"]


@pytest.fixture(scope="module")
def rl2_straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rl2_straight")
    _fit(out)
    return out


def test_exact_resume(rl2_straight: Path, tmp_path: Path) -> None:
    half = tmp_path / "half"
    _fit(half, "--model.init_args.total_env_steps=160")
    rest = tmp_path / "rest"
    _fit(rest, f"--ckpt_path={half / 'ckpt' / 'last.ckpt'}")
    straight = load(rl2_straight / "ckpt" / "last.ckpt")
    assert counters(straight) == {"env_steps": 320, "num_updates": 8, "num_episodes": 16, "iteration": 4}
    _assert_same_state(straight, load(rest / "ckpt" / "last.ckpt"))
    assert _metrics(half) + _metrics(rest) == _metrics(rl2_straight)
    evals = [float(r["eval/env_steps"]) for r in _metrics(rl2_straight) if r["eval/env_steps"]]
    assert evals == [0.0, 160.0, 320.0]


def test_sigterm_checkpoints_and_resumes_exactly(rl2_straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "stopped"
    signal_at = {"class_path": "tests.test_resume.SignalAt", "init_args": {"iteration": 3, "signum": 15}}
    with pytest.raises(SystemExit) as stop:
        _fit(out, f"--trainer.callbacks+={json.dumps(signal_at)}")
    assert stop.value.code == 128 + signal.SIGTERM
    assert counters(load(out / "ckpt" / "last.ckpt"))["iteration"] == 3
    rest = tmp_path / "rest"
    _fit(rest, f"--ckpt_path={out / 'ckpt' / 'last.ckpt'}")
    _assert_same_state(load(rl2_straight / "ckpt" / "last.ckpt"), load(rest / "ckpt" / "last.ckpt"))


def test_meta_test_reports_an_rl2_checkpoint(rl2_straight: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = rl2_straight / "ckpt" / "last.ckpt"
    run_main(["test", *TINY[1:5], f"--ckpt_path={ckpt}", "--trainer.logger=false", "--trainer.accelerator=cpu"])
    report = json.loads((ckpt.parent / "meta_test.json").read_text())
    assert report["method"] == "rl2" and report["family"] == "point-robot" and len(report["tasks"]) == 20
    assert {"return_episode_1", "return_episode_2"} <= report["tasks"][0].keys()
    assert "return_post_adapt:" in capsys.readouterr().out


def test_a_checkpoint_of_another_method_is_a_one_line_error(
    rl2_straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        run_main(["fit", "--config", "point_robot.yaml", "--config", "debug.yaml", "--trainer.accelerator=cpu",
              "--trainer.logger=false", f"--checkpoint.dirpath={tmp_path / 'ckpt'}",
              f"--ckpt_path={rl2_straight / 'ckpt' / 'last.ckpt'}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("metarl: error:") and "Traceback" not in err
    assert "metarl.methods.rl2.RL2MetaTrain" in err and "metarl.methods.mql.MQLMetaTrain" in err


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
