"""MAML with a model (GrBAL) without learning: segments of one episode, the inner step against a
hand-written SGD step, the meta-step's gradient against finite differences (second order) and against
the gradient at the adapted parameters (first order), online adaptation on the current episode's last
M transitions only, one iteration; and, through the CLI, bad input. (Exact resume, a stop signal, the
meta-test report and another method's checkpoint: tests/test_method_contract.py; MPC with the true
point-robot model beating random actions: tests/test_algorithms_mpc.py.)"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from metarl import keys
from metarl.data.trajectories import TrajectoryReplay
from metarl.methods.maml_model import update
from metarl.methods.maml_model.update import Transitions, adapted_params, meta_step, split_segments, transitions
from tests.conftest import cli_model
from tests.resume_support import run_main

M = 4  # debug/maml_model.yaml: past_steps = future_steps = 4


@pytest.fixture
def model():
    m = cli_model("--config", "maml_model_point_robot.yaml", "--config", "debug.yaml").model
    m.collect(200, "random")  # 10 episodes of 20 steps
    update.fit_normalization(m.model, m.replay.stored())
    return m


# ----------------------------------------------------------------------------- segments
def _episode(task: int, episode: int, length: int) -> TensorDict:
    t = torch.arange(length)
    flag = torch.zeros(length, 1, dtype=torch.bool)
    return TensorDict({
        keys.OBS: t[:, None].float().expand(length, 2) + 100 * episode, keys.ACTION: torch.zeros(length, 2),
        keys.TASK_ID: torch.full((length,), task), keys.STEP_COUNT: t, keys.EPISODE: torch.full((length,), episode),
        keys.NEXT_OBS: torch.zeros(length, 2), keys.REWARD: torch.zeros(length, 1), keys.TERMINATED: flag,
        keys.TRUNCATED: flag, keys.DONE: flag,
    }, batch_size=[length])


def test_segments_are_consecutive_steps_of_one_episode_and_every_one_is_drawn() -> None:
    replay = TrajectoryReplay(2, 12, 2, 2, history_len=0)
    for task, episode, length in ((0, 0, 5), (1, 1, 3), (0, 2, 6), (0, 3, 4), (1, 4, 7)):
        replay.extend(_episode(task, episode, length))
    # Task 0's ring (12) kept episode 0 from step 3 on, then 2 and 3 whole; task 1 holds 3 and 7 steps.
    starts = replay.segment_starts(4)
    want = [(2, s) for s in range(3)] + [(3, 0)] + [(4, s) for s in range(4)]  # (episode, first step)
    got = replay.segments(starts, 4)
    assert sorted(zip(got[keys.EPISODE][:, 0].tolist(), got[keys.STEP_COUNT][:, 0].tolist(), strict=True)) == want
    sample = replay.sample_segments(200, 4, torch.Generator().manual_seed(0))
    assert sample.shape == (200, 4)
    assert bool((sample[keys.EPISODE] == sample[keys.EPISODE][:, :1]).all())
    assert bool((sample[keys.STEP_COUNT] == sample[keys.STEP_COUNT][:, :1] + torch.arange(4)).all())
    assert {tuple(r) for r in sample[keys.OBS][:, 0].tolist()} == {tuple(r) for r in got[keys.OBS][:, 0].tolist()}
    with pytest.raises(ValueError, match="no stored episode holds 8 consecutive transitions"):
        replay.sample_segments(1, 8, torch.Generator())


# ----------------------------------------------------------------------------- the inner and outer steps
def test_the_inner_step_is_one_sgd_step_on_the_past_transitions(model) -> None:
    past, _ = split_segments(model.replay.sample_segments(1, 2 * M, torch.Generator().manual_seed(1)), M)
    theta = {n: p.detach().clone() for n, p in model.model.named_parameters()}
    phi = adapted_params(model.model, theta, past[0], first_order=True)
    ref = copy.deepcopy(model.model)
    sgd = torch.optim.SGD(ref.parameters(), lr=model.model.inner_lr)
    p = past[0]
    ((ref(p.obs, p.action, normalized=True) - ref.normalized_targets(p.obs, p.next_obs, p.reward))
     .square().mean().backward())
    sgd.step()
    for name, value in ref.named_parameters():
        torch.testing.assert_close(phi[name], value.detach())
        assert torch.equal(theta[name], dict(model.model.named_parameters())[name].detach())  # θ untouched


def _tiny(model):  # type: ignore[no-untyped-def]
    """A float64 copy with one hidden layer of 3 units (27 weights): finite differences are exact enough."""
    from metarl.nets import DeltaDynamicsModel

    torch.manual_seed(0)
    tiny = DeltaDynamicsModel(2, 2, hidden_sizes=(3,), reward_head=True, inner_lr=0.3).double()
    segments = model.replay.sample_segments(3, 2 * M, torch.Generator().manual_seed(2)).to(torch.float64)
    update.fit_normalization(tiny, model.replay.stored().to(torch.float64))
    return tiny, segments


def _objective(tiny, segments, flat: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """F(θ) = (1/N) Σ_j L(θ − α ∇L(θ; past_j); future_j), θ given flat."""
    probe = copy.deepcopy(tiny)
    vector_to_parameters(flat, probe.parameters())
    theta = dict(probe.named_parameters())
    past, future = split_segments(segments, M)
    losses = []
    with torch.enable_grad():
        for p, f in zip(past, future, strict=True):
            phi = adapted_params(probe, theta, p, first_order=False)
            losses.append(probe.loss(f.obs, f.action, f.next_obs, f.reward, params=phi).detach())
    return torch.stack(losses).mean()


def _meta_grad(tiny, segments, first_order: bool) -> torch.Tensor:  # type: ignore[no-untyped-def]
    net = copy.deepcopy(tiny)
    meta_step(net, segments, M, first_order, torch.optim.SGD(net.parameters(), lr=0.0), lambda loss: loss.backward())
    return parameters_to_vector([p.grad for p in net.parameters()])


def test_the_meta_gradient_matches_finite_differences_and_first_order_drops_the_hessian(model) -> None:
    tiny, segments = _tiny(model)
    flat = parameters_to_vector(tiny.parameters()).detach()
    eps = 1e-6
    fd = torch.stack([(_objective(tiny, segments, flat + eps * e) - _objective(tiny, segments, flat - eps * e))
                      / (2 * eps) for e in torch.eye(flat.numel(), dtype=torch.float64)])
    second = _meta_grad(tiny, segments, first_order=False)
    torch.testing.assert_close(second, fd, rtol=1e-5, atol=1e-8)
    # First order: (1/N) Σ_j ∇L(θ'_j; future_j) at the adapted θ'_j, no (I − α H_j) factor.
    theta = {n: p.detach() for n, p in tiny.named_parameters()}
    grads = []
    for p, f in zip(*split_segments(segments, M), strict=True):
        phi = {n: v.requires_grad_(True) for n, v in adapted_params(tiny, theta, p, first_order=True).items()}
        loss = tiny.loss(f.obs, f.action, f.next_obs, f.reward, params=phi)
        grads.append(parameters_to_vector(torch.autograd.grad(loss, list(phi.values()))))
    first = _meta_grad(tiny, segments, first_order=True)
    torch.testing.assert_close(first, torch.stack(grads).mean(0))
    assert (first - second).abs().max() > 1e-6


# ----------------------------------------------------------------------------- online adaptation
def test_online_adaptation_uses_only_the_current_episodes_last_m_transitions(model) -> None:
    adapter = model.eval_policy.adapter
    seen: list[Transitions] = []
    adapt = adapter.adapt
    adapter.adapt = lambda past: seen.append(past) or adapt(past)
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    model.eval_rollouts.run_episode(0, "adapt")  # an episode before: nothing of it may leak into the next
    seen.clear()
    episode = transitions(model.eval_rollouts.run_episode(1, "adapt"))
    assert len(seen) == 19  # steps 1..19 of the 20-step episode; none at its first step
    for t, past in enumerate(seen, start=1):
        lo = max(0, t - M)
        for got, want in zip(past, episode, strict=True):
            torch.testing.assert_close(got, want[lo:t].reshape(got.shape))
    seen.clear()
    model.eval_rollouts.run_episode(1, "plan")
    assert not seen  # without adaptation the planner acts with θ
    assert all(torch.equal(v, model.model.state_dict()[k]) for k, v in before.items())  # θ never changes


def test_the_evaluation_reports_theta_then_online_adaptation(model) -> None:
    import dataclasses

    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    result = model.evaluate_task(0)
    assert {"adapt/model_loss_pre", "adapt/model_loss_post"} <= result.metrics.keys()
    assert result.return_pre != result.return_post
    assert all(torch.equal(v, model.model.state_dict()[k]) for k, v in before.items())
    model.eval_cfg = dataclasses.replace(model.eval_cfg, adapt=False)
    off = model.evaluate_task(0)
    assert off.return_pre == off.return_post and not off.metrics


def test_one_iteration_collects_with_online_adaptation_normalises_and_takes_meta_steps(model) -> None:
    model.env_steps = 200  # past the random first iteration
    opt = model.configure_optimizers()
    model.optimizers = lambda: opt  # outside a Trainer
    modes: list[str] = []
    set_mode = model.policy.set_mode
    model.policy.set_mode = lambda mode: modes.append(mode) or set_mode(mode)
    before = parameters_to_vector(model.model.parameters()).detach().clone()
    out = model.meta_train_iteration()
    assert modes == ["adapt"] and model.env_steps == 300 and model.num_updates == 4
    stored = transitions(model.replay.stored())
    torch.testing.assert_close(model.model.obs_mean, stored.obs.mean(0))
    torch.testing.assert_close(model.model.target_std, torch.cat([stored.next_obs - stored.obs, stored.reward],
                                                                  -1).std(0, unbiased=False))
    assert not torch.equal(before, parameters_to_vector(model.model.parameters()).detach())
    assert {"model/loss_pre", "model/loss_post", "train/return", "time/updates_per_s"} <= out.keys()


def test_with_a_known_reward_the_model_predicts_the_dynamics_only_and_the_planner_scores_with_the_reward() -> None:
    from metarl.algorithms.mpc import known_reward, random_shooting

    m = cli_model("--config", "maml_model_point_robot_rotated.yaml", "--config", "debug.yaml").model
    assert not m.model.reward_head and m.model.net[-1].out_features == 2  # Δs only: GrBAL's setting
    adapter = m.eval_policy.adapter
    assert adapter.reward_fn is m.family.reward_fn is not None
    with pytest.raises(ValueError, match="exactly when the model has no reward head"):
        type(adapter)(m.model, 2, M, m.mpc)  # a headless model and no reward: nothing to plan with
    m.collect(200, "random")
    m.env_steps = 200  # past the random first iteration
    opt = m.configure_optimizers()
    m.optimizers = lambda: opt  # outside a Trainer
    out = m.meta_train_iteration()
    assert m.model.target_std.shape == (2,) and out["model/loss_post"] < float("inf")
    obs, cfg = torch.tensor([0.5, -0.3]), m.mpc
    got = adapter.plan(obs, None, torch.Generator().manual_seed(0))
    step = known_reward(lambda o, a: m.model.step(o, a)[0], m.family.reward_fn)
    want = random_shooting(step, obs, 2, torch.Generator().manual_seed(0), cfg.horizon, cfg.n_candidates, -1.0, 1.0,
                           cfg.discount)
    torch.testing.assert_close(got, want)
    result = m.evaluate_task(0)
    assert all(v == v for v in result.metrics.values())  # the online losses are defined without a reward


# ----------------------------------------------------------------------------- through the CLI
def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as stop:
        run_main(list(args))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("metarl: error:") and "Traceback" not in err
    return err


def test_bad_input_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["fit", "--config", "maml_model_point_robot.yaml", "--config", "debug.yaml", "--trainer.logger=false",
            f"--checkpoint.dirpath={tmp_path / 'bad'}"]
    assert "reward_head: false needs a family whose reward the planner knows" in _error(
        capsys, *base, "--model.init_args.model.init_args.reward_head=false")
    assert "maml.past_steps must be an int >= 1, got 0" in _error(capsys, *base, "--model.init_args.maml.past_steps=0")
    assert "mpc.planner must be one of random_shooting, cem, got 'mppi'" in _error(
        capsys, *base, "--model.init_args.mpc.planner=mppi")
