"""What every method shares: the MetaTrainModule / AdaptModule contract, the run loop and schedule,
the meta-test protocol and report, checkpoints, exact resume and the callbacks."""

from metarl.training.evaluation import TaskResult, summarize
from metarl.training.module import AdaptModule, MetaTrainModule
from metarl.training.settings import EvalSettings

__all__ = ["AdaptModule", "EvalSettings", "MetaTrainModule", "TaskResult", "summarize"]
