"""``python -m metarl fit|test|validate --config ...``: a LightningCLI over the methods MetaTrainModule subclasses.

Errors of the user's making (a bad key or value, a missing config, an unusable checkpoint, a run
that diverged) are one line on stderr and a non-zero exit code, with no traceback unless
``METARL_TRACEBACK=1``. Exit codes: 2 bad input, 1 training failed, 128 + signal number when a
signal stopped the run after writing a checkpoint (see docs/reliability.md).
"""

from __future__ import annotations

import os
import signal
import sys
from argparse import ArgumentError
from typing import Any

from pytorch_lightning.cli import LightningCLI

from metarl.cli_errors import ConfigError, describe_instantiation_error, describe_parse_error, innermost_error
from metarl.config_files import resolve_argv
from metarl.tracking import apply_wandb_mode, place_sweep_run, start_wandb
from metarl.training.callbacks import AtomicCheckpointIO, MetaCheckpoint, RunInterrupted
from metarl.training.module import MetaTrainModule
from metarl.training.resume import (
    LEGACY_CLASS_PATHS,
    CheckpointError,
    check_resume_run_config,
    find_last_checkpoint,
    load_checkpoint_file,
    merge_for_evaluation,
    merge_for_resume,
)

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,  # the env-step budget ends the run
    "num_sanity_val_steps": 0,  # adaptation needs meta-training data in the replay
    "log_every_n_steps": 1,  # one step is a whole meta-training iteration
    "inference_mode": False,  # adaptation in the validation loop takes gradient steps
}

#: Lightning's other special ``--ckpt_path`` values resolve to a file only at fit time, after the
#: checks below would have run; metarl asks for the file itself. ``last`` metarl resolves itself.
SPECIAL_CKPT_PATHS = ("best", "hpc", "registry")


