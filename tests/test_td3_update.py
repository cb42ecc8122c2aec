"""The TD3 update of MQL (TD3ContextNets): gradient isolation and untouched inputs (TorchRL loss-test style)."""

from __future__ import annotations

import torch

from metarl import keys


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _filled_module(tiny_cli):
    model = tiny_cli().model
    model.rollouts.sampler.mode = "cycle"
    model._store(model.rollouts.collect(200, "random"))
    return model


def _step(model, update_index: int, **kwargs):
    critic_opt, actor_opt = model.make_optimizers()
    batch = model.replay.sample(32, torch.Generator().manual_seed(0))
    before = batch.clone()
    noise = torch.randn(32, model.act_dim, generator=torch.Generator().manual_seed(1))
    out = model.td3_update(batch, update_index, critic_opt, actor_opt, model.td3, noise, **kwargs)
    assert (batch == before).all(), "the sampled batch was modified"
    return out


def test_critic_only_step_leaves_actor_untouched(tiny_cli) -> None:
    model = _filled_module(tiny_cli)
    actor, actor_enc = _params(model.actor), _params(model.actor_encoder)
    critic = _params(model.critic)
    out = _step(model, update_index=1)  # 1 % policy_freq != 0: no actor update
    assert out.loss_actor is None
    assert _same(actor, _params(model.actor)) and _same(actor_enc, _params(model.actor_encoder))
    assert not _same(critic, _params(model.critic))


def test_actor_step_leaves_critic_untouched_and_targets_get_no_grad(tiny_cli) -> None:
    model = _filled_module(tiny_cli)
    critic_opt, actor_opt = model.make_optimizers()
    batch = model.replay.sample(32, torch.Generator().manual_seed(0))
    noise = torch.zeros(32, model.act_dim)
    # The critic part of the step runs first; snapshot the critic after it by running the step with
    # a huge policy_freq-multiple index and comparing the critic before/after only the actor part.
    model.td3_update(batch, 1, critic_opt, actor_opt, model.td3, noise)  # critic only
    critic_after_critic_step = _params(model.critic) + _params(model.critic_encoder)
    for p in [*model.critic.parameters(), *model.critic_encoder.parameters()]:
        p.grad = None
    # Actor update with the critic optimizer replaced by a no-op: any critic change must come from
    # the actor step.
    class NoOp:
        def zero_grad(self) -> None: ...
        def step(self) -> None: ...

    actor_before = _params(model.actor)
    model.td3_update(batch, 0, NoOp(), actor_opt, model.td3, noise)
    assert _same(critic_after_critic_step, _params(model.critic) + _params(model.critic_encoder))
    assert not _same(actor_before, _params(model.actor))
    for target in (model.actor_target, model.critic_target, model.critic_encoder_target, model.actor_encoder_target):
        for p in target.parameters():
            assert not p.requires_grad and p.grad is None


def test_targets_move_by_polyak_only_on_actor_steps(tiny_cli) -> None:
    model = _filled_module(tiny_cli)
    target = _params(model.critic_target)
    _step(model, update_index=1)
    assert _same(target, _params(model.critic_target))
    online_before = _params(model.critic)
    _step(model, update_index=0)
    tau = model.td3.tau
    # target' = (1 - tau) target + tau online_after; recover and compare.
    online_after = _params(model.critic)
    expected = [(1 - tau) * t + tau * o for t, o in zip(target, online_after, strict=True)]
    got = _params(model.critic_target)
    assert all(torch.allclose(e, g, atol=1e-6) for e, g in zip(expected, got, strict=True))
    assert not _same(online_before, online_after)


def test_batch_has_the_contract_keys(tiny_cli) -> None:
    model = _filled_module(tiny_cli)
    batch = model.replay.sample(8, torch.Generator().manual_seed(0))
    h, d = model.history_len, model.act_dim + 1 + model.obs_dim
    assert batch[keys.HISTORY].shape == (8, h, d)
    assert batch[keys.NEXT_HISTORY].shape == (8, h, d)
    assert batch[keys.OBS].shape == (8, model.obs_dim)
    assert batch[keys.TASK_ID].dtype == torch.int64
