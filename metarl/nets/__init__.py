"""The networks as LightningModules: they own their hyperparameters and optimizer settings, define no
training_step and never log; each method's MetaTrainModule and AdaptModule coordinate them.

MQL: Actor, TwinCritic, ContextEncoder. PEARL: ProbContextEncoder, TanhGaussianActor, TwinCritic
(three layers of 300), ValueNet. Model-based: ContextualGaussianModel (MIER), DeltaDynamicsModel (GrBAL).
On-policy: RecurrentGaussianPolicy (RL²), GaussianMLPPolicy (MAML-PG)."""

from metarl.nets.actor import Actor
from metarl.nets.critic import TwinCritic
from metarl.nets.dynamics import ContextualGaussianModel, DeltaDynamicsModel
from metarl.nets.encoder import ContextEncoder
from metarl.nets.gaussian_mlp import GaussianMLPPolicy
from metarl.nets.prob_encoder import ProbContextEncoder
from metarl.nets.recurrent_policy import RecurrentGaussianPolicy
from metarl.nets.tanh_gaussian import TanhGaussianActor, TanhGaussianOutput
from metarl.nets.value import ValueNet

__all__ = [
    "Actor",
    "ContextEncoder",
    "ContextualGaussianModel",
    "DeltaDynamicsModel",
    "GaussianMLPPolicy",
    "ProbContextEncoder",
    "RecurrentGaussianPolicy",
    "TanhGaussianActor",
    "TanhGaussianOutput",
    "TwinCritic",
    "ValueNet",
]
