"""MetaTrainModule and AdaptModule: what every meta-RL method of metarl is a pair of.

A method subclasses both (``metarl/methods/<name>/``). The config picks it with ``model.class_path``;
everything around the method is written here once and holds for all of them:

* the run loop: one ``training_step`` is one meta-training iteration (the method's
  ``meta_train_iteration``); an epoch is one evaluation period, planned so that evaluations land
  on the multiples of ``eval.every_env_steps`` and the run stops at its budget (``schedule.py``);
  an evaluation before any update (env step 0), as the MQL and PEARL reference code do;
* the meta-test protocol: validation and ``python -m metarl test`` evaluate the eval tasks with the
  method's ``evaluate_task`` (return before and after adaptation) and report mean and 95% CI;
* checkpoints that resume exactly: counters and global RNGs here, the method's own state from its
  ``method_state`` (``checkpoint_state.py``); a NaN stops the run before anything is saved;
* logging over env steps (W&B ``define_metric``).
"""

from __future__ import annotations

import random
import statistics
import time
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from metarl.envs import make_task_family
from metarl.training.checkpoint_state import check_training_state, set_global_rng_state, training_state
from metarl.training.evaluation import TaskResult
from metarl.training.schedule import EpochPlan, iteration_loader, list_loader
from metarl.training.settings import EvalSettings


