"""Shared by the reliability tests: tiny point-robot runs, in-process or as a subprocess, and what
they wrote (checkpoints, metrics.csv)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

#: Point robot + the debug overlay: iterations of one 20-step episode and 4 updates (no cold start,
#: so every iteration updates), two evaluation periods of 200 env steps = 10 iterations each; the
#: budget of 400 ends the second one: N = 80 updates, and a first half with a budget of 200 stops
#: after N/2 = 40.
TINY = [
    "fit", "--config", "point_robot.yaml", "--config", "debug.yaml",
    "--model.init_args.collect.cold_start_steps=0",
    "--model.init_args.eval.every_env_steps=200",
    "--model.init_args.total_env_steps=400",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",  # bit-exact comparisons: no cuDNN nondeterminism on a GPU machine
]

#: The logged columns a resumed run must reproduce (timings excluded).
COMPARED = [
    "step", "epoch", "train/env_steps", "train/updates", "train/loss_critic", "train/loss_actor", "train/return",
    "eval/env_steps", "eval/return_pre_adapt", "eval/return_post_adapt", "adapt/lambda", "adapt/ess",
]


def fit_args(out: Path, *extra: str, base: Sequence[str] = TINY) -> list[str]:
    logger = {"class_path": "pytorch_lightning.loggers.CSVLogger",
              "init_args": {"save_dir": str(out), "name": "csv", "version": 0}}
    return [*base, f"--trainer.logger={json.dumps(logger)}", f"--checkpoint.dirpath={out / 'ckpt'}", *extra]


def run_main(args: Sequence[str]) -> None:
    """``python -m metarl ARGS`` in this process (no import cost); raises SystemExit on an error."""
    from metarl.cli import main

    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when it sees pytest's arguments
    # One intra-op thread: on 2 busy cores, multi-threaded kernels on these tiny nets wait on each
    # other and a run takes 3-4x longer (every compared run uses the same setting).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main(list(args))
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)


def fit(out: Path, *extra: str, base: Sequence[str] = TINY) -> None:
    """``python -m metarl fit`` of ``base`` into ``out`` (CSV metrics, checkpoints in ``out/ckpt``)."""
    run_main(fit_args(out, *extra, base=base))


def run_cli(cwd: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            **popen: Any) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "metarl", *args], cwd=cwd, env=env or cli_env(), capture_output=True,
                          text=True, timeout=timeout, **popen)


def cli_env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "RL_LOGGING_LEVEL": "WARNING", "PYTHONWARNINGS": "ignore",
            "OMP_NUM_THREADS": "1"}


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True, map_location="cpu")


def metrics(out: Path, columns: Sequence[str] = COMPARED) -> list[dict[str, str]]:
    with open(out / "csv" / "version_0" / "metrics.csv") as f:
        return [{k: row.get(k, "") for k in columns} for row in csv.DictReader(f)]


def at_epoch_end(ckpt: dict[str, Any]) -> bool:
    """Saved at the end of an evaluation period, after its validation (periods are 200 env steps)."""
    return counters(ckpt)["env_steps"] % 200 == 0


def counters(ckpt: dict[str, Any]) -> dict[str, int]:
    return ckpt["metarl"]["counters"]


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Bit-identical weights, optimizer states, replay contents and counters."""
    assert counters(a) == counters(b)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), f"parameter {key} differs"
    for i, (oa, ob) in enumerate(zip(a["optimizer_states"], b["optimizer_states"], strict=True)):
        for pid, sa in oa["state"].items():
            for name, value in sa.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(ob["state"][pid][name])), \
                    f"optimizer {i} state {pid}/{name} differs"
    buffers = [k for k, v in a["metarl"].items() if isinstance(v, dict) and {"data", "size", "cursor"} <= v.keys()]
    assert buffers, "no replay buffer in the checkpoint"
    for name in buffers:  # every replay of the method (MQL: one; PEARL: the RL and the encoder buffers)
        ra, rb = a["metarl"][name], b["metarl"][name]
        assert torch.equal(ra["size"], rb["size"]) and torch.equal(ra["cursor"], rb["cursor"]), f"{name} differs"
        for key, value in ra["data"].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, rb["data"][key]), f"{name} {key} differs"


def assert_same_onpolicy_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    """The on-policy methods (RL², MAML-PG), which keep no replay: bit-identical weights, optimizer
    states and counters, every random-number generator and the rollouts' batch."""
    assert counters(a) == counters(b)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), f"parameter {key} differs"
    for oa, ob in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for pid, sa in oa["state"].items():
            for name, value in sa.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(ob["state"][pid][name]))
    gens = [k for k, v in a["metarl"].items() if k.endswith("_gen")]
    assert {"task_gen", "acting_gen", "eval_acting_gen"} <= set(gens)
    for name in gens:
        assert torch.equal(a["metarl"][name], b["metarl"][name]), f"{name} differs"
    assert a["metarl"]["rollouts"]["batch"] == b["metarl"]["rollouts"]["batch"]


_STRAIGHT: list[Path] = []


def mql_straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the whole budget of ``TINY`` in one go, keeping a checkpoint after every
    iteration; one run per session serves every module that asks for it."""
    if not _STRAIGHT:
        out = tmp_path_factory.mktemp("straight")
        fit(out, "--checkpoint.every_n_updates=4", "--checkpoint.save_top_k=-1")
        _STRAIGHT.append(out)
    return _STRAIGHT[0]


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MQL's reference run (``mql_straight``)."""
    return mql_straight(tmp_path_factory)
