"""PEARLAdapt: what adapting to a new task means for PEARL (Rakelly et al. 2019, §4 and Algorithm 2):
no gradient step; the posterior q(z | c) is inferred from the task's own transitions, gathered
online as the agent acts (oyster ``update_context`` / ``infer_posterior``), and z is sampled from it.

Meta-test protocol, per eval task and run (oyster ``collect_paths``)::

    belief = prior N(0, I); context = {}
    until ``num_steps_per_eval`` transitions: one deterministic trajectory with z ~ belief, its
        transitions added to the context; after ``num_exp_traj_eval`` trajectories the belief is
        q(z | all of the context)
    the return of the first trajectory (prior z) is the pre-adaptation return, that of the last
    trajectory the post-adaptation return (the paper's metric).
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import Tensor

from metarl.methods.pearl.settings import PEARLAdaptSettings
from metarl.nets import ProbContextEncoder
from metarl.training.module import AdaptModule


class PEARLAdapt(AdaptModule):
    """Posterior inference over z from one new task's online context. It holds the meta-trained
    encoder read-only (inference takes no gradient step, so there is nothing to copy)."""

    def __init__(self, encoder: ProbContextEncoder, settings: PEARLAdaptSettings) -> None:
        super().__init__()
        self.cfg = settings
        self.encoder = encoder
        self.latent_size = encoder.latent_size
        self._context: list[Tensor] = []

    def reset(self) -> None:
        """Forget the task: the belief is the prior again."""
        self._context = []

    def observe(self, trajectory: TensorDictBase) -> None:
        """Add a trajectory's transitions (o, a, r[, o']) to the context."""
        self._context.append(ProbContextEncoder.context_from(trajectory, self.encoder.use_next_obs))

    @property
    def n_transitions(self) -> int:
        return sum(c.shape[0] for c in self._context)

    @torch.no_grad()
    def posterior(self) -> tuple[Tensor, Tensor]:
        """(mu, var) [latent_size] of q(z | all transitions observed); the prior before any."""
        if not self._context:
            return torch.zeros(self.latent_size), torch.ones(self.latent_size)
        context = torch.cat(self._context, dim=0).unsqueeze(0).to(self.encoder.device)
        mu, var = self.encoder.posterior(context)
        return mu[0].cpu(), var[0].cpu()