class MetaTrainModule(pl.LightningModule):
    """Meta-training of one method on one task family (manual optimization: the method owns the
    update order). Subclasses call ``save_hyperparameters()`` in their ``__init__`` and implement the
    abstract methods below.

    Args (shared by every method's config):
        family: task family name (``metarl.envs.FAMILY_NAMES``); ``family_overrides`` are passed to it.
        total_env_steps: the meta-training budget.
        eval: the evaluation period and protocol.
        seed: seeds nets, tasks, envs, noise and sampling.
    """

    #: The method's name in checkpoints and messages ("mql", "pearl", ...).
    method_name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # for people (the start block); method_name is the identifier checkpoints keep
    #: Logged-metric prefixes charted over train env steps / over eval env steps in W&B.
    train_metric_prefixes: ClassVar[tuple[str, ...]] = ("train", "time")
    eval_metric_prefixes: ClassVar[tuple[str, ...]] = ("eval", "adapt")
    #: Keys shown on the progress bar.
    progress_keys: ClassVar[frozenset[str]] = frozenset({"train/env_steps", "train/return"})

    def __init__(
        self,
        family: str,
        family_overrides: dict[str, Any] | None,
        total_env_steps: int,
        eval: EvalSettings,
        seed: int,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if total_env_steps < 1:
            raise ValueError(f"model.total_env_steps must be >= 1, got {total_env_steps}")
        eval.validate()
        self.family = family_with_eval_overrides(family, family_overrides or {}, eval.family_overrides or {})
        self.total_env_steps, self.eval_cfg, self.seed = total_env_steps, eval, seed
        self.env_steps = 0
        self.num_updates = 0
        self.num_episodes = 0
        self.iteration = 0
        self.plan = EpochPlan(eval.every_env_steps, total_env_steps, self.iteration_env_steps)
        self._pending_rng: dict[str, Any] | None = None
        self._test_results: list[TaskResult] = []
        self._rollouts: Any = None
        self._eval_rollouts: Any = None
        #: Set when this module is one seed of a multi-seed run (training/seeds.py): the host module
        #: that the Trainer drives, and which of the host's optimizers are this seed's.
        self._seed_host: pl.LightningModule | None = None
        self._seed_optimizers: slice | None = None

    # ----------------------------------------------------------------------------- the method
    @abstractmethod
    def iteration_env_steps(self, env_steps: int) -> int:
        """How many env steps the iteration that starts at ``env_steps`` collects (known in advance:
        the schedule plans evaluations and the budget with it)."""

    @abstractmethod
    def meta_train_iteration(self) -> dict[str, float]:
        """Collect, then update: one iteration of the method's algorithm box. Advances the counters
        and returns the metrics to log (``train/*``, ``time/*``, the method's own)."""

    @abstractmethod
    def evaluate_task(self, task_index: int) -> TaskResult:
        """The meta-test protocol on eval task ``task_index``; leaves the module unchanged."""

    @abstractmethod
    def make_rollouts(self, evaluation: bool) -> Any:
        """The envs, task schedule and collector of the train (or eval) split, built on first use: TorchRL
        envs are nn.Modules and stay out of the module tree (state_dicts, device moves)."""

    @abstractmethod
    def method_state(self) -> dict[str, Any]:
        """What the checkpoint must carry besides weights and optimizers (buffers, envs, generators)."""

    @abstractmethod
    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`method_state` (ValueError on a mismatch)."""

    def optimizers(self, use_pl_optimizer: bool = True) -> Any:
        """Lightning's, except that one seed of a multi-seed run gets its own slice of the host's."""
        if self._seed_optimizers is None:
            return super().optimizers(use_pl_optimizer)
        assert self._seed_host is not None
        trainer = self._seed_host.trainer
        opts = trainer.strategy._lightning_optimizers if use_pl_optimizer else trainer.optimizers
        mine = list(opts)[self._seed_optimizers]
        return mine[0] if len(mine) == 1 else mine

    def seed_global_rngs(self) -> None:
        """The global generators at the start of a new run: from ``seed`` alone, so that one seed of a
        multi-seed run sees the same global streams as a run of that seed alone (training/seeds.py)."""
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)

    @property
    def rollouts(self) -> Any:
        if self._rollouts is None:
            self._rollouts = self.make_rollouts(evaluation=False)
        return self._rollouts

    @property
    def eval_rollouts(self) -> Any:
        if self._eval_rollouts is None:
            self._eval_rollouts = self.make_rollouts(evaluation=True)
        return self._eval_rollouts

    # ----------------------------------------------------------------------------- schedule
    def train_dataloader(self) -> DataLoader:
        return iteration_loader(self._start_epoch, self._epoch_continues)

    def _start_epoch(self) -> None:
        self.plan.start(self.env_steps)

    def _epoch_continues(self) -> bool:
        go = self.plan.next()
        if self.plan.budget_reached and self._trainer is not None:
            self.trainer.should_stop = True
        return go

    def val_dataloader(self) -> DataLoader:
        n = len(self.family.eval_tasks)
        k = n if self.eval_cfg.num_tasks is None else min(self.eval_cfg.num_tasks, n)
        return list_loader(list(range(k)))

    def test_dataloader(self) -> DataLoader:
        # Meta-test: the full protocol on every eval task.
        return list_loader(list(range(len(self.family.eval_tasks))))

    # ----------------------------------------------------------------------------- training
    def training_step(self, batch: Any, batch_idx: int) -> None:
        self._restore_rng_if_resumed()
        start = time.perf_counter()
        metrics = self.meta_train_iteration()
        self.iteration += 1
        metrics.setdefault("train/env_steps", float(self.env_steps))
        metrics.setdefault("time/iteration_s", time.perf_counter() - start)
        self._check_finite(metrics)
        self.log_dict({k: v for k, v in metrics.items() if k in self.progress_keys}, prog_bar=True, batch_size=1)
        self.log_dict({k: v for k, v in metrics.items() if k not in self.progress_keys}, batch_size=1)

    def _check_finite(self, metrics: dict[str, float]) -> None:
        """Stop on a NaN/inf loss or parameter, before anything is logged or checkpointed (the
        exception skips this iteration's checkpoint hooks, so the last good checkpoint stays)."""
        where = (f"at update {self.num_updates}, iteration {self.iteration} (env step {self.env_steps}); "
                 "training stopped, the last checkpoint is untouched")
        for name, value in metrics.items():
            if "loss" in name and not np.isfinite(value):
                raise FloatingPointError(f"{name} is {value} {where}")
        params = list(self.named_parameters())
        # One host sync for all parameters; names are looked up only when something is wrong.
        if params and not bool(torch.stack([torch.isfinite(p).all() for _, p in params]).all()):
            bad = next(name for name, p in params if not torch.isfinite(p).all())
            raise FloatingPointError(f"parameter {bad} is not finite {where}")

    # ----------------------------------------------------------------------------- evaluation
    def _evaluate(self, task_index: int) -> TaskResult:
        with torch.inference_mode(False), torch.enable_grad():
            return self.evaluate_task(task_index)

    def validation_step(self, task_index: int, batch_idx: int) -> None:
        result = self._evaluate(task_index)
        self.log_dict({**result.scalar_metrics(), "eval/env_steps": float(self.env_steps)}, batch_size=1)
        result.log_extras(self)

    def on_validation_start(self) -> None:
        # A run resumed from the checkpoint taken right before an evaluation redoes that evaluation
        # before its first training step: the generators it draws from must be the saved ones.
        self._restore_rng_if_resumed()

    def _evaluate_at_start(self) -> None:
        """The evaluation before any update (the reference code's first eval row, env step 0): the
        means over the validation tasks, logged directly (Lightning's validation loop only runs
        after training iterations)."""
        results = [self._evaluate(i) for i in self.val_dataloader()]
        metrics: dict[str, float] = {"eval/env_steps": 0.0}
        for name in results[0].scalar_metrics():
            values = [r.scalar_metrics()[name] for r in results if name in r.scalar_metrics()]
            metrics[name] = statistics.fmean(values)
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)

    def test_step(self, task_index: int, batch_idx: int) -> None:
        result = self._evaluate(task_index)
        self._test_results.append(result)
        self.log_dict(result.scalar_metrics(), batch_size=1)

    def on_test_epoch_start(self) -> None:
        self._test_results = []

    def on_test_epoch_end(self) -> None:
        from metarl.training.report import report_test

        report_test(self, self._test_results)

    # ----------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = {"env_steps": self.env_steps, "num_updates": self.num_updates,
                    "num_episodes": self.num_episodes, "iteration": self.iteration}
        checkpoint["metarl"] = training_state(self.method_name, self.family.name, counters, self.method_state())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = check_training_state(checkpoint.get("metarl"), self.method_name, self.family.name)
        c = state["counters"]
        self.env_steps, self.num_updates = int(c["env_steps"]), int(c["num_updates"])
        self.num_episodes, self.iteration = int(c["num_episodes"]), int(c["iteration"])
        self.load_method_state(state)
        # The global RNGs are set at the first training step (building dataloader iterators in between would
        # consume draws, stack notes §4); none if saved before the evaluation at env step 0: a new run's start.
        start = checkpoint.get("metarl_run", {}).get("start_evaluation_pending")
        self._pending_rng = None if start else state["rng"]

    def _restore_rng_if_resumed(self) -> None:
        if self._pending_rng is not None:
            set_global_rng_state(self._pending_rng)
            self._pending_rng = None

    # ----------------------------------------------------------------------------- run hooks
    def on_fit_start(self) -> None:
        from metarl.tracking import define_env_step_axes

        define_env_step_axes(self.loggers, self.train_metric_prefixes, self.eval_metric_prefixes)

    def on_train_start(self) -> None:
        self.seed_global_rngs()
        if self.env_steps == 0 and self.eval_cfg.at_start and self._pending_rng is None:
            self._evaluate_at_start()