class MetaRLCLI(LightningCLI):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The nets own their optimizers (configure_optimizers): a --optimizer would be ignored.
        kwargs.setdefault("auto_configure_optimizers", False)
        super().__init__(*args, **kwargs)

    def init_parser(self, **kwargs: Any) -> Any:
        # Errors are raised (and printed as one line by main) instead of usage + exit; no
        # abbreviated options: --trainer.max_epoch is a typo to report, not max_epochs.
        kwargs.setdefault("exit_on_error", False)
        kwargs.setdefault("allow_abbrev", False)
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(MetaCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_updates": 10_000})

    def parse_arguments(self, parser: Any, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            raise ConfigError(describe_parse_error(err, self._subcommand_parser(args))) from err

    def _subcommand_parser(self, args: Any) -> Any:
        argv = sys.argv[1:] if args is None else args
        sub = next((a for a in argv if isinstance(a, str) and a in self.subcommands()), None)
        try:
            return self._parser(sub) if sub else self.parser
        except Exception:
            return self.parser

    def _parse_ckpt_path(self) -> None:
        """Checks the checkpoint and keeps the user's resumable overrides (see training/resume.py)."""
        sub = self.config.get("subcommand")
        if not sub:
            return
        if sub == "fit":
            self._resume_requeued_sweep_run(self.config[sub])
        ckpt_path = self.config[sub].get("ckpt_path")
        if ckpt_path == "last":
            ckpt_path = self._resolve_last(self.config[sub], sub)
        if not ckpt_path:
            return
        if ckpt_path in SPECIAL_CKPT_PATHS:
            raise CheckpointError(
                f"--ckpt_path {ckpt_path} is not supported: give the checkpoint file, e.g. "
                "--ckpt_path runs/<experiment>/.../checkpoints/last.ckpt"
            )
        ckpt = load_checkpoint_file(ckpt_path)
        continues_run = sub == "fit"
        if continues_run:
            check_resume_run_config(ckpt_path, ckpt, self.config[sub].get("seed_everything"))
        hparams = dict(ckpt["hyper_parameters"])
        hparams.pop("_instantiator", None)
        class_path = hparams.pop("_class_path", None)
        class_path = LEGACY_CLASS_PATHS.get(class_path, class_path)
        model_cfg = self.config[sub]["model"]
        wanted_class = getattr(model_cfg, "class_path", None)
        if class_path and wanted_class and class_path != wanted_class:
            raise CheckpointError(
                f"checkpoint {ckpt_path} holds a {class_path}, but the config asks for model.class_path {wanted_class}"
            )
        config_args = model_cfg.init_args.as_dict() if hasattr(model_cfg, "init_args") else {}
        if continues_run:
            merged = merge_for_resume(ckpt_path, hparams, config_args)
        else:  # test / validate: e.g. a seed-2 run is tested with the shipped YAML as it is
            merged, note = merge_for_evaluation(ckpt_path, hparams, config_args)
            if note:
                print(f"metarl: {note}", file=sys.stderr)
        model = {"class_path": class_path or wanted_class, "init_args": merged}
        self.config = self.parser.parse_object({sub: {"model": model}}, self.config)

    @staticmethod
    def _resolve_last(cfg: Any, sub: str) -> str | None:
        """``--ckpt_path last``: this experiment's newest last.ckpt. When it has none, ``fit`` starts
        a new run (the same command line serves a first start and every requeue); ``test`` and
        ``validate`` have nothing to evaluate."""
        root, last = find_last_checkpoint(cfg)
        if last is None and sub != "fit":
            raise CheckpointError(f"--ckpt_path last: no last.ckpt below {root} to {sub}")
        if last is None:
            print(f"metarl: --ckpt_path last: no last.ckpt below {root}; starting a new run", file=sys.stderr)
            cfg["ckpt_path"] = None
            return None
        print(f"metarl: --ckpt_path last: resuming from {last}", file=sys.stderr)
        cfg["ckpt_path"] = str(last)
        return str(last)

    @staticmethod
    def _resume_requeued_sweep_run(cfg: Any) -> None:
        ckpt_dir = place_sweep_run(cfg)
        if ckpt_dir is not None and not cfg.get("ckpt_path") and (ckpt_dir / "last.ckpt").is_file():
            cfg["ckpt_path"] = str(ckpt_dir / "last.ckpt")
            print(f"metarl: this sweep run was interrupted before; resuming from {cfg['ckpt_path']}", file=sys.stderr)

    def before_instantiate_classes(self) -> None:
        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else self.config
        apply_wandb_mode(cfg.get("trainer", {}).get("logger"))

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, KeyError, ArgumentError) as err:
            # metarl's checks raise ValueError; anything else from a constructor is a bug: traceback.
            if not isinstance(innermost_error(err), (ValueError, ArgumentError)):
                raise
            raise ConfigError(describe_instantiation_error(err)) from err

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer = super().instantiate_trainer(**kwargs)
        # Atomic checkpoint files; set here rather than in the config so the saved config stays plain.
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        seed = self._get(self.config, "seed_everything")
        for callback in trainer.callbacks:
            if isinstance(callback, MetaCheckpoint):
                callback.seed_everything = seed  # checked when the run resumes
        start_wandb(trainer.loggers)
        return trainer


def _fail(message: str, code: int) -> None:
    print(f"metarl: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("METARL_TRACEBACK"):
        return _run(argv, from_command_line)
    try:
        _run(argv, from_command_line)
    except (ConfigError, CheckpointError) as err:
        _fail(str(err), 2)
    except FloatingPointError as err:
        _fail(str(err), 1)
    except RunInterrupted as stop:
        print(f"metarl: {stop}; resume with --ckpt_path {stop.path}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except KeyboardInterrupt:
        print("metarl: interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)


def _run(argv: list[str], from_command_line: bool) -> None:
    argv = resolve_argv(argv)
    if from_command_line:
        sys.argv = [sys.argv[0], *argv]  # LightningCLI reads sys.argv itself when args is None
    MetaRLCLI(
        MetaTrainModule,
        subclass_mode_model=True,
        trainer_defaults=TRAINER_DEFAULTS,
        parser_kwargs={"parser_mode": "omegaconf+"},
        save_config_kwargs={"overwrite": True},
        args=None if from_command_line else argv,
    )
