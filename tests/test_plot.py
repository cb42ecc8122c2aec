"""`python -m metarl plot`: PNGs from a run's local CSV logs, on a hand-written CSV and on a tiny real run."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metarl.plot import main, read_metrics, smooth
from tests.resume_support import run_main

COLUMNS = ["adapt/ess", "adapt/lambda", "adapt/beta_mean", "adapt/classifier_acc", "epoch", "eval/env_steps",
           "eval/return_post_adapt", "eval/return_pre_adapt", "step", "train/env_steps", "train/return",
           "train/loss_critic", "train/loss_actor", "time/env_steps_per_s", "time/updates_per_s"]


def write_csv(path: Path, with_eval: bool = True) -> None:
    """The CSVLogger's layout: one row per training step, one row per evaluation (eval columns only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(1, 7):
        rows.append({"step": i, "epoch": 0, "train/env_steps": 100 * i, "train/return": -10 + i,
                     "train/loss_critic": 1 / i, "train/loss_actor": 0.1 * i,
                     "time/env_steps_per_s": 500, "time/updates_per_s": 30})
        if with_eval and i % 3 == 0:
            rows.append({"step": i, "epoch": 0, "eval/env_steps": 100 * i, "eval/return_pre_adapt": -5 + i,
                         "eval/return_post_adapt": -4 + i, "adapt/lambda": 0.2, "adapt/ess": 0.8,
                         "adapt/beta_mean": 0.9, "adapt/classifier_acc": 0.75})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def assert_png(path: Path) -> None:
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 600, img.shape
    assert img[..., :3].std() > 0.05, f"{path} looks blank"


def test_read_metrics_puts_every_value_at_its_env_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    write_csv(path)
    series = read_metrics(path)
    assert series["eval/return_post_adapt"] == [(300.0, -1.0), (600.0, 2.0)]
    assert series["adapt/lambda"] == [(300.0, 0.2), (600.0, 0.2)]
    assert series["train/return"][0] == (100.0, -9.0) and len(series["train/return"]) == 6
    assert "step" not in series and "train/env_steps" not in series and "eval/env_steps" not in series


def test_smooth_is_a_trailing_mean() -> None:
    assert smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]


def test_plot_writes_readable_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "myrun"
    write_csv(run / "csv" / "version_0" / "metrics.csv")
    assert main([str(run)]) == 0
    out_dir = run / "csv" / "version_0"
    for name in ("returns.png", "adaptation.png", "training.png"):
        assert_png(out_dir / name)
    assert str(out_dir / "returns.png") in capsys.readouterr().out


def test_no_eval_yet_gives_no_adaptation_png(tmp_path: Path) -> None:
    write_csv(tmp_path / "metrics.csv", with_eval=False)
    assert main([str(tmp_path / "metrics.csv")]) == 0  # a metrics.csv path works too
    assert (tmp_path / "returns.png").exists() and (tmp_path / "training.png").exists()
    assert not (tmp_path / "adaptation.png").exists()


def test_bad_paths_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "no metrics.csv below" in capsys.readouterr().err


def test_plot_command_on_a_tiny_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny run (in this process: a new one's imports cost more than the run), then the plot command
    as a user types it."""
    env = {**os.environ, "WANDB_MODE": "disabled", "RL_LOGGING_LEVEL": "WARNING", "PYTHONWARNINGS": "ignore",
           "OMP_NUM_THREADS": "1"}

    def metarl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "metarl", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    monkeypatch.chdir(tmp_path)
    run_main(["fit", "--config", "point_robot.yaml", "--config", "debug.yaml",
              "--trainer.logger=pytorch_lightning.loggers.CSVLogger", "--trainer.logger.save_dir=runs/tiny"])
    plot = metarl("plot", "runs/tiny")
    assert plot.returncode == 0, plot.stderr[-3000:]
    written = [Path(line) for line in plot.stdout.split()]
    assert {p.name for p in written} == {"returns.png", "adaptation.png", "training.png"}
    for png in written:
        assert_png(tmp_path / png if not png.is_absolute() else png)


def test_a_resumed_attempt_supersedes_what_the_killed_one_logged_past_its_checkpoint(tmp_path: Path) -> None:
    # Killed at 140 after its checkpoint at 100 (and the eval at 100); resumed from it: 120, 140, 160.
    path = tmp_path / "metrics.csv"
    rows = [{"train/env_steps": x, "train/return": x / 10} for x in (20, 40, 60, 80, 100)]
    rows += [{"eval/env_steps": 100, "eval/return_post_adapt": 7.0}]
    rows += [{"train/env_steps": x, "train/return": -1.0} for x in (120, 140)]  # lost with the kill
    rows += [{"train/env_steps": x, "train/return": x / 10} for x in (120, 140, 160)]  # the resumed run
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["train/env_steps", "train/return", "eval/env_steps", "eval/return_post_adapt"])
        writer.writeheader()
        writer.writerows(rows)
    series = read_metrics(path)
    assert series["train/return"] == [(float(x), x / 10) for x in (20, 40, 60, 80, 100, 120, 140, 160)]
    assert series["eval/return_post_adapt"] == [(100.0, 7.0)]


def test_short_series_get_markers() -> None:
    from metarl.plot import _style

    assert _style("-", 1) == "-o" and _style("-", 3) == "-o"  # a single point is visible
    assert _style("-o", 1) == "-o" and _style("-", 10) == "-" and _style("-o", 100) == "-"


def test_files_that_are_not_metrics_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert main([str(tmp_path / "notes.txt")]) == 2
    assert "is a file, not a run folder or a metrics.csv" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert main([str(tmp_path / "other.csv")]) == 2
    assert "is not a metarl metrics.csv (it has no train/env_steps column)" in capsys.readouterr().err
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    assert main([str(tmp_path / "binary.csv")]) == 2
    assert "metarl plot: error:" in capsys.readouterr().err
