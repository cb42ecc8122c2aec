"""Bad input: one line ``metarl: error: ...`` naming the key or value and what is allowed, exit code
2, no traceback, and no checkpoint touched."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl

from tests.resume_support import TINY, cli_env, run_cli, straight_run  # noqa: F401

CASES = {
    # unknown keys, with a did-you-mean
    "unknown-key": (["--model.init_args.histroy_len=3"],
                    "unknown key model.init_args.histroy_len; did you mean model.init_args.history_len?"),
    "unknown-short-key": (["--model.histroy_len=3"], "did you mean model.init_args.history_len?"),
    "unknown-nested-key": (["--model.init_args.adapt.beta_clipp=1"], "did you mean model.init_args.adapt.beta_clip"),
    "unknown-net-key": (["--model.init_args.actor.init_args.lrr=0.1"],
                        "unknown key model.init_args.actor.init_args.lrr; "
                        "did you mean model.init_args.actor.init_args.lr?"),
    "unknown-section": (["--chekpoint.every_n_updates=3"], "did you mean checkpoint.every_n_updates"),
    "abbreviated-key": (["--trainer.max_epoch=3"], "unknown key trainer.max_epoch; did you mean trainer.max_epochs"),
    "unknown-key-in-file": (["--config", "{typo_yaml}"],
                            "unknown key trainer.max_epoch; did you mean trainer.max_epochs"),
    "no-close-key": (["--zzz=1"], "unknown key zzz; allowed: checkpoint, ckpt_path, config"),
    "optimizer-key": (["--optimizer=Adam"], "unknown key optimizer"),  # the nets own their optimizers
    # wrong types
    "wrong-type": (["--model.init_args.batch_size=abc"], "model.init_args.batch_size: expected int, got abc"),
    "wrong-type-optional": (["--trainer.max_epochs=ten"], "trainer.max_epochs: expected int or null, got ten"),
    "wrong-type-float": (["--model.init_args.td3.gamma=high"], "model.init_args.td3.gamma: expected float, got high"),
    # out-of-range values
    "negative-lr": (["--model.init_args.critic.init_args.lr=-0.001"], "lr must be > 0, got -0.001"),
    "zero-history": (["--model.init_args.history_len=0"], "history_len must be >= 1, got 0"),
    "eval-overrides-that-change-train-tasks": (
        ['--model.init_args.eval.family_overrides={{"seed": 3}}'],  # braces doubled: str.format
        "eval.family_overrides {{'seed': 3}} change the train tasks of point-robot, not only its eval tasks"),
    "zero-beta-clip": (["--model.init_args.adapt.beta_clip=0"], "adapt.beta_clip must be > 0, got 0"),
    "negative-beta-clip": (["--model.init_args.adapt.beta_clip=-1"], "adapt.beta_clip must be > 0, got -1"),
    "gamma-above-one": (["--model.init_args.td3.gamma=1.5"], "td3.gamma must be in [0, 1], got 1.5"),
    "zero-policy-freq": (["--model.init_args.td3.policy_freq=0"], "td3.policy_freq must be >= 1, got 0"),
    "lambda-mode": (["--model.init_args.adapt.lambda_mode=half"], "adapt.lambda_mode must be one of ('ess', 'fixed')"),
    "zero-checkpoint-interval": (["--checkpoint.every_n_updates=0"], "checkpoint.every_n_updates must be >= 1"),
    # unknown names
    "unknown-family": (["--model.init_args.family=point-robt"],
                       "unknown task family 'point-robt'; did you mean 'point-robot'? known families: "),
    "missing-config": (["--config", "no_such_experiment.yaml"],
                       "config 'no_such_experiment.yaml' not found: it is not a file, nor a shipped config; "
                       "shipped configs: ant_fb.yaml"),
    # overrides that a resumed run cannot apply are refused, never ignored
    "resume-changed-lr": (["--ckpt_path={ckpt}", "--model.init_args.actor.init_args.lr=0.5"],
                          "only total_env_steps, eval, adapt may change on resume "
                          "(start a new run to change the rest): actor.init_args.lr: checkpoint 0.001, config 0.5"),
    "resume-changed-seed": (["--ckpt_path={ckpt}", "--seed_everything=7"],
                            "with seed_everything 7: the run was seeded with 0"),
    "resume-special-path": (["--ckpt_path=best"], "--ckpt_path best is not supported: give the checkpoint file"),
    # paths of the wrong kind
    "config-is-a-folder": (["--config", "{folder}"], "config '{folder}' is a folder, not a YAML file"),
    "config-empty-path": (["--config", ""], "--config is empty: give a YAML file or a shipped config's name"),
    "ckpt-is-a-folder": (["--ckpt_path={folder}"], "checkpoint {folder} is a folder, not a checkpoint file"),
    "ckpt-is-a-folder-with-last": (["--ckpt_path={run_dir}/ckpt"], "did you mean {run_dir}/ckpt/last.ckpt?"),
    "ckpt-empty-path": (["--ckpt_path="], "--ckpt_path is empty"),
    "checkpoint-dir-is-a-file": (["--checkpoint.dirpath={a_file}"],
                                 "the checkpoint folder {a_file} cannot be created: {a_file} is a file, not a folder"),
    "log-dir-under-a-file": (['--trainer.logger={{"class_path": "pytorch_lightning.loggers.CSVLogger", '
                              '"init_args": {{"save_dir": "{a_file}/logs"}}}}'],
                             "{a_file} is a file, not a folder (on the way to {a_file}/logs"),
    # config files that are not YAML mappings, named with the problem and where it is
    "config-empty": (["--config", "{empty_yaml}"], "config {empty_yaml} is empty"),
    "config-binary": (["--config", "{binary_yaml}"], "config {binary_yaml} is not a text (UTF-8) YAML file"),
    "config-bad-yaml": (["--config", "{bad_yaml}"],
                        "config {bad_yaml} is not valid YAML at line 3, column 1: expected ',' or ']'"),
    "config-a-list": (["--config", "{list_yaml}"], "config {list_yaml} must be a YAML mapping of sections"),
    # options and values that Lightning itself rejects
    "lightning-max-steps": (["--trainer.max_steps=-5"], "trainer: `max_steps` must be a non-negative integer"),
    "lightning-limit": (["--trainer.limit_train_batches=-1"], "trainer: You have passed invalid value -1.0 for limit"),
    "lightning-strategy": (["--trainer.strategy=nonsense"], "invalid strategy name: `strategy='nonsense'`"),
    "lightning-precision": (["--trainer.precision=7"], "trainer.precision: expected typing.Literal[64, 32, 16] or"),
    # numbers no tensor holds, named by their key
    "overflowing-int": (["--model.init_args.batch_size=99999999999999999999"],
                        "model.init_args.batch_size: 99999999999999999999 is too large"),
    "zero-threads": (["--threads=0"], "threads must be >= 1 or null, got 0"),
    # settings that contradict each other or cannot train
    "replay-smaller-than-batch": (["--model.init_args.collect.replay_size=10", "--model.init_args.batch_size=5000"],
                                  "batch_size=5,000 is larger than the whole replay (1,600 transitions"),
    "full-updates-never-start": (["--model.init_args.collect.min_replay_for_full_updates=100000"],
                                 "full updates would never start"),
    "budget-all-cold-start": (["--model.init_args.collect.cold_start_steps=420"],
                              "the whole run would be random actions, with no training update"),
}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def run_dir(straight_run: Path, tmp_path: Path) -> Path:  # noqa: F811
    """A run folder with a checkpoint in it, which no bad input may touch."""
    (tmp_path / "ckpt").mkdir()
    shutil.copy(straight_run / "ckpt" / "last.ckpt", tmp_path / "ckpt" / "last.ckpt")
    (tmp_path / "typo.yaml").write_text("trainer:\n  max_epoch: 3\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "binary.yaml").write_bytes(bytes([0xFB, 0x00, 0x13, 0x88]) * 50)
    (tmp_path / "bad.yaml").write_text("trainer:\n  max_epochs: [1\n")
    (tmp_path / "list.yaml").write_text("- trainer\n- model\n")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path


def _paths(run_dir: Path) -> dict[str, Path]:
    return {"ckpt": run_dir / "ckpt" / "last.ckpt", "typo_yaml": run_dir / "typo.yaml", "run_dir": run_dir,
            "empty_yaml": run_dir / "empty.yaml", "binary_yaml": run_dir / "binary.yaml",
            "bad_yaml": run_dir / "bad.yaml", "list_yaml": run_dir / "list.yaml", "folder": run_dir / "a_folder",
            "a_file": run_dir / "a_file"}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_naming_the_problem(case: str, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from metarl.cli import main

    extra, expected = CASES[case]
    extra = [a.format(**_paths(run_dir)) for a in extra]
    expected = expected.format(**_paths(run_dir))
    before = _digest(run_dir)
    argv = [*TINY, f"--trainer.default_root_dir={run_dir}", f"--checkpoint.dirpath={run_dir / 'ckpt'}", *extra]
    saved_argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
    finally:
        sys.argv = saved_argv
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(err) == 1 and err[0].startswith("metarl: error: ") and expected in err[0], err
    assert _digest(run_dir) == before


def test_bad_input_from_the_command_line(run_dir: Path) -> None:
    # The real process: exit code, and nothing but the one error line about it on stderr.
    out = run_cli(run_dir, *TINY, f"--checkpoint.dirpath={run_dir / 'ckpt'}", "--model.init_args.adapt.beta_clip=-1")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "usage:" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert errors == ["metarl: error: adapt.beta_clip must be > 0, got -1.0"], out.stderr[-2000:]
    assert cli_env()["WANDB_MODE"] == "disabled"


def _main(argv: list[str]) -> None:
    from metarl.cli import main

    saved_argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        main(argv)
    finally:
        sys.argv = saved_argv


def test_a_read_only_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    import metarl.training.run_dir as run_dir_module

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(run_dir_module.tempfile, "mkstemp", read_only)
    with pytest.raises(SystemExit) as exit_:
        _main([*TINY, f"--trainer.default_root_dir={tmp_path}", f"--checkpoint.dirpath={tmp_path / 'ckpt'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert err == [f"metarl: error: cannot write to the checkpoint folder {tmp_path / 'ckpt'}: Read-only file system"]


class DiskFullAt(pl.Callback):
    """From iteration ``iteration`` on, every file write of a checkpoint fails as on a full disk."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if pl_module.iteration + 1 == self.iteration:
            import errno

            import torch

            def full(*args: object, **kwargs: object) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            DiskFullAt.real_save, torch.save = torch.save, full


