"""``python -m metarl fit|test|validate --config ...``: a LightningCLI over the methods MetaTrainModule subclasses.

Errors of the user's making (a bad key or value, a missing config, an unusable checkpoint or
folder, a run that diverged, a full disk) are one line on stderr and a non-zero exit code, with no
traceback unless ``METARL_TRACEBACK=1``. Exit codes: 2 bad input, 1 training failed, 3 training
stopped before its budget (a Trainer limit), 128 + signal number when a signal stopped the run
(after writing a checkpoint, once training has started); see docs/reliability.md.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import sys
from argparse import ArgumentError
from datetime import timedelta
from typing import Any

from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from metarl.cli_errors import ConfigError, describe_instantiation_error, describe_parse_error, innermost_error
from metarl.config_files import resolve_argv
from metarl.console import apply_threads, quiet_third_party
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
from metarl.training.run_dir import continue_run, install_csv_writers, prepare_run_folders
from metarl.training.seed_args import check_checkpoint_seeds, instantiate_seeds, read_seeds
from metarl.training.stop_signal import RunInterrupted

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,  # the env-step budget ends the run
    "num_sanity_val_steps": 0,  # adaptation needs meta-training data in the replay
    "log_every_n_steps": 1,  # one step is a whole meta-training iteration
    "inference_mode": False,  # adaptation in the validation loop takes gradient steps
    "enable_model_summary": False,  # the start block gives what matters; Lightning's table has 20 lines
}


class BudgetNotReached(Exception):
    """fit returned before ``total_env_steps`` (a Trainer limit stopped it): exit code 3."""


class Stopped(BaseException):
    """A stop signal before training started or after it ended: nothing to save (BaseException: no
    ``except Exception`` of a library in between swallows it)."""

    def __init__(self, signum: int, phase: str) -> None:
        self.signum, self.phase = signum, phase
        super().__init__(signum)


#: Where the process is, for the message of a stop signal outside training.
_phase = {"name": "start-up"}


def _stop_handler(signum: int, frame: Any) -> None:
    raise Stopped(signum, _phase["name"])

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
                raise ConfigError(_memory_message(str(inner))) from err
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
        _phase["name"] = "finishing"
        steps, total = getattr(self.model, "env_steps", None), getattr(self.model, "total_env_steps", None)
        if not isinstance(steps, int) or not isinstance(total, int) or steps >= total:
            return
        trainer = self.trainer
        cb = trainer.checkpoint_callback
        path = getattr(cb, "last_model_path", "") or getattr(cb, "best_model_path", "")
        raise BudgetNotReached(f"training stopped at env step {steps:,} of the budget total_env_steps={total:,}: "
                               f"{_stop_reason(trainer)}", path)


def _memory_message(text: str) -> str:
    import re

    m = re.search(r"allocate (\d+) bytes", text)
    size = f" ({int(m.group(1)) / 1e9:,.1f} GB in one allocation)" if m else ""
    return (f"not enough memory to build the model{size}: the replay takes collect.replay_size x the bytes per "
            "transition (docs/reliability.md, \"Checkpoints\"); lower collect.replay_size or the net sizes")


def _stop_reason(trainer: Any) -> str:
    if trainer.max_epochs not in (None, -1) and trainer.current_epoch >= trainer.max_epochs:
        return f"trainer.max_epochs={trainer.max_epochs} ended it (an epoch is one evaluation period)"
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return (f"trainer.max_steps={trainer.max_steps} ended it (Lightning counts optimizer steps, about 1.5 per "
                "update)")
    for cb in trainer.callbacks:
        if type(cb).__name__ == "Timer" and getattr(cb, "_duration", None):
            return f"trainer.max_time ({cb._duration:.0f} s) ended it"
    if trainer.limit_train_batches not in (None, 1.0):
        return f"trainer.limit_train_batches={trainer.limit_train_batches} ended it"
    return "a Trainer limit or a callback ended it (trainer.should_stop)"


def resume_command(argv: list[str], ckpt_path: str, cwd: str | None = None) -> str:
    """The command line that resumes this run from ``ckpt_path``, valid from any folder: the same
    arguments, with ``--ckpt_path`` replaced, run in the folder this one started in (the configs'
    relative paths, e.g. ``runs/<config>``, are relative to it)."""
    cwd = cwd or os.getcwd()
    args: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = True
            continue
        if arg.startswith("--ckpt_path="):
            continue
        args.append(arg)
    path = os.path.abspath(ckpt_path) if ckpt_path else ckpt_path
    python = "python" if shutil.which("python") and os.path.realpath(shutil.which("python") or "") == \
        os.path.realpath(sys.executable) else sys.executable
    line = " ".join(shlex.quote(a) for a in [python, "-m", "metarl", *args, "--ckpt_path", path])
    return f"cd {shlex.quote(cwd)} && {line}"


def _fail(message: str, code: int) -> None:
    print(f"metarl: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def _os_error_message(err: OSError) -> str:
    what = err.filename if err.filename else "a file"
    reason = err.strerror or str(err)
    hint = ""
    if err.errno == errno.ENOSPC:
        hint = "; free some space (checkpoint and replay sizes per config: docs/reliability.md)"
    elif err.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        hint = "; choose a writable folder (trainer.default_root_dir, the logger's save_dir, checkpoint.dirpath)"
    return f"cannot write {what}: {reason}{hint}; the last complete checkpoint is unchanged"


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    original = list(argv)
    quiet_third_party()
    watch_log_handler_errors()
    HEALTH.__init__()  # a fresh record per run (main may run several times in one process)
    old_handlers = _install_stop_handlers()
    try:
        if os.environ.get("METARL_TRACEBACK"):
            _run(argv, from_command_line)
            return None
        try:
            cli = _run(argv, from_command_line)
            finish_wandb()
            broken = HEALTH.summary()
            if broken:
                print(broken, file=sys.stderr)
            elif getattr(cli, "console", None) is not None:
                for line in cli.console.closing_lines:
                    print(line)
        except (ConfigError, CheckpointError, MisconfigurationException) as err:
            _fail(str(err), 2)
        except FloatingPointError as err:
            _fail(str(err), 1)
        except BudgetNotReached as err:
            message, path = err.args
            resume = f"; continue with: {resume_command(original, path)}" if path else ""
            _fail(f"{message}{resume}", 3)
        except RunInterrupted as stop:
            print(f"metarl: {stop}; resume with: {resume_command(original, stop.path)}", file=sys.stderr)
            sys.exit(128 + stop.signum)
        except Stopped as stop:
            name = signal.Signals(stop.signum).name
            what = {"start-up": "during start-up, before training started: nothing to save yet",
                    "finishing": "after training ended: its checkpoint is written",
                    }.get(stop.phase, f"during {stop.phase}: nothing to save")
            print(f"metarl: stopped by {name} {what}", file=sys.stderr)
            sys.exit(128 + stop.signum)
        except KeyboardInterrupt:
            print("metarl: interrupted", file=sys.stderr)
            sys.exit(128 + signal.SIGINT)
        except OSError as err:
            _fail(_os_error_message(err), 1)
    finally:
        _restore_handlers(old_handlers)


def _install_stop_handlers() -> dict[int, Any]:
    """Until training starts (MetaCheckpoint then takes SIGTERM/SIGINT over), a stop signal stops
    at once with one line: there is nothing to save."""
    import threading

    _phase["name"] = "start-up"
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _stop_handler) for s in (signal.SIGTERM, signal.SIGINT)}


def _restore_handlers(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _run(argv: list[str], from_command_line: bool) -> MetaRLCLI:
    argv = resolve_argv(argv)
    if from_command_line:
        sys.argv = [sys.argv[0], *argv]  # LightningCLI reads sys.argv itself when args is None
    if argv and argv[0] in ("test", "validate"):
        _phase["name"] = "the meta-test" if argv[0] == "test" else "validation"
    return MetaRLCLI(
        MetaTrainModule,
        subclass_mode_model=True,
        trainer_defaults=TRAINER_DEFAULTS,
        parser_kwargs={"parser_mode": "omegaconf+"},
        save_config_kwargs={"overwrite": True},
        args=None if from_command_line else argv,
    )
