"""MAML-PG without learning: the per-task adapted parameters in the collection path, one MAML-TRPO
iteration (second and first order), the evaluation protocol (pre under theta, post under phi). (Through
the CLI: tests/test_method_contract.py.)"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from metarl import keys
from tests.conftest import cli_model

T = 5


@pytest.fixture
def model():
    return cli_model("--config", "maml_point_robot.yaml", "--config", "debug.yaml",
                     f"--model.init_args.family_overrides={json.dumps({'max_episode_steps': T})}").model


def test_each_task_group_acts_with_its_own_adapted_parameters(model) -> None:
    acting, ro = model.acting, model.rollouts
    assert ro.n_envs == 4  # 2 tasks x 2 episodes
    theta = {n: p.detach().clone() for n, p in model.policy.named_parameters()}
    phis = []
    for g in range(2):  # two parameter sets with sigma ~ 0: each group's actions are its own mean
        phi = {n: p + 0.5 * (g + 1) for n, p in theta.items()}
        phi["log_std"] = torch.full_like(theta["log_std"], -30.0)
        phis.append(phi)
    acting.params = phis
    with torch.no_grad():
        data = ro.collect()
    for g in range(2):
        rows = data[2 * g: 2 * g + 2]
        mean, _ = torch.func.functional_call(model.policy, phis[g], (rows[keys.OBS],))
        assert torch.allclose(rows[keys.ACTION], mean, atol=1e-5)


@pytest.mark.parametrize("first_order", [False, True])
def test_one_iteration_takes_a_trust_region_step_through_the_inner_step(model, first_order: bool) -> None:
    model.cfg = dataclasses.replace(model.cfg, first_order=first_order)
    before = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone()
    metrics = model.meta_train_iteration()
    after = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach()
    assert model.env_steps == 2 * 2 * 2 * T and model.num_updates == 1 and model.num_episodes == 8
    assert model.acting.params is None  # theta again for the next pre-update collection
    assert metrics["maml/step_fraction"] > 0 and not torch.equal(before, after)
    assert 0 < metrics["maml/kl_after"] <= model.cfg.max_kl
    assert metrics["maml/loss_after"] < metrics["maml/loss_before"]


def test_one_ppo_iteration_takes_adam_steps_through_the_inner_step(model) -> None:
    model.cfg = dataclasses.replace(model.cfg, outer="ppo")
    opt = model.configure_optimizers()
    model.optimizers = lambda: opt  # outside a Trainer
    before = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone()
    metrics = model.meta_train_iteration()
    assert model.num_updates == model.cfg.ppo_steps and len(opt.state) == len(list(model.policy.parameters()))
    assert not torch.equal(before, torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach())
    assert metrics["maml/loss_after"] < metrics["maml/loss_before"] and metrics["maml/kl_after"] > 0


def test_second_order_and_first_order_outer_steps_differ(model) -> None:
    state = {k: v.clone() for k, v in model.policy.state_dict().items()}
    gens = model.task_gen.get_state(), model.acting.generator.get_state(), model.rollouts.state_dict()
    split = {"train": model.family.train_tasks, "eval": model.family.eval_tasks}
    model.meta_train_iteration()
    second = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone()
    model.policy.load_state_dict(state)
    model.task_gen.set_state(gens[0])
    model.acting.generator.set_state(gens[1])
    model.rollouts.load_state_dict(gens[2], split)
    model.cfg = dataclasses.replace(model.cfg, first_order=True)
    model.meta_train_iteration()
    first = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach()
    assert not torch.allclose(first, second)


def test_evaluation_adapts_a_copy_and_reports_theta_then_phi(model) -> None:
    state = {k: v.clone() for k, v in model.policy.state_dict().items()}
    from metarl.methods.maml import MAMLAdapt

    pre, post, phi = MAMLAdapt(model.policy, model.cfg).adapt(model.eval_rollouts, model.family.eval_tasks[0])
    assert all(torch.equal(v, model.policy.state_dict()[k]) for k, v in state.items())
    assert any(not torch.equal(phi[n], p) for n, p in model.policy.named_parameters())
    assert model.eval_acting.params is None and isinstance(pre, float) and isinstance(post, float)
    result = model.evaluate_task(0)
    assert result.return_pre != result.return_post


def test_the_outer_gradient_is_the_maml_meta_gradient_through_the_inner_step(model) -> None:
    """The TRPO objective's gradient at theta equals ``algorithms.maml.meta_gradient`` (second order) of the
    likelihood-ratio outer loss, and differs from its first-order version."""
    from metarl.algorithms.maml import meta_gradient
    from metarl.algorithms.onpolicy import likelihood_ratio_surrogate
    from metarl.methods.maml.update import inner_loss_fn, old_policies, post_update_loss, task_batches
    from metarl.nets.gaussian_mlp import gaussian_log_prob

    cfg = model.cfg
    with torch.no_grad():
        pre = task_batches(model.rollouts.collect(), 2, cfg.gamma, cfg.gae_lambda)
        post = task_batches(model.rollouts.collect(), 2, cfg.gamma, cfg.gae_lambda)
    theta = dict(model.policy.named_parameters())
    olds = old_policies(model.policy, theta, pre, post, cfg)
    loss, _ = post_update_loss(model.policy, theta, pre, post, olds, cfg, None)
    got = torch.autograd.grad(loss, list(theta.values()))

    def outer(m, batch):
        mean, log_std = m(batch["obs"])
        return likelihood_ratio_surrogate(gaussian_log_prob(mean, log_std, batch["act"]), batch["old_logp"],
                                          batch["adv"])

    tasks = [([p], {**b, "old_logp": o[2]}) for p, b, o in zip(pre, post, olds, strict=True)]
    want, _ = meta_gradient(model.policy, theta, inner_loss_fn(cfg.inner_objective), outer, tasks, cfg.inner_lr)
    for g, n in zip(got, theta, strict=True):
        torch.testing.assert_close(g, want[n])
    fo, _ = meta_gradient(model.policy, theta, inner_loss_fn(cfg.inner_objective), outer, tasks, cfg.inner_lr,
                          first_order=True)
    assert any(not torch.allclose(g, fo[n]) for g, n in zip(got, theta, strict=True))