class AdaptModule(pl.LightningModule):
    """What adapting to one new task means for a method: built from a meta-trained module, it is a
    copy (adapting never changes its source) that the method's ``evaluate_task`` adapts and then
    acts with. Methods add their own ``adapt(...)``; they share this construction contract."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False


def family_with_eval_overrides(name: str, overrides: dict[str, Any], eval_overrides: dict[str, Any]) -> Any:
    """The task family with ``eval.family_overrides`` applied on top of ``family_overrides``. They may
    change the eval tasks only (they are a meta-test setting, applied to a trained checkpoint too):
    one that changes a train task is refused."""
    family = make_task_family(name, **overrides)
    if not eval_overrides:
        return family
    evaluated = make_task_family(name, **{**overrides, **eval_overrides})
    if evaluated.train_tasks != family.train_tasks:
        raise ValueError(f"eval.family_overrides {eval_overrides} change the train tasks of {name}, not only its "
                         "eval tasks; set them in family_overrides (a new run) instead")
    return evaluated


def backward(module: pl.LightningModule, loss: torch.Tensor) -> None:
    """``manual_backward`` inside a Trainer, plain ``backward`` outside one (adaptation runs inside
    the validation loop, from Python, and in tests without a Trainer). One seed of a multi-seed run
    goes through the host module the Trainer drives (its precision plugin)."""
    host = getattr(module, "_seed_host", None)
    if host is not None and host._trainer is not None:
        host.manual_backward(loss)
    elif module._trainer is None:
        loss.backward()
    else:
        module.manual_backward(loss)
