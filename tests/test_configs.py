"""Every shipped experiment config instantiates, carries its paper values, and the bare-name lookup works."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import CONFIGS, cli_model

EXPERIMENTS = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name != "debug.yaml")


def test_the_design_lists_every_family_config() -> None:
    expected = {"ant_fb", "ant_goal", "cheetah_fb", "cheetah_vel", "humanoid_dir", "walker_params", "point_robot"}
    assert expected <= {name.removesuffix(".yaml") for name in EXPERIMENTS}


@pytest.mark.parametrize("name", EXPERIMENTS)
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
