"""MAML-PG (Finn et al. 2017): a Gaussian MLP policy meta-trained so that one policy-gradient step on
a new task's episodes improves it; MAML-TRPO outer step through the inner step (MAMLMetaTrain);
adaptation is that inner step (MAMLAdapt)."""

from metarl.methods.maml.adapt import MAMLAdapt
from metarl.methods.maml.meta_train import MAMLMetaTrain
from metarl.methods.maml.settings import MAMLSettings

__all__ = ["MAMLAdapt", "MAMLMetaTrain", "MAMLSettings"]
