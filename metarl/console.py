"""What ``python -m metarl`` prints around a run: third-party noise down to what a user needs, and
the torch thread policy.

Set ``METARL_VERBOSE=1`` to see everything Lightning and W&B print (device lines, tips, W&B's own
start-up and sync lines, deprecation warnings).
"""

from __future__ import annotations

import logging
import os
import warnings

#: INFO lines of these loggers are the device lines, the seed line and Lightning's adverts; their
#: warnings still show.
_QUIET_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
    "lightning_fabric.utilities.seed",
    "lightning.fabric.utilities.seed",
    "pytorch_lightning.accelerators.cuda",
)

#: Warnings that say nothing a metarl user can act on (third-party internals and deprecations).
_QUIET_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*`tensorboardX` has been removed as a dependency.*",
    r"The `srun` command is available on your system but is not used.*",
    r".*does not have many workers which may be a bottleneck.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r"Experiment logs directory .* exists and is not empty.*",
    r"Checkpoint directory .* exists and is not empty.*",
)


def verbose() -> bool:
    return os.environ.get("METARL_VERBOSE", "").strip().lower() not in ("", "0", "false", "no")


def quiet_third_party() -> None:
    """Called once before the CLI builds anything."""
    if verbose():
        return
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(torch|pytorch_lightning|lightning)")
    # W&B: its start-up lines, the `anonymous` and git-root warnings; metarl prints where the run
    # goes and how to upload it. An explicit WANDB_SILENT / WANDB_DISABLE_GIT wins.
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    os.environ.setdefault("WANDB_DISABLE_CODE", "true")


# ---------------------------------------------------------------------------------------------- threads
#: The default: measured on 2-core machines (README "Speed"; BENCHMARKS.md "Threads"): one intra-op
#: thread per run. The nets are small (300-unit MLPs, 15-unit GRUs, batch 256), so their GEMMs gain
#: little from a second thread on an idle machine and lose 3-4x when the cores are shared.
DEFAULT_THREADS = 1


def thread_policy(requested: int | None) -> tuple[int, str]:
    """The number of torch intra-op threads to use and where it comes from."""
    import torch

    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1 or null, got {requested}")
        return requested, "threads in the config or command line"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env), "OMP_NUM_THREADS"
    return min(DEFAULT_THREADS, torch.get_num_threads()) or 1, "metarl's default; --threads=N to change"


def apply_threads(requested: int | None) -> tuple[int, str]:
    import torch

    n, source = thread_policy(requested)
    torch.set_num_threads(n)
    return n, source
