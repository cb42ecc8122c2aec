"""Test-suite hygiene: no W&B network, quiet TorchRL, and a builder that goes through the CLI."""

from __future__ import annotations

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")

from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def cli_model(*args: str):
    """Build the model of ``python -m metarl fit ARGS`` without running it (hparams stay dicts, as
    in a real run, so checkpoints load with weights_only=True)."""
    import sys

    from metarl.cli import TRAINER_DEFAULTS, MetaRLCLI
    from metarl.config_files import resolve_argv
    from metarl.training.module import MetaTrainModule

    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when it sees pytest's own arguments
    try:
        cli = MetaRLCLI(
            MetaTrainModule,
            subclass_mode_model=True,
            trainer_defaults=TRAINER_DEFAULTS,
            parser_kwargs={"parser_mode": "omegaconf+"},
            save_config_callback=None,
            args=resolve_argv(list(args)),
            run=False,
        )
    finally:
        sys.argv = argv
    return cli


@pytest.fixture
def tiny_cli() -> Callable[..., object]:
    """The point robot with the debug overlay, plus any overrides."""

    def build(*overrides: str):
        return cli_model("--config", "point_robot.yaml", "--config", "debug.yaml", *overrides)

    return build
