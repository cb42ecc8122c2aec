"""Meta-Q-Learning (Fakoor et al., ICLR 2020): TD3 with a GRU context, meta-trained on the multi-task
objective (MQLMetaTrain, §3.1), adapted with eqs. 18-19 (MQLAdapt, §3.2)."""

from metarl.methods.mql.adapt import AdaptStats, MQLAdapt
from metarl.methods.mql.meta_train import MQLMetaTrain, evaluate_task
from metarl.methods.mql.settings import AdaptSettings, CollectSettings, TD3Settings

__all__ = ["AdaptSettings", "AdaptStats", "CollectSettings", "MQLAdapt", "MQLMetaTrain", "TD3Settings", "evaluate_task"]
