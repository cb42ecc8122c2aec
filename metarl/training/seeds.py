"""MultiSeed: N independent seeds of one method in one ``fit`` process (issue #15).

``python -m metarl fit --config point_robot.yaml --seeds 0,1,2`` (or ``seeds: [0, 1, 2]`` in a
config) builds the method's MetaTrainModule once per seed, exactly as a single-seed run with
``model.init_args.seed=k`` builds it (own nets, optimizers, replay, envs, task draws, noise), and this
module runs their iterations in lockstep: one ``training_step`` is one iteration of every seed, one
validation step evaluates one eval task with every seed. It works for every method, because it only
uses the MetaTrainModule contract.

Seed k of a multi-seed run equals the run of seed k alone (``tests/test_seeds.py``):

* every seed's generators are its own (the methods seed them from ``seed``);
* the global generators (python, numpy, torch), which a method or a library may still draw from, are
  kept per seed and swapped in around each seed's work, each started as a single-seed run starts them
  (``MetaTrainModule.seed_global_rngs``);
* optimizers step through the Trainer's strategy and ``backward`` through the host, as alone.

Metrics: seed k's under ``seed<k>/<name>``; the mean over seeds under the usual names (what a sweep
that monitors ``eval/return_post_adapt`` reads) and, for the evaluation returns, the 95% Student-t
half-width over seeds (``eval/return_post_adapt_ci95``). A checkpoint holds every seed's state.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from metarl.training.checkpoint_state import global_rng_state, set_global_rng_state
from metarl.training.evaluation import TaskResult, t_ci95
from metarl.training.module import MetaTrainModule

#: Evaluation returns whose spread over seeds is logged (``<name>_ci95``).
CI_METRICS = ("eval/return_pre_adapt", "eval/return_post_adapt")


def parse_seeds(value: Any) -> list[int] | None:
    """``--seeds 0,1,2``, ``--seeds [0,1,2]``, ``seeds: [0, 1, 2]`` -> [0, 1, 2]; None -> None.
    ValueError (one line) for anything else: non-integers, negatives, repeats, an empty list."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().strip("[]")
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            seeds = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"seeds must be a list of integers such as 0,1,2, got {value!r}") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        seeds = [value]
    elif isinstance(value, (list, tuple)) and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        seeds = list(value)
    else:
        raise ValueError(f"seeds must be a list of integers such as 0,1,2, got {value!r}")
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, e.g. --seeds 0,1,2")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be >= 0, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return seeds


def seed_key(seed: int, name: str) -> str:
    return f"seed{seed}/{name}"


