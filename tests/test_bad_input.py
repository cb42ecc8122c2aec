"""Bad input: one line ``metarl: error: ...`` naming the key or value and what is allowed, exit code
2, no traceback, and no checkpoint touched."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest

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
    return tmp_path


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_naming_the_problem(case: str, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from metarl.cli import main

    extra, expected = CASES[case]
    extra = [a.format(ckpt=run_dir / "ckpt" / "last.ckpt", typo_yaml=run_dir / "typo.yaml") for a in extra]
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
