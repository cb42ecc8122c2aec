"""``python -m metarl fit|test|validate --config ...``: a LightningCLI over MetaRLBase subclasses."""

from __future__ import annotations

import os
import sys
from typing import Any

from pytorch_lightning.cli import LightningCLI

from metarl.config_files import resolve_argv
from metarl.training.base import MetaRLBase
from metarl.training.callbacks import AtomicCheckpointIO, MetaCheckpoint

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,  # the env-step budget ends the run
    "num_sanity_val_steps": 0,  # adaptation needs meta-training data in the replay
    "log_every_n_steps": 1,  # one step is a whole meta-training iteration
    "inference_mode": False,  # adaptation in the validation loop takes gradient steps
    "plugins": [AtomicCheckpointIO()],
}


class MetaRLCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(MetaCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_updates": 10_000})

    def before_instantiate_classes(self) -> None:
        os.environ.setdefault("WANDB_MODE", "offline")  # no account or network needed; `wandb sync` later


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("METARL_TRACEBACK"))
    try:
        argv = resolve_argv(argv)
        MetaRLCLI(
            MetaRLBase,
            subclass_mode_model=True,
            trainer_defaults=TRAINER_DEFAULTS,
            parser_kwargs={"parser_mode": "omegaconf+"},
            save_config_kwargs={"overwrite": True},
            args=argv,
        )
    except (ValueError, FileNotFoundError, FloatingPointError, KeyError, TypeError) as err:
        if debug:
            raise
        print(f"metarl: error: {err}", file=sys.stderr)
        print("metarl: set METARL_TRACEBACK=1 for the full traceback", file=sys.stderr)
        sys.exit(2)
