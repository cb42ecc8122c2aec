"""PEARL (Rakelly et al., ICML 2019): off-policy meta-RL with a probabilistic context. SAC on states
and a latent z, z inferred by a permutation-invariant encoder (product of Gaussians) trained by the
Q loss and a KL bottleneck (PEARLMetaTrain); adaptation is posterior inference over z (PEARLAdapt)."""

from metarl.methods.pearl.adapt import PEARLAdapt
from metarl.methods.pearl.evaluation import evaluate_task
from metarl.methods.pearl.meta_train import PEARLMetaTrain
from metarl.methods.pearl.settings import PEARLAdaptSettings, PEARLCollectSettings, SACSettings

__all__ = ["PEARLAdapt", "PEARLAdaptSettings", "PEARLCollectSettings", "PEARLMetaTrain", "SACSettings",
           "evaluate_task"]
