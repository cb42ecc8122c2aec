"""``python -m metarl fit|test|validate --config ...``: a LightningCLI over MetaRLBase subclasses."""

from __future__ import annotations

import os
import sys
from typing import Any

from pytorch_lightning.cli import LightningCLI

from metarl.config_files import resolve_argv
from metarl.training.base import MetaRLBase
from metarl.training.callbacks import AtomicCheckpointIO, MetaCheckpoint
from metarl.training.resume import load_checkpoint_file, merge_for_resume

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,  # the env-step budget ends the run
    "num_sanity_val_steps": 0,  # adaptation needs meta-training data in the replay
    "log_every_n_steps": 1,  # one step is a whole meta-training iteration
    "inference_mode": False,  # adaptation in the validation loop takes gradient steps
}


class MetaRLCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(MetaCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_updates": 10_000})

    def _parse_ckpt_path(self) -> None:
        """Checks the checkpoint and keeps the user's resumable overrides (see training/resume.py)."""
        sub = self.config.get("subcommand")
        if not sub:
            return
        ckpt_path = self.config[sub].get("ckpt_path")
        if not ckpt_path or ckpt_path in ("last", "best", "hpc", "registry"):
            return
        ckpt = load_checkpoint_file(ckpt_path)
        hparams = dict(ckpt["hyper_parameters"])
        hparams.pop("_instantiator", None)
        class_path = hparams.pop("_class_path", None)
        model_cfg = self.config[sub]["model"]
        config_args = model_cfg.init_args.as_dict() if hasattr(model_cfg, "init_args") else {}
        merged = merge_for_resume(ckpt_path, hparams, config_args)
        model = {"class_path": class_path or model_cfg.class_path, "init_args": merged}
        self.config = self.parser.parse_object({sub: {"model": model}}, self.config)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer = super().instantiate_trainer(**kwargs)
        # Atomic checkpoint files; set here rather than in the config so the saved config stays plain.
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def before_instantiate_classes(self) -> None:
        os.environ.setdefault("WANDB_MODE", "offline")  # no account or network needed; `wandb sync` later


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("METARL_TRACEBACK"))
    try:
        argv = resolve_argv(argv)
        if from_command_line:
            sys.argv = [sys.argv[0], *argv]  # LightningCLI reads sys.argv itself when args is None
        MetaRLCLI(
            MetaRLBase,
            subclass_mode_model=True,
            trainer_defaults=TRAINER_DEFAULTS,
            parser_kwargs={"parser_mode": "omegaconf+"},
            save_config_kwargs={"overwrite": True},
            args=None if from_command_line else argv,
        )
    except (ValueError, FileNotFoundError, FloatingPointError, KeyError, TypeError) as err:
        if debug:
            raise
        print(f"metarl: error: {err}", file=sys.stderr)
        print("metarl: set METARL_TRACEBACK=1 for the full traceback", file=sys.stderr)
        sys.exit(2)
