"""The coordinating LightningModules and their helpers."""

from metarl.training.adapt import AdaptModule
from metarl.training.adapt_settings import AdaptSettings
from metarl.training.base import MetaRLBase, TD3Settings
from metarl.training.meta_train import MetaTrainModule
from metarl.training.settings import CollectSettings, EvalSettings

__all__ = [
    "AdaptModule", "AdaptSettings", "CollectSettings", "EvalSettings", "MetaRLBase", "MetaTrainModule",
    "TD3Settings",
]
