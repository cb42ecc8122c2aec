"""MIER / MIER-wR without learning: one iteration's updates, the context steps inside the module against
``algorithms.mier.adapt_context``, relabeling at the adapted context. (Through the CLI:
tests/test_method_contract.py.)"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from metarl import keys
from metarl.algorithms.mier import adapt_context, relabel
from metarl.methods.mier import update as mier_update
from tests.conftest import cli_model


@pytest.fixture
def model():
    m = cli_model("--config", "mier_point_robot_ood.yaml", "--config", "debug.yaml").model
    m.initial_collection()
    return m


def _snapshot(m) -> dict[str, list[torch.Tensor]]:
    parts = {"model_net": m.model.net, "critic": m.critic, "actor": m.actor, "critic_target": m.critic_target}
    snap = {name: [p.detach().clone() for p in mod.parameters()] for name, mod in parts.items()}
    snap["context0"] = [m.model.context0.detach().clone()]
    snap["log_alpha"] = [m.log_alpha.detach().clone()]
    snap["logvar_bounds"] = [m.model.max_state_logvar.detach().clone()]
    return snap


def _changed(before: list[torch.Tensor], after: list[torch.Tensor]) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


# ----------------------------------------------------------------------------- one iteration
def test_one_step_updates_the_model_the_context_and_sac(model) -> None:
    before = _snapshot(model)
    model.update(model.meta_batch_tasks(), model.configure_optimizers())
    after = _snapshot(model)
    for name in before:
        assert _changed(before[name], after[name]), f"{name} did not move"


def test_a_visit_collects_with_phi0_then_with_the_context_adapted_on_that_data(model, monkeypatch) -> None:
    from metarl.methods.mier import collect

    used: list[torch.Tensor] = []
    set_context = model.policy.set_context
    model.policy.set_context = lambda c: used.append(c.detach().clone()) or set_context(c)
    seen: list = []
    monkeypatch.setattr(collect, "identify", lambda m, data: seen.append(data) or mier_update.identify(m, data))
    size = model.replay.size(4), model.pre_replay.size(4)
    model.visit(4)
    cfg = model.collect_cfg
    assert (model.replay.size(4), model.pre_replay.size(4)) == (size[0] + cfg.steps_per_visit,
                                                               size[1] + cfg.num_steps_prior)
    assert len(used) == 2 and torch.equal(used[0], model.model.context0.detach())
    data = seen[0]  # the visit's phi_0 data, all of it
    assert data.shape == (1, cfg.num_steps_prior) and bool((data[keys.TASK_ID] == 4).all())
    m = model.model
    want = adapt_context(m.context_loss(*mier_update.model_data(data)), dict(m.named_parameters()),
                         m.context0.expand(1, -1), m.context_steps, m.context_lr, m.context_clip)
    torch.testing.assert_close(used[1], want[0].detach())
    assert not torch.equal(used[1], used[0])


def test_the_context_of_the_model_step_is_adapt_context_on_the_same_data(model) -> None:
    m = model.model
    gen = torch.Generator().manual_seed(3)
    tasks = model.meta_batch_tasks()
    adapt = model.pre_replay.sample_per_task(tasks, model.batch_size, gen)
    evaluate = model.replay.sample_per_task(tasks, model.batch_size, gen)
    want = adapt_context(m.context_loss(*mier_update.model_data(adapt)), dict(m.named_parameters()),
                         m.context0.expand(len(tasks), -1), m.context_steps, m.context_lr, m.context_clip)
    torch.testing.assert_close(mier_update.identify(m, adapt), want.detach())
    opt = m.make_optimizer()
    out = mier_update.model_meta_step(m, adapt, evaluate, opt, lambda loss: loss.backward())
    torch.testing.assert_close(out.context, want.detach())  # of the model before its step
    assert out.loss_post < out.loss_pre  # the context steps lower the loss on these tasks' data


def test_sac_acts_on_each_rows_task_context_of_the_model_before_its_step(model) -> None:
    seen: list[torch.Tensor] = []
    forward = model.critic.forward
    model.critic.forward = lambda o, a, z: seen.append(z.detach().clone()) or forward(o, a, z)
    tasks = model.meta_batch_tasks()
    gen_state = model.sample_gen.get_state()
    adapt = model.pre_replay.sample_per_task(tasks, model.batch_size, model.sample_gen)
    want = mier_update.identify(model.model, adapt).repeat_interleave(model.batch_size, dim=0)
    model.sample_gen.set_state(gen_state)
    model.update(tasks, model.configure_optimizers())
    assert len(seen) == 2  # pi's Q on s and the Q of the stored a; the target Q is critic_target's
    for z in seen:
        torch.testing.assert_close(z, want)


def test_no_sac_gradient_reaches_the_model(model) -> None:
    batch = model.replay.sample(32, torch.Generator().manual_seed(0))
    context = torch.randn(32, model.context_dim, requires_grad=True)
    eps = torch.randn(32, model.family.act_dim)
    opts = model.configure_optimizers()
    mier_update.sac_step(model, batch, context, eps, eps, opts[1:], model.sac, lambda loss: loss.backward())
    assert all(p.grad is None for p in model.model.parameters())
    assert all(p.grad is None for p in model.critic_target.parameters())
    assert context.grad is not None  # only through the inputs the caller passes (detached in update())


# ----------------------------------------------------------------------------- relabeling
def test_relabeling_uses_the_adapted_context(model) -> None:
    adapter = model.make_adapter(0, 0)
    assert adapter.cfg.relabel  # outside a fit: the config's MIER
    batch = model.replay.sample(64, torch.Generator().manual_seed(1))
    context = torch.randn(model.context_dim)
    state = adapter.generator.get_state()
    out = adapter.relabel(batch, context)
    gen = torch.Generator()
    gen.set_state(state)
    with torch.no_grad():
        pred = adapter.model(batch[keys.OBS], batch[keys.ACTION], context)
    _, reward, _ = relabel(pred, batch[keys.OBS], batch[keys.ACTION], adapter.termination_fn, True, gen)
    torch.testing.assert_close(out[keys.REWARD], reward)
    assert torch.equal(out[keys.NEXT_OBS], batch[keys.NEXT_OBS])  # reward-only relabeling keeps s'
    adapter.generator.set_state(state)
    assert not torch.equal(adapter.relabel(batch, torch.zeros(model.context_dim))[keys.REWARD], out[keys.REWARD])


def test_full_relabeling_acts_with_the_policy_at_the_adapted_context_and_samples_s_next(model) -> None:
    model.adapt_cfg = dataclasses.replace(model.adapt_cfg, off_policy_relabel=False)
    adapter = model.make_adapter(0, 0)
    batch = model.replay.sample(64, torch.Generator().manual_seed(1))
    context = torch.randn(model.context_dim)
    state = adapter.generator.get_state()
    out = adapter.relabel(batch, context)
    gen = torch.Generator()
    gen.set_state(state)
    obs = batch[keys.OBS]
    with torch.no_grad():
        action = adapter.actor(obs, context.expand(64, -1), torch.randn(64, model.family.act_dim, generator=gen)).action
        pred = adapter.model(obs, action, context)
    next_obs, reward, _ = relabel(pred, obs, action, adapter.termination_fn, True, gen)
    torch.testing.assert_close(out[keys.ACTION], action)
    torch.testing.assert_close(out[keys.NEXT_OBS], next_obs)
    torch.testing.assert_close(out[keys.REWARD], reward)
    assert not bool(out[keys.TERMINATED].any())  # the point robot never terminates


def test_fit_validates_mier_with_the_identification_protocol(model) -> None:
    from types import SimpleNamespace

    model._trainer = SimpleNamespace(state=SimpleNamespace(fn="fit"))
    try:
        assert not model.make_adapter(0, 0).cfg.relabel  # mier_public: extrapolation is its own run mode
        model.adapt_cfg = dataclasses.replace(model.adapt_cfg, relabel_during_fit=True)
        assert model.make_adapter(0, 0).cfg.relabel
        model._trainer.state.fn = "test"
        model.adapt_cfg = dataclasses.replace(model.adapt_cfg, relabel_during_fit=False)
        assert model.make_adapter(0, 0).cfg.relabel
    finally:
        model._trainer = None


def test_the_model_buffer_keeps_the_newest_relabeled_transitions(model) -> None:
    model.adapt_cfg = dataclasses.replace(model.adapt_cfg, rollout_batch_size=8, num_cross_tasks=2,
                                          model_buffer_size=16)
    adapter = model.make_adapter(0, 0)
    blocks = [adapter.relabel_cross_task(model.replay, torch.randn(model.context_dim))[-8:].clone() for _ in range(3)]
    assert adapter.model_buffer is not None and adapter.model_buffer.shape == (16,)
    assert torch.equal(adapter.model_buffer[keys.REWARD], torch.cat([blocks[1][keys.REWARD], blocks[2][keys.REWARD]]))


def test_the_meta_test_relabels_with_the_context_it_identified(model) -> None:
    from metarl.methods.mier.evaluation import run_protocol

    adapter = model.make_adapter(0, 0)
    identified: list[torch.Tensor] = []
    relabeled_at: list[torch.Tensor] = []
    identify, cross = adapter.identify, adapter.relabel_cross_task
    adapter.identify = lambda data: identified.append(identify(data)) or identified[-1]
    adapter.relabel_cross_task = lambda replay, c: relabeled_at.append(c) or cross(replay, c)
    source = [p.detach().clone() for p in model.actor.parameters()]
    pre, post, metrics = run_protocol(adapter, model.eval_rollouts, 0, model.batch_size, True, model.replay)
    cfg = adapter.cfg
    refills = cfg.epochs * -(-cfg.sac_steps_per_epoch // cfg.relabel_interval)  # at step 0 of every epoch too
    assert len(identified) == 1 and len(relabeled_at) == refills
    assert all(torch.equal(c, identified[0]) for c in relabeled_at)
    assert {"eval/return_epoch_0", "adapt/model_loss_finetuned", "adapt/context_norm"} <= metrics.keys()
    assert post == metrics[f"eval/return_epoch_{cfg.epochs}"] and pre <= 0  # the last episode's return
    assert not _changed(source, list(model.actor.parameters()))  # the adapter trained a copy
    assert _changed(source, list(adapter.actor.parameters()))


def test_mier_wr_identifies_with_the_models_own_steps(model) -> None:
    model.adapt_cfg = dataclasses.replace(model.adapt_cfg, relabel=False)
    adapter = model.make_adapter(0, 0)
    data = model.replay.sample(40, torch.Generator().manual_seed(2))
    torch.testing.assert_close(adapter.identify(data), mier_update.identify(model.model, data.unsqueeze(0))[0])
    result = model.evaluate_task(0)
    assert "eval/return_epoch_0" not in result.metrics and "adapt/context_norm" in result.metrics
