"""PEARL without learning: gradient isolation of the update, the encoder buffer, the collection and
evaluation schedules of z. (Through the CLI: tests/test_method_contract.py.)"""

from __future__ import annotations

import pytest
import torch

from metarl import keys
from tests.conftest import cli_model


@pytest.fixture
def model():
    m = cli_model("--config", "pearl_point_robot.yaml", "--config", "debug.yaml").model
    m.initial_collection()
    return m


# ----------------------------------------------------------------------------- the update
def test_each_loss_reaches_only_its_nets(model) -> None:
    """Encoder: the Q loss + KL only (one gradient per step); Q: its own loss (frozen in V and pi);
    V: its loss; the policy: its loss (the V target is detached); the target V: never."""
    counts: dict[str, int] = {}
    for name in ("encoder", "critic", "value", "actor"):
        for p in getattr(model, name).parameters():
            p.register_hook(lambda g, n=name: counts.__setitem__(n, counts.get(n, 0) + 1) or g)
    n_params = {n: len(list(getattr(model, n).parameters())) for n in ("encoder", "critic", "value", "actor")}
    before = [p.clone() for p in model.encoder.parameters()]
    opts = model.configure_optimizers()
    model.update(opts)
    assert counts == n_params, f"gradients per parameter: {counts} vs one each {n_params}"
    assert all(p.grad is None for p in model.value_target.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters(), strict=True))


def test_encoder_gradient_is_that_of_q_loss_plus_kl(model) -> None:
    """The encoder's gradient after a whole step equals d(kl_lambda * KL + L_Q)/d(encoder) alone."""
    from metarl.algorithms.pearl import kl_to_standard_normal, reparam_sample
    from metarl.algorithms.sac import q_target, twin_q_loss
    from metarl.nets import ProbContextEncoder

    m = model
    gens = (m.sample_gen.get_state(), m.noise_gen.get_state())
    # The step's draws, the pre-step parameters, only the two terms that may reach the encoder.
    tasks = torch.randint(len(m.family.train_tasks), (m.meta_batch,), generator=m.sample_gen)
    context = m.enc_replay.sample_per_task(tasks, m.embedding_batch_size, m.sample_gen)
    batch = m.replay.sample_per_task(tasks, m.batch_size, m.sample_gen).reshape(-1)
    mu, var = m.encoder.posterior(ProbContextEncoder.context_from(context, False))
    z = reparam_sample(mu, var, torch.randn(mu.shape, generator=m.noise_gen)).repeat_interleave(m.batch_size, 0)
    q1, q2 = m.critic(batch[keys.OBS], batch[keys.ACTION], z)
    with torch.no_grad():
        y = q_target(batch[keys.REWARD], batch[keys.TERMINATED], m.value_target(batch[keys.NEXT_OBS], z),
                     m.sac.gamma, m.sac.reward_scale)
    loss = m.kl_lambda * kl_to_standard_normal(mu, var) + twin_q_loss(q1, q2, y)
    want = torch.autograd.grad(loss, list(m.encoder.parameters()))
    m.sample_gen.set_state(gens[0])
    m.noise_gen.set_state(gens[1])
    m.update(m.configure_optimizers())  # the same draws again, now the whole step
    for p, w in zip(m.encoder.parameters(), want, strict=True):
        torch.testing.assert_close(p.grad, w)


# ----------------------------------------------------------------------------- data collection
def test_a_visit_clears_the_encoder_buffer_and_refills_it_with_prior_data_only(model) -> None:
    cfg = model.collect_cfg
    task = 3
    rl_before, enc_before = model.replay.size(task), model.enc_replay.size(task)
    assert enc_before == cfg.num_initial_steps
    steps_before = model.env_steps
    model.visit(task)
    assert model.enc_replay.size(task) == cfg.num_steps_prior + cfg.num_steps_posterior
    assert model.replay.size(task) == rl_before + cfg.steps_per_visit
    assert model.env_steps - steps_before == cfg.steps_per_visit
    held = model.enc_replay.sample_per_task([task], 200, torch.Generator().manual_seed(0))
    rl_new = model.replay.sample_per_task([task], 500, torch.Generator().manual_seed(0), recent=cfg.steps_per_visit)
    # E_i holds this visit's prior phase: the oldest part of the visit's RL data, not the extra RL phase.
    prior_episodes = set(rl_new[keys.EPISODE].unique().tolist())
    assert set(held[keys.EPISODE].unique().tolist()) < prior_episodes
    assert int(held[keys.EPISODE].max()) < int(rl_new[keys.EPISODE].max())
    for other in (0, 1):
        assert model.enc_replay.size(other) == cfg.num_initial_steps  # other tasks keep theirs


def _record_beliefs(policy) -> list[bool]:
    """Wraps policy.sample_z: True for each z drawn from the prior."""
    drawn: list[bool] = []
    original = policy.sample_z

    def sample_z() -> None:
        drawn.append(bool(torch.equal(policy.mu, torch.zeros_like(policy.mu))
                          and torch.equal(policy.var, torch.ones_like(policy.var))))
        original()

    policy.sample_z = sample_z
    return drawn


def test_posterior_phases_start_with_a_prior_z_then_use_the_posterior(model) -> None:
    drawn = _record_beliefs(model.policy)
    steps = 3 * model.family.max_episode_steps
    model.collect_phase(5, steps, use_posterior=True, to_encoder=False)
    # z for trajectory 1 (prior), 2 and 3 (posterior from E_i), and the one drawn after the last.
    assert drawn == [True, False, False, False]
    drawn.clear()
    model.collect_phase(5, steps, use_posterior=False, to_encoder=True)
    assert drawn == [True] * 4


@pytest.mark.parametrize("n_exp", [1, 2])
def test_evaluation_uses_the_prior_for_the_exploration_trajectories_then_the_posterior(model, n_exp: int) -> None:
    import dataclasses

    model.adapt_cfg = dataclasses.replace(model.adapt_cfg, num_exp_traj_eval=n_exp, num_steps_per_eval=60)
    drawn = _record_beliefs(model.eval_policy)
    result = model.evaluate_task(0)
    runs = model.eval_cfg.episodes
    # z for each of the 3 trajectories of 20 steps, and the one drawn after the last: prior for the first n_exp.
    per_run = [True] * n_exp + [False] * (4 - n_exp)
    assert drawn == per_run * runs
    assert result.return_pre == result.metrics["eval/return_episode_1"]
    assert result.return_post == result.metrics["eval/return_episode_3"]
    assert 0 < result.metrics["adapt/z_var_mean"] < 1  # the posterior of 60 transitions is tighter than the prior
    drawn.clear()
    model.evaluate_task(0, adapt=False)
    assert all(drawn)
