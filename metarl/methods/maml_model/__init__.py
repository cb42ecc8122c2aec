"""MAML with a model (GrBAL; Nagabandi et al., ICLR 2019; the lecture's "MAML with model-based RL"): a
dynamics-and-reward model meta-trained so that one gradient step on a task's last M transitions adapts it
(MAMLModelMetaTrain); acting is MPC with the model adapted online before every action (MAMLModelAdapt)."""

from metarl.methods.maml_model.adapt import MAMLModelAdapt
from metarl.methods.maml_model.meta_train import MAMLModelMetaTrain
from metarl.methods.maml_model.settings import CollectSettings, MAMLModelSettings, MPCSettings

__all__ = ["CollectSettings", "MAMLModelAdapt", "MAMLModelMetaTrain", "MAMLModelSettings", "MPCSettings"]
