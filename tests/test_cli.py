"""CLI smoke runs: every MuJoCo config meta-trains for a few hundred steps with the debug overlay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.resume_support import run_main

MUJOCO_CONFIGS = ["ant_fb", "ant_goal", "cheetah_fb", "cheetah_vel", "humanoid_dir", "walker_params"]


def run_cli(tmp: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "RL_LOGGING_LEVEL": "WARNING", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "metarl", *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("name", MUJOCO_CONFIGS)
def test_fit_smoke(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each MuJoCo config's debug run, by its bare name from an empty folder. The README's main job runs
    as a user types it, in a new process; the others run in this one (a new process's imports cost
    about as much as the run)."""
    if name == "ant_fb":
        out = run_cli(tmp_path, "fit", "--config", f"{name}.yaml", "--config", "debug.yaml")
        assert out.returncode == 0, out.stderr[-3000:]
    else:
        monkeypatch.chdir(tmp_path)
        run_main(["fit", "--config", f"{name}.yaml", "--config", "debug.yaml"])
    ckpts = list((tmp_path / "runs" / "debug").rglob("last.ckpt"))
    assert ckpts, f"no last.ckpt written; stderr: {out.stderr[-2000:]}"


def test_unknown_config_is_a_clear_error(tmp_path: Path) -> None:
    out = run_cli(tmp_path, "fit", "--config", "no_such_config.yaml")
    assert out.returncode != 0
    assert "no_such_config.yaml" in out.stderr and "ant_fb.yaml" in out.stderr
    assert "Traceback" not in out.stderr