class MultiSeed(MetaTrainModule):
    """N seeds of one method, in lockstep. ``members`` are the single-seed modules (same class and
    settings, distinct ``seed``); the checkpoint's hyperparameters are the first seed's (so resume and
    ``test`` rebuild the method as usual) and the seed list travels in the ``metarl`` section."""

    def __init__(self, members: Sequence[MetaTrainModule]) -> None:
        first = members[0]
        if len(members) < 2:
            raise ValueError("MultiSeed needs at least two seeds (one seed is a plain run)")
        if len({type(m) for m in members}) != 1:
            raise ValueError("MultiSeed: every seed must run the same method")
        super().__init__(first.family.name, first.hparams.get("family_overrides"), first.total_env_steps,
                         first.eval_cfg, first.seed)
        self.family = first.family  # the seeds' own (eval.family_overrides applied)
        self.members = torch.nn.ModuleList(members)
        self.seeds = [m.seed for m in members]
        self.method_name = first.method_name  # type: ignore[misc]  # per instance: the seeds' method
        self.title = first.title  # type: ignore[misc]
        self.train_metric_prefixes = first.train_metric_prefixes  # type: ignore[misc]
        self.eval_metric_prefixes = first.eval_metric_prefixes  # type: ignore[misc]
        self._hparams_name = getattr(first, "_hparams_name", "kwargs")
        self._set_hparams(dict(first.hparams))
        self._hparams_initial = dict(first.hparams)  # type: ignore[assignment]
        for m in members:
            # A plain attribute, not a submodule: the host must not appear in a seed's module tree.
            object.__setattr__(m, "_seed_host", self)
        self._member_rng: list[dict[str, Any] | None] = [None] * len(members)
        self._val_results: list[list[TaskResult]] = []
        self._test_by_seed: list[list[TaskResult]] = [[] for _ in members]

    # ----------------------------------------------------------------------------- seeds' context
    @contextlib.contextmanager
    def _as_seed(self, i: int) -> Iterator[MetaTrainModule]:
        """Seed i's global generators in, for the duration; then saved back as seed i's."""
        if self._member_rng[i] is not None:
            set_global_rng_state(self._member_rng[i])  # type: ignore[arg-type]
        try:
            yield self.members[i]  # type: ignore[misc]
        finally:
            self._member_rng[i] = global_rng_state()

    def _start_seed_rngs(self) -> None:
        for i, m in enumerate(self.members):
            m.seed_global_rngs()  # type: ignore[operator]
            self._member_rng[i] = global_rng_state()

    def setup(self, stage: str) -> None:
        for m in self.members:
            m.trainer = self.trainer  # type: ignore[assignment]  # what a seed alone sees (e.g. trainer.state.fn)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Every seed's optimizers, one seed after the other; each seed's ``optimizers()`` is its slice."""
        out: list[torch.optim.Optimizer] = []
        for m in self.members:
            mine = _as_list(m.configure_optimizers())  # type: ignore[operator]
            object.__setattr__(m, "_seed_optimizers", slice(len(out), len(out) + len(mine)))
            out += mine
        return out

    # ----------------------------------------------------------------------------- the contract
    def iteration_env_steps(self, env_steps: int) -> int:
        return self.members[0].iteration_env_steps(env_steps)  # type: ignore[operator]

    def make_rollouts(self, evaluation: bool) -> Any:
        return None  # each seed has its own

    def meta_train_iteration(self) -> dict[str, float]:
        per_seed: list[dict[str, float]] = []
        # A method may run its seeds' iterations together (MQL's batched_update): ``seed_batched_iteration``.
        together = getattr(type(self.members[0]), "seed_batched_iteration", None)
        batched = together(list(self.members), self._as_seed) if together is not None else None
        for i in range(len(self.members)):
            with self._as_seed(i) as m:
                start = time.perf_counter()
                metrics = m.meta_train_iteration() if batched is None else batched[i]
                m.iteration += 1
                metrics.setdefault("train/env_steps", float(m.env_steps))
                metrics.setdefault("time/iteration_s", time.perf_counter() - start)
                per_seed.append(metrics)
        self._sync_counters()
        # Per-task training returns stay per seed (the seeds draw different tasks).
        out = mean_over_seeds(per_seed, skip=("time/iteration_s",), skip_prefix="train/return_task/")
        for seed, metrics in zip(self.seeds, per_seed, strict=True):
            out.update({seed_key(seed, k): v for k, v in metrics.items()})
        return out

    def _sync_counters(self) -> None:
        steps = {m.env_steps for m in self.members}
        if len(steps) != 1:
            raise RuntimeError(f"seeds {self.seeds} collected different numbers of env steps ({sorted(steps)}): "
                               "a method's iteration_env_steps must depend on the env step count only")
        m0 = self.members[0]
        self.env_steps = m0.env_steps
        # Per seed, as a single-seed run counts them (checkpoint.every_n_updates keeps its meaning).
        self.num_updates, self.num_episodes = m0.num_updates, m0.num_episodes

    def evaluate_task(self, task_index: int) -> TaskResult:
        results = self._evaluate_seeds(task_index)
        return TaskResult(task_index, statistics.fmean(r.return_pre for r in results),
                          statistics.fmean(r.return_post for r in results))

    def _evaluate_seeds(self, task_index: int) -> list[TaskResult]:
        results = []
        for i in range(len(self.members)):
            with self._as_seed(i) as m:
                results.append(m._evaluate(task_index))  # type: ignore[operator]
        return results

    # ----------------------------------------------------------------------------- evaluation
    def _eval_metrics(self, results: Sequence[TaskResult]) -> dict[str, float]:
        metrics = mean_over_seeds([r.scalar_metrics() for r in results])
        for seed, r in zip(self.seeds, results, strict=True):
            metrics.update({seed_key(seed, k): v for k, v in r.scalar_metrics().items()})
        return metrics

    def validation_step(self, task_index: int, batch_idx: int) -> None:
        results = self._evaluate_seeds(task_index)
        self._val_results.append(results)
        self.log_dict({**self._eval_metrics(results), "eval/env_steps": float(self.env_steps)}, batch_size=1)
        self._log_histograms(results)

    def on_validation_epoch_start(self) -> None:
        self._val_results = []

    def on_validation_epoch_end(self) -> None:
        if self._val_results:
            self.log_dict(self._spread(self._val_results), batch_size=1)

    def _spread(self, by_task: Sequence[Sequence[TaskResult]]) -> dict[str, float]:
        """The 95% t half-width over seeds of each seed's mean over the evaluated tasks."""
        out = {}
        for name in CI_METRICS:
            per_seed = [statistics.fmean(task[i].scalar_metrics()[name] for task in by_task)
                        for i in range(len(self.seeds))]
            out[f"{name}_ci95"] = t_ci95(per_seed)["half_width"]
        return out

    def _evaluate_at_start(self) -> None:
        by_task = [self._evaluate_seeds(i) for i in self.val_dataloader()]
        metrics: dict[str, float] = {"eval/env_steps": 0.0}
        rows = [self._eval_metrics(results) for results in by_task]
        for name in rows[0]:
            metrics[name] = statistics.fmean(r[name] for r in rows if name in r)
        metrics.update(self._spread(by_task))
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)

    def _log_histograms(self, results: Sequence[TaskResult]) -> None:
        loggers = [lg for lg in self.loggers if type(lg).__name__ == "WandbLogger"]
        if not loggers or not any(r.histograms for r in results):
            return
        import wandb

        row: dict[str, Any] = {"eval/env_steps": self.env_steps}
        for seed, r in zip(self.seeds, results, strict=True):
            row.update({seed_key(seed, k): wandb.Histogram(v.numpy()) for k, v in r.histograms.items()})
        for logger in loggers:
            logger.experiment.log(row)

    def test_step(self, task_index: int, batch_idx: int) -> None:
        results = self._evaluate_seeds(task_index)
        for i, r in enumerate(results):
            self._test_by_seed[i].append(r)
        self.log_dict(self._eval_metrics(results), batch_size=1)

    def on_test_epoch_start(self) -> None:
        self._test_by_seed = [[] for _ in self.members]

    def on_test_epoch_end(self) -> None:
        from metarl.training.report import report_test_seeds

        report_test_seeds(self, self._test_by_seed)

    # ----------------------------------------------------------------------------- checkpoints
    def method_state(self) -> dict[str, Any]:
        return {"seeds": list(self.seeds), "members": [
            {"counters": {"env_steps": m.env_steps, "num_updates": m.num_updates, "num_episodes": m.num_episodes,
                          "iteration": m.iteration},
             "state": m.method_state(),  # type: ignore[operator]
             "rng": self._member_rng[i] if self._member_rng[i] is not None else global_rng_state()}
            for i, m in enumerate(self.members)]}

    def load_method_state(self, state: dict[str, Any]) -> None:
        saved = state.get("seeds")
        if saved != self.seeds:
            what = "a single-seed run" if saved is None else f"seeds {saved}"
            raise ValueError(f"checkpoint holds {what}, but this run asks for seeds {self.seeds}")
        for i, (m, s) in enumerate(zip(self.members, state["members"], strict=True)):
            c = s["counters"]
            m.env_steps, m.num_updates = int(c["env_steps"]), int(c["num_updates"])
            m.num_episodes, m.iteration = int(c["num_episodes"]), int(c["iteration"])
            m.load_method_state(s["state"])  # type: ignore[operator]
            self._member_rng[i] = s["rng"]

    # ----------------------------------------------------------------------------- run hooks
    def on_fit_start(self) -> None:
        super().on_fit_start()
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                run = logger.experiment
                for seed in self.seeds:
                    for prefix in self.train_metric_prefixes:
                        run.define_metric(seed_key(seed, f"{prefix}/*"), step_metric="train/env_steps")
                    for prefix in self.eval_metric_prefixes:
                        run.define_metric(seed_key(seed, f"{prefix}/*"), step_metric="eval/env_steps")

    def on_train_start(self) -> None:
        fresh = self._pending_rng is None
        if fresh:
            self._start_seed_rngs()  # as each seed alone starts them
        if self.env_steps == 0 and self.eval_cfg.at_start and fresh:
            self._evaluate_at_start()


def _as_list(optimizers: Any) -> list[torch.optim.Optimizer]:
    if isinstance(optimizers, torch.optim.Optimizer):
        return [optimizers]
    if isinstance(optimizers, (list, tuple)) and all(isinstance(o, torch.optim.Optimizer) for o in optimizers):
        return list(optimizers)
    raise TypeError("a multi-seed run needs configure_optimizers to return optimizers (no schedulers)")


def mean_over_seeds(per_seed: Sequence[dict[str, float]], skip: Sequence[str] = (),
                    skip_prefix: str | None = None) -> dict[str, float]:
    """Each metric's mean over the seeds that logged it."""
    names = dict.fromkeys(k for m in per_seed for k in m
                          if k not in skip and not (skip_prefix and k.startswith(skip_prefix)))
    return {k: statistics.fmean(float(m[k]) for m in per_seed if k in m) for k in names}
