"""W&B sweeps: the command line a ``wandb agent`` builds reaches the model, every sweep run gets its
own folder, and a requeued (pre-empted) sweep run resumes from its own checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CONFIGS, cli_model
from tests.resume_support import assert_same_state, counters, fit, load, straight_run  # noqa: F401

SWEEPS = sorted(p.name for p in (CONFIGS / "sweeps").glob("*.yaml"))


def agent_argv(sweep: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """The argv ``wandb agent`` runs for these parameter values, built by wandb's own code
    (``wandb_agent.Agent._command_run``, non-Windows branch)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    command = {"args": {k: {"value": v} for k, v in values.items()}, "program": sweep.get("program")}
    sweep_vars = sweep_utils.create_sweep_command_args(command)
    sweep_vars.update(interpreter=["python"], program=[command["program"]], env=["/usr/bin/env"])
    argv: list[str] = []
    for chunk in sweep_utils.create_sweep_command(list(sweep["command"])):
        chunk = str(chunk)
        argv += (sweep_vars.get(chunk[2:-1]) or []) if chunk.startswith("${") and chunk.endswith("}") else [chunk]
    return argv


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def test_the_issue_asks_for_these_sweeps() -> None:
    assert {"ant_fb.yaml", "cheetah_vel.yaml"} <= set(SWEEPS)
    for name in ("ant_fb.yaml", "cheetah_vel.yaml"):
        params = set(yaml.safe_load((CONFIGS / "sweeps" / name).read_text())["parameters"])
        assert {"model.init_args.actor.init_args.lr", "model.init_args.critic.init_args.lr",
                "model.init_args.adapt.beta_clip", "model.init_args.history_len",
                "model.init_args.adapt.lambda_mode", "model.init_args.seed"} <= params


@pytest.mark.parametrize("name", SWEEPS)
def test_agent_command_reaches_the_model(name: str) -> None:
    sweep = yaml.safe_load((CONFIGS / "sweeps" / name).read_text())
    command = [str(c) for c in sweep["command"]]
    experiment = yaml.safe_load((CONFIGS / command[command.index("--config") + 1]).read_text())
    # For each parameter a value other than the experiment config's: the model can only get it from argv.
    values = {key: next(v for v in spec["values"] if v != _lookup(experiment, key))
              for key, spec in sweep["parameters"].items()}
    argv = agent_argv(sweep, values)
    assert argv[:5] == ["/usr/bin/env", "python", "-m", "metarl", "fit"]
    assert f"--model.init_args.adapt.beta_clip={values['model.init_args.adapt.beta_clip']}" in argv

    model = cli_model(*argv[5:]).model  # what `python -m metarl fit ...` would train
    assert model.history_len == values["model.init_args.history_len"]
    assert model.seed == values["model.init_args.seed"]
    assert model.adapt_cfg.beta_clip == values["model.init_args.adapt.beta_clip"]
    assert model.adapt_cfg.lambda_mode == values["model.init_args.adapt.lambda_mode"]
    critic_opt, actor_opt = model.configure_optimizers()
    assert actor_opt.param_groups[0]["lr"] == values["model.init_args.actor.init_args.lr"]
    assert critic_opt.param_groups[0]["lr"] == values["model.init_args.critic.init_args.lr"]


def test_requeued_sweep_run_resumes_from_its_own_folder(
    straight_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("WANDB_SWEEP_ID", "sw1")
    monkeypatch.setenv("WANDB_RUN_ID", "run7")
    # The agent's command: no --ckpt_path, no checkpoint folder (resume_support.fit sets one: undone).
    command = [f"--trainer.default_root_dir={tmp_path}", "--checkpoint.dirpath=null"]
    ckpt = tmp_path / "sweeps" / "sw1" / "run7" / "checkpoints" / "last.ckpt"

    # The first attempt is pre-empted (SIGTERM) at iteration 6 ...
    signal_at = {"class_path": "tests.test_resume.SignalAt", "init_args": {"iteration": 6, "signum": 15}}
    with pytest.raises(SystemExit) as stop:
        fit(tmp_path / "attempt1", *command, f"--trainer.callbacks+={json.dumps(signal_at)}")
    assert stop.value.code == 128 + 15 and counters(load(ckpt))["iteration"] == 6

    # ... and W&B requeues it: the same command continues the run where it stopped.
    fit(tmp_path / "attempt2", *command)
    assert_same_state(load(straight_run / "ckpt" / "last.ckpt"), load(ckpt))


def test_sweep_runs_get_separate_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def checkpoint_dir(run_id: str) -> Path:
        monkeypatch.setenv("WANDB_SWEEP_ID", "sw1")
        monkeypatch.setenv("WANDB_RUN_ID", run_id)
        cfg = cli_model("--config", "point_robot.yaml", f"--trainer.default_root_dir={tmp_path}").config
        from metarl.tracking import place_sweep_run

        folder = place_sweep_run(cfg)
        csv = next(lg for lg in cfg["trainer.logger"] if lg.class_path.endswith("CSVLogger"))
        assert csv.init_args.version == run_id
        return folder

    assert checkpoint_dir("a") == tmp_path / "sweeps" / "sw1" / "a" / "checkpoints"
    assert checkpoint_dir("b") != checkpoint_dir("a")


@pytest.mark.parametrize(("environ", "offline", "mode"), [
    ({}, True, None),  # offline by default: the shipped configs say so, nothing overrides it
    ({"WANDB_MODE": "online"}, False, "online"),  # the user asks
    ({"WANDB_SWEEP_ID": "sw1"}, False, "online"),  # a sweep needs the server
    ({"WANDB_SWEEP_ID": "sw1", "WANDB_MODE": "offline"}, True, "offline"),  # unless the user says otherwise
    ({"WANDB_MODE": "disabled"}, False, "disabled"),  # offline=True would turn "disabled" into "dryrun"
])
def test_wandb_mode(environ: dict[str, str], offline: bool, mode: str | None) -> None:
    from metarl.tracking import apply_wandb_mode

    shipped = yaml.safe_load((CONFIGS / "ant_fb.yaml").read_text())["trainer"]["logger"]
    wandb_cfg = next(lg for lg in shipped if lg["class_path"].endswith("WandbLogger"))
    assert wandb_cfg["init_args"]["offline"] is True
    environ = dict(environ)
    apply_wandb_mode(shipped, environ)
    assert wandb_cfg["init_args"]["offline"] is offline
    assert environ.get("WANDB_MODE") == mode
