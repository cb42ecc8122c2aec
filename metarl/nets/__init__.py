"""The networks of MQL as LightningModules: they own their hyperparameters and optimizer settings,
define no training_step and never log; MetaTrainModule and AdaptModule coordinate them."""

from metarl.nets.actor import Actor
from metarl.nets.critic import TwinCritic
from metarl.nets.encoder import ContextEncoder

__all__ = ["Actor", "ContextEncoder", "TwinCritic"]
