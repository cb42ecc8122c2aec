"""MIER and MIER-wR (Mendonca et al. 2020): a context-conditioned dynamics and reward model meta-trained
so that a few gradient steps on its context vector φ identify a task (MIERMetaTrain), a SAC-v2 policy
acting on [s, φ]; adaptation is model identification (MIER-wR), plus relabeling other tasks' data with
the adapted model and continued SAC on it (MIER, ``adapt.relabel``; MIERAdapt)."""

from metarl.methods.mier.adapt import MIERAdapt
from metarl.methods.mier.meta_train import MIERMetaTrain
from metarl.methods.mier.settings import MIERAdaptSettings, MIERCollectSettings, SACv2Settings

__all__ = ["MIERAdapt", "MIERAdaptSettings", "MIERCollectSettings", "MIERMetaTrain", "SACv2Settings"]
