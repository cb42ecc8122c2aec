"""Every shipped experiment config instantiates, carries its paper values, and the bare-name lookup works."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import CONFIGS, cli_model

EXPERIMENTS = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name != "debug.yaml")
FAMILIES = {"ant_fb", "ant_goal", "cheetah_fb", "cheetah_vel", "humanoid_dir", "walker_params", "point_robot"}


def _class_path(name: str) -> str:
    return yaml.safe_load((CONFIGS / name).read_text())["model"]["class_path"]


MQL = [n for n in EXPERIMENTS if _class_path(n) == "metarl.methods.mql.MQLMetaTrain"]
PEARL = [n for n in EXPERIMENTS if _class_path(n) == "metarl.methods.pearl.PEARLMetaTrain"]


def test_the_design_lists_every_family_config() -> None:
    assert FAMILIES <= {name.removesuffix(".yaml") for name in MQL}
    assert {f"pearl_{f}" for f in FAMILIES} <= {name.removesuffix(".yaml") for name in PEARL}
    assert set(MQL) | set(PEARL) == set(EXPERIMENTS), "a shipped config of no known method"


@pytest.mark.parametrize("name", MQL)
def test_config_instantiates(name: str) -> None:
    cli = cli_model("--config", name)
    model = cli.model
    raw = yaml.safe_load((CONFIGS / name).read_text())["model"]["init_args"]
    assert model.family.name == raw["family"]
    assert model.history_len == raw["history_len"]
    assert model.actor_encoder.hidden_size == raw["encoder"]["init_args"]["hidden_size"]
    assert model.actor.lr == raw["actor"]["init_args"]["lr"]
    assert model.adapt_cfg.beta_clip == raw["adapt"]["beta_clip"]
    assert model.td3.policy_freq == raw["td3"]["policy_freq"]


def test_table1_values_ant_fb() -> None:
    """MQL paper Table 1, Ant-FB column."""
    m = cli_model("--config", "ant_fb.yaml").model
    assert (m.adapt_cfg.beta_clip, m.collect_cfg.expl_noise, m.td3.policy_noise, m.td3.policy_freq) == (1, 0.3, 0.3, 2)
    assert (m.updates_per_iter, m.adapt_cfg.new_data_updates, m.adapt_cfg.old_data_updates) == (200, 10, 100)
    assert (m.history_len, m.actor_encoder.hidden_size, m.actor.lr) == (20, 15, 3e-4)


def test_debug_overlay_shrinks_any_config() -> None:
    m = cli_model("--config", "ant_fb.yaml", "--config", "debug.yaml").model
    assert m.total_env_steps == 600 and m.family.name == "ant-fb"


def test_bare_name_from_another_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_model("--config", "point_robot").model.family.name == "point-robot"


def test_override_propagates() -> None:
    m = cli_model("--config", "point_robot.yaml", "--model.init_args.encoder.init_args.hidden_size=7")
    assert m.model.critic_encoder.hidden_size == 7
    assert m.model.actor.net[0].in_features == m.model.obs_dim + 7


@pytest.mark.parametrize("name", PEARL)
def test_pearl_config_instantiates_with_its_values(name: str) -> None:
    model = cli_model("--config", name).model
    raw = yaml.safe_load((CONFIGS / name).read_text())["model"]["init_args"]
    assert model.method_name == "pearl" and model.family.name == raw["family"]
    assert (model.meta_batch, model.embedding_batch_size, model.kl_lambda) == (
        raw["meta_batch"], raw["embedding_batch_size"], raw["kl_lambda"])
    assert model.latent_size == raw["encoder"]["init_args"]["latent_size"]
    assert model.encoder.use_next_obs == raw["encoder"]["init_args"]["use_next_obs"]
    assert model.sac.reward_scale == raw["sac"]["reward_scale"]
    assert model.collect_cfg.num_initial_steps == raw["collect"]["num_initial_steps"]
    # The budget is oyster's: the initial data plus 500 iterations.
    per_iter = model.iteration_env_steps(1)
    assert model.total_env_steps == model.iteration_env_steps(0) - per_iter + 500 * per_iter
    assert model.eval_cfg.every_env_steps == per_iter  # oyster evaluates after every iteration


def test_pearl_values_of_oyster_cheetah_vel() -> None:
    """oyster configs/cheetah-vel.json over configs/default.py."""
    m = cli_model("--config", "pearl_cheetah_vel.yaml").model
    assert (m.meta_batch, m.batch_size, m.embedding_batch_size, m.updates_per_iter) == (16, 256, 100, 2000)
    c = m.collect_cfg
    assert (c.num_initial_steps, c.num_steps_prior, c.num_steps_posterior, c.num_extra_rl_steps_posterior) == (
        2000, 400, 0, 600)
    assert (m.adapt_cfg.num_steps_per_eval, m.adapt_cfg.num_exp_traj_eval, m.eval_cfg.episodes) == (600, 2, 1)
    assert (m.sac.reward_scale, m.kl_lambda, m.sac.tau) == (5.0, 0.1, 0.005)


@pytest.mark.parametrize("name", ["point_robot.yaml", "pearl_point_robot.yaml"])
def test_debug_overlay_works_on_every_method(name: str) -> None:
    m = cli_model("--config", name, "--config", "debug.yaml").model
    assert m.total_env_steps == 600 and m.updates_per_iter == 4 and m.eval_cfg.num_tasks == 1