def test_a_full_disk_mid_run_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from tests.resume_support import fit, load

    full = {"class_path": "tests.test_bad_input.DiskFullAt", "init_args": {"iteration": 7}}
    try:
        with pytest.raises(SystemExit) as exit_:
            fit(tmp_path, "--checkpoint.every_n_updates=4", f"--trainer.callbacks+={json.dumps(full)}")
    finally:
        torch.save = getattr(DiskFullAt, "real_save", torch.save)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1
    assert len(err) == 1 and "No space left on device; free some space" in err[0], err
    assert "the last complete checkpoint is unchanged" in err[0]
    assert load(tmp_path / "ckpt" / "last.ckpt")["metarl"]["counters"]["iteration"] == 6
    assert not list((tmp_path / "ckpt").glob(".*.tmp"))


def test_a_trainer_limit_before_the_budget_is_exit_code_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.resume_support import fit

    with pytest.raises(SystemExit) as exit_:
        fit(tmp_path, "--trainer.max_epochs=1")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 3
    assert len(err) == 1 and "training stopped at env step 200 of the budget total_env_steps=400" in err[0], err
    assert "trainer.max_epochs=1 ended it" in err[0] and "continue with: cd " in err[0]


def test_settings_that_contradict_are_warnings_that_say_what_changed(tiny_cli: Callable[..., Any]) -> None:
    from metarl.training.run_checks import check_module

    warnings = check_module(tiny_cli("--model.init_args.eval.num_tasks=50",
                                     "--model.init_args.eval.every_env_steps=100000").model)
    assert "eval.num_tasks=50, but task family point-robot has 20 eval tasks: evaluating on all 20" in warnings
    assert any("eval.every_env_steps=100,000 is more than the budget" in w for w in warnings)
    warnings = check_module(tiny_cli("--model.init_args.collect.replay_size=100").model)
    assert any("collect.replay_size=100 is less than one episode per train task: the replay holds 1,600" in w
               for w in warnings)
    assert check_module(tiny_cli().model) == []
