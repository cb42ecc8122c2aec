"""``python -m metarl test``: the meta-test of a checkpoint, a per-task table with a 95% CI and
``meta_test.json`` next to the checkpoint, which it leaves untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.resume_support import TINY, counters, fit, load


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """``main(argv)`` as ``python -m metarl`` gets it: LightningCLI warns when it also sees pytest's arguments."""
    import sys

    monkeypatch.setattr(sys, "argv", sys.argv[:1])


def test_meta_test_of_a_seed_3_run_with_the_shipped_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from metarl.cli import main

    out = tmp_path / "run"
    # A run with another seed than the YAML's: testing it must not need the seed repeated.
    fit(out, "--seed_everything=3", "--model.init_args.seed=3", "--model.init_args.total_env_steps=200")
    ckpt = out / "ckpt" / "last.ckpt"
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    capsys.readouterr()

    config = TINY[1:TINY.index("--model.init_args.collect.cold_start_steps=0")]  # point_robot + debug overlay
    main(["test", *config, f"--ckpt_path={ckpt}", "--trainer.logger=false", "--trainer.accelerator=cpu"])

    report = json.loads((ckpt.parent / "meta_test.json").read_text())
    assert report["family"] == "point-robot"
    assert report["checkpoint"] == str(ckpt)
    assert report["env_steps"] == counters(load(ckpt))["env_steps"]
    n_tasks = len(report["tasks"])
    assert n_tasks == 20, "test adapts on every eval task of the family, whatever eval.num_tasks says"
    for key in ("return_pre_adapt", "return_post_adapt"):
        summary = report[key]
        assert summary["n_tasks"] == n_tasks
        assert summary["ci95_low"] <= summary["mean"] <= summary["ci95_high"]
        assert summary["mean"] == pytest.approx(sum(t[key] for t in report["tasks"]) / n_tasks)
    printed = capsys.readouterr()
    for line in ("return_post_adapt:", "95% CI", "meta-test results written to"):
        assert line in printed.out
    # The config's differences from the trained model are reported, never silently dropped.
    assert "the config's other differences do not apply" in printed.err
    assert "collect.cold_start_steps: checkpoint 0, config 200" in printed.err
    assert "seed: checkpoint 3, config 0" in printed.err
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest, "test must not rewrite the checkpoint"
    assert report["settings"]["adapt"]["lambda_mode"] == "ess"
    assert report["family_options"] == {"n_train_tasks": 80, "n_eval_tasks": 20, "seed": 1337, "max_episode_steps": 20}

    # Another protocol on the same checkpoint (the released code's fixed lambda) gets its own report.
    first = (ckpt.parent / "meta_test.json").read_bytes()
    main(["test", *config, f"--ckpt_path={ckpt}", "--trainer.logger=false", "--trainer.accelerator=cpu",
          "--model.init_args.adapt.lambda_mode=fixed"])
    assert (ckpt.parent / "meta_test.json").read_bytes() == first, "a second test must not overwrite the first"
    second = json.loads((ckpt.parent / "meta_test_2.json").read_text())
    assert second["settings"]["adapt"]["lambda_mode"] == "fixed"
    assert second["settings"]["eval"] == report["settings"]["eval"]
    assert "meta_test_2.json" in capsys.readouterr().out


def test_meta_test_of_last_without_a_checkpoint_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from metarl.cli import main

    config = TINY[1:TINY.index("--model.init_args.collect.cold_start_steps=0")]
    with pytest.raises(SystemExit) as exit_info:
        main(["test", *config, "--ckpt_path=last", f"--checkpoint.dirpath={tmp_path / 'empty'}",
              "--trainer.logger=false"])
    assert exit_info.value.code == 2
    assert f"--ckpt_path last: no last.ckpt below {tmp_path / 'empty'} to test" in capsys.readouterr().err


def test_eval_family_overrides_change_only_the_eval_tasks() -> None:
    from metarl.envs import make_task_family
    from metarl.training.module import family_with_eval_overrides

    ood = make_task_family("point-robot-ood", n_train_tasks=10)
    held_out = family_with_eval_overrides("point-robot-ood", {"n_train_tasks": 10}, {"eval_split": "in"})
    assert held_out.train_tasks == ood.train_tasks and held_out.eval_tasks != ood.eval_tasks
    assert held_out.options["eval_split"] == "in" and held_out.options["n_train_tasks"] == 10
    plain = family_with_eval_overrides("point-robot-ood", {}, {})
    assert plain.eval_tasks == make_task_family("point-robot-ood").eval_tasks
    with pytest.raises(ValueError, match="change the train tasks of point-robot-ood"):
        family_with_eval_overrides("point-robot-ood", {}, {"seed": 3})
