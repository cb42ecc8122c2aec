"""``python -m metarl fit|test|validate --config ...``: a LightningCLI over the methods' MetaTrainModule subclasses.

What a run's end prints and which exit code it gives (bad input, a failed or stopped run) is
exits.py's; the one-line messages for bad input are cli_errors.py's.
"""

from __future__ import annotations

import os
import sys
from argparse import ArgumentError
from datetime import timedelta
from typing import Any

from jsonargparse import set_parsing_settings
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from metarl.cli_errors import ConfigError, describe_instantiation_error, describe_parse_error, innermost_error
from metarl.config_files import resolve_argv
from metarl.console import apply_threads, quiet_third_party
from metarl.exits import (
    BudgetNotReached,
    install_stop_handlers,
    memory_message,
    one_line_errors,
    restore_stop_handlers,
    set_phase,
    stop_reason,
)
from metarl.tracking import (
    HEALTH,
    apply_wandb_mode,
    finish_wandb,
    guard_wandb,
    place_sweep_run,
    start_wandb,
    watch_log_handler_errors,
)
from metarl.training.atomic_io import AtomicCheckpointIO
from metarl.training.callbacks import MetaCheckpoint
from metarl.training.metrics_csv import install_csv_writers
from metarl.training.module import MetaTrainModule
from metarl.training.progress import EnvStepProgressBar, FreshStepMetrics
from metarl.training.resume import (
    LEGACY_CLASS_PATHS,
    CheckpointError,
    check_resume_run_config,
    find_last_checkpoint,
    load_checkpoint_file,
    merge_for_evaluation,
    merge_for_resume,
)
from metarl.training.run_checks import check_module, check_numbers
from metarl.training.run_console import RunConsole
from metarl.training.run_dir import continue_run, prepare_run_folders
from metarl.training.seed_args import check_checkpoint_seeds, instantiate_seeds, read_seeds

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,  # the env-step budget ends the run
    "num_sanity_val_steps": 0,  # adaptation needs meta-training data in the replay
    "log_every_n_steps": 1,  # one step is a whole meta-training iteration
    "inference_mode": False,  # adaptation in the validation loop takes gradient steps
    "enable_model_summary": False,  # the start block gives what matters; Lightning's table has 20 lines
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
        # `${trainer.default_root_dir}` (every config's logger save_dir) then resolves under fit and test alike,
        # after the command line: --trainer.default_root_dir moves a run's logs and checkpoints with it.
        set_parsing_settings(omegaconf_absolute_to_relative_paths=True)
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(MetaCheckpoint, "checkpoint")
        # The time trigger bounds what a SIGKILL (a session's end, a preempted job) can lose of a long run.
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_updates": 10_000,
                             "checkpoint.train_time_interval": timedelta(minutes=30)})
        parser.add_argument(
            "--threads", type=int | None, default=None,
            help="torch intra-op threads (null: OMP_NUM_THREADS if set, else 1: measured fastest for these nets "
                 "on shared 2-core machines; see README)",
        )
        parser.add_argument(
            "--seeds", type=list[int] | int | str | None, default=None,
            help="train these seeds in one process, e.g. 0,1,2 (each as model.init_args.seed=k alone would; "
                 "metrics per seed and their mean; see README). One seed is a plain run with that seed",
        )

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
        self._seeds = read_seeds(self.config[sub])
        self._restart = False
        if sub == "fit":
            self._restart = self._resume_requeued_sweep_run(self.config[sub])
        ckpt_path = self.config[sub].get("ckpt_path")
        if ckpt_path == "last":
            ckpt_path = self._resolve_last(self.config[sub], sub)
            self._restart = self._restart or ckpt_path is None
        if ckpt_path is None:
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
            continue_run(self.config[sub], ckpt_path, ckpt)  # the same log folder and W&B run
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
        self._seeds = check_checkpoint_seeds(self.config[sub], sub, self._seeds, ckpt_path, ckpt, hparams, config_args)
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
    def _resume_requeued_sweep_run(cfg: Any) -> bool:
        """A sweep run resumes from its own folder's last.ckpt; True when it has none (a new start)."""
        ckpt_dir = place_sweep_run(cfg)
        if ckpt_dir is None:
            return False
        if not cfg.get("ckpt_path") and (ckpt_dir / "last.ckpt").is_file():
            cfg["ckpt_path"] = str(ckpt_dir / "last.ckpt")
            print(f"metarl: this sweep run was interrupted before; resuming from {cfg['ckpt_path']}", file=sys.stderr)
            return False
        return not cfg.get("ckpt_path")

    def before_instantiate_classes(self) -> None:
        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else self.config
        apply_wandb_mode(cfg.get("trainer", {}).get("logger"))
        model = cfg.get("model")
        check_numbers(getattr(model, "init_args", None) or {}, "model.init_args")
        try:
            self.threads = apply_threads(cfg.get("threads"))
        except ValueError as err:
            raise ConfigError(str(err)) from err

    def instantiate_classes(self) -> None:
        try:
            if getattr(self, "_seeds", None):
                instantiate_seeds(self, self._seeds)
            else:
                super().instantiate_classes()
        except (ValueError, TypeError, KeyError, ArgumentError, RuntimeError, MemoryError) as err:
            inner = innermost_error(err)
            if isinstance(inner, MemoryError) or "can't allocate memory" in str(inner) or \
                    "DefaultCPUAllocator" in str(inner):
                raise ConfigError(memory_message(str(inner))) from err
            # metarl's checks raise ValueError; anything else from a constructor is a bug: traceback.
            if not isinstance(inner, (ValueError, ArgumentError)):
                raise
            raise ConfigError(describe_instantiation_error(err)) from err

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError, ImportError) as err:
            raise ConfigError(f"trainer: {describe_instantiation_error(err)}") from err
        # Atomic checkpoint files; set here rather than in the config so the saved config stays plain.
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        seed = self._get(self.config, "seed_everything")
        checkpoint = next((c for c in trainer.callbacks if isinstance(c, MetaCheckpoint)), None)
        if checkpoint is not None:
            checkpoint.seed_everything = seed  # checked when the run resumes
        if self.subcommand == "fit":
            self._prepare_fit(trainer, checkpoint)
        guard_wandb(trainer.loggers, lambda: getattr(self.model, "env_steps", None))
        start_wandb(trainer.loggers)
        return trainer

    def _prepare_fit(self, trainer: Any, checkpoint: MetaCheckpoint | None) -> None:
        """Before anything is written: contradicting settings, the run's folders, the console."""
        warnings = dict.fromkeys(w for m in getattr(self.model, "members", [self.model]) for w in check_module(m))
        for warning in warnings:
            print(f"metarl: warning: {warning}", file=sys.stderr)
        resume_from = self.config["fit"].get("ckpt_path")
        ckpt_dir = None
        if checkpoint is not None:
            ckpt_dir = prepare_run_folders(trainer, checkpoint, resume_from, getattr(self, "_restart", False))
        install_csv_writers(trainer.loggers, append=resume_from is not None)
        callbacks = trainer.callbacks
        for i, cb in enumerate(callbacks):  # Lightning's default bar counts batches: count env steps instead
            if type(cb).__name__ in ("TQDMProgressBar", "RichProgressBar") and type(cb).__module__.startswith(
                    ("pytorch_lightning.", "lightning.")):
                callbacks[i] = EnvStepProgressBar()
        callbacks.insert(0, FreshStepMetrics())
        self.console = RunConsole(getattr(self, "threads", (1, "")), resume_from, ckpt_dir)
        callbacks.append(self.console)

    def after_fit(self) -> None:
        """A Trainer limit (max_epochs, max_steps, max_time, ...) can end fit before the budget."""
        set_phase("finishing")
        steps, total = getattr(self.model, "env_steps", None), getattr(self.model, "total_env_steps", None)
        if not isinstance(steps, int) or not isinstance(total, int) or steps >= total:
            return
        trainer = self.trainer
        cb = trainer.checkpoint_callback
        path = getattr(cb, "last_model_path", "") or getattr(cb, "best_model_path", "")
        raise BudgetNotReached(f"training stopped at env step {steps:,} of the budget total_env_steps={total:,}: "
                               f"{stop_reason(trainer)}", path)


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    original = list(argv)
    quiet_third_party()
    watch_log_handler_errors()
    HEALTH.__init__()  # a fresh record per run (main may run several times in one process)
    old_handlers = install_stop_handlers()
    try:
        if os.environ.get("METARL_TRACEBACK"):
            _run(argv, from_command_line)
            return None
        with one_line_errors(original):
            cli = _run(argv, from_command_line)
            finish_wandb()
            broken = HEALTH.summary()
            if broken:
                print(broken, file=sys.stderr)
            elif getattr(cli, "console", None) is not None:
                for line in cli.console.closing_lines:
                    print(line)
    finally:
        restore_stop_handlers(old_handlers)


def _run(argv: list[str], from_command_line: bool) -> MetaRLCLI:
    argv = resolve_argv(argv)
    if from_command_line:
        sys.argv = [sys.argv[0], *argv]  # LightningCLI reads sys.argv itself when args is None
    if argv and argv[0] in ("test", "validate"):
        set_phase("the meta-test" if argv[0] == "test" else "validation")
    return MetaRLCLI(
        MetaTrainModule,
        subclass_mode_model=True,
        trainer_defaults=TRAINER_DEFAULTS,
        parser_kwargs={"parser_mode": "omegaconf+"},
        save_config_kwargs={"overwrite": True},
        args=None if from_command_line else argv,
    )
