"""RL² (Duan et al. 2016): black-box meta-RL. A recurrent Gaussian policy reads (o, a_prev, r_prev,
d_prev) over trials of N episodes of one task, its hidden state carried across the episodes, and is
meta-trained with PPO (or TRPO) on the trials' return (RL2MetaTrain); adaptation is the hidden state
over a trial on a new task (RL2Adapt)."""

from metarl.methods.rl2.adapt import RL2Adapt, inner_episode_returns
from metarl.methods.rl2.meta_train import RL2MetaTrain
from metarl.methods.rl2.settings import OuterSettings, RL2AdaptSettings, TrialSettings

__all__ = ["OuterSettings", "RL2Adapt", "RL2AdaptSettings", "RL2MetaTrain", "TrialSettings",
           "inner_episode_returns"]
