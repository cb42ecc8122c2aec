"""MQL's side of the meta-test protocol: the return before and after adaptation on one eval task.

The protocol follows the MQL reference (§3 of the reference notes): deterministic episodes with the
meta-trained policy (the first of them is the adaptation data D_new), adaptation from theta_meta,
then the same number of deterministic episodes with the adapted policy. Every task adapts from
theta_meta: the adapted copy is thrown away afterwards. Before any meta-training data exists (the
evaluation at env step 0) there is nothing for eq. 19 and the classifier to use: the policy is
evaluated without adaptation, as the reference code's first evaluation row.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

import torch

from metarl import keys
from metarl.methods.mql.adapt import AdaptStats, MQLAdapt
from metarl.training.evaluation import TaskResult

if TYPE_CHECKING:
    from metarl.methods.mql.meta_train import MQLMetaTrain


def adapt_metrics(stats: AdaptStats) -> dict[str, float]:
    """The logged adaptation statistics (DESIGN's metric names)."""
    return {
        "adapt/lambda": stats.lambda_,
        "adapt/ess": stats.ess,
        "adapt/beta_mean": float(stats.beta.mean()),
        "adapt/classifier_acc": stats.classifier_acc,
    }


def _mean_return(module: MQLMetaTrain, task_index: int, n: int) -> tuple[float, list[Any]]:
    episodes = [module.eval_rollouts.run_episode(task_index) for _ in range(n)]
    return statistics.fmean(float(ep[keys.REWARD].sum()) for ep in episodes), episodes


def evaluate_task(module: MQLMetaTrain, task_index: int, adapt: bool | None = None) -> TaskResult:
    """Return before and after adaptation on eval task ``task_index``; ``module`` is left unchanged."""
    cfg = module.eval_cfg
    adapt = cfg.adapt if adapt is None else adapt
    policy = module.eval_rollouts.policy
    policy.use(module.actor, module.actor_encoder)
    pre, episodes = _mean_return(module, task_index, cfg.episodes)
    if not adapt or len(module.replay) == 0:
        return TaskResult(task_index, pre, pre)
    # A seed that depends only on where the run is, so a resumed run adapts identically.
    adapter = MQLAdapt(module, seed=hash((module.seed, module.env_steps, task_index)) % (2**31))
    with torch.enable_grad():
        stats = adapter.adapt(episodes[0])
    policy.use(adapter.actor, adapter.actor_encoder)
    try:
        post, _ = _mean_return(module, task_index, cfg.episodes)
    finally:
        policy.use(module.actor, module.actor_encoder)
    return TaskResult(task_index, pre, post, stats, adapt_metrics(stats), {"adapt/beta": stats.beta})
