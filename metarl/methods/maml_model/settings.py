"""MAML with a model (GrBAL)'s hyperparameter groups. Defaults are learning_to_adapt's
``run_scripts/run_grbal.py`` (iclavera/learning_to_adapt at bd7d99b; methods-reference §6.2) where it
has the setting; the point-robot check's values (methods-reference §8.4) and the per-env values with
their sources are in the configs. The model's sizes, learning rate and inner step size belong to the
model (``model.init_args``: ``DeltaDynamicsModel``)."""

from __future__ import annotations

from dataclasses import dataclass

PLANNERS = ("random_shooting", "cem")


def _at_least(section: str, obj: object, names: tuple[str, ...], low: int) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{section}.{name} must be an int >= {low}, got {value!r}")


@dataclass(frozen=True)
class MAMLModelSettings:
    """The model's meta-training (GrBAL Algorithm 1; learning_to_adapt ``MetaMLPDynamicsModel``): each
    meta-step draws ``meta_batch`` segments of ``past_steps + future_steps`` consecutive transitions, takes
    one inner SGD step on all weights on each segment's M past transitions and an Adam step on the mean
    loss of the adapted models on the K future ones."""

    past_steps: int = 16  # M, adapt_batch_size: the inner step's data, in training and online
    future_steps: int = 16  # K: learning_to_adapt scores the adapted model on the next M (K = M)
    meta_batch: int = 10  # meta_batch_size: segments per meta-step
    updates_per_iter: int = 1000  # [M] meta-steps per iteration (learning_to_adapt: epochs with early stopping)
    first_order: bool = False  # True: FOMAML (learning_to_adapt differentiates through the inner step)

    def validate(self) -> None:
        _at_least("maml", self, ("past_steps", "future_steps", "meta_batch", "updates_per_iter"), 1)

    @property
    def segment_steps(self) -> int:
        return self.past_steps + self.future_steps


@dataclass(frozen=True)
class CollectSettings:
    """Data collection per iteration (learning_to_adapt ``Trainer.train`` and ``Sampler``): every episode
    on a uniformly drawn train task (``reset_every_episode``); the first iteration acts at random
    (``initial_random_samples``), later ones plan with the model, adapted online at every step."""

    initial_random_steps: int = 5000  # the first iteration: uniform random actions (num_rollouts x max_path_length)
    steps_per_iter: int = 5000  # later iterations: MPC with online adaptation (5 rollouts x 1000 steps)
    adapt_online: bool = True  # adapt at every step while collecting (the Sampler's adapt_batch_size)
    replay_size: int = 1_000_000  # [M] transitions kept, pooled over the train tasks (learning_to_adapt keeps all)

    def validate(self) -> None:
        _at_least("collect", self, ("steps_per_iter", "replay_size"), 1)
        _at_least("collect", self, ("initial_random_steps",), 0)


@dataclass(frozen=True)
class MPCSettings:
    """The controller (learning_to_adapt ``MPCController``; ``metarl.algorithms.mpc``): plan with the
    (adapted) model and execute the first action of the best sequence."""

    planner: str = "random_shooting"  # use_cem false; "cem" for the cross-entropy method
    n_candidates: int = 500  # action sequences scored per step
    horizon: int = 10  # planning horizon H
    discount: float = 1.0  # gamma of the predicted return
    cem_iterations: int = 5  # num_cem_iters (CEM only)
    cem_elite_frac: float = 0.1  # percent_elites (CEM only)
    cem_alpha: float = 0.1  # mean smoothing (CEM only)

    def validate(self) -> None:
        if self.planner not in PLANNERS:
            raise ValueError(f"mpc.planner must be one of {', '.join(PLANNERS)}, got {self.planner!r}")
        _at_least("mpc", self, ("n_candidates", "horizon", "cem_iterations"), 1)
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"mpc.discount must be in [0, 1], got {self.discount}")
        if not 0.0 < self.cem_elite_frac <= 1.0:
            raise ValueError(f"mpc.cem_elite_frac must be in (0, 1], got {self.cem_elite_frac}")
        if not 0.0 <= self.cem_alpha < 1.0:
            raise ValueError(f"mpc.cem_alpha must be in [0, 1), got {self.cem_alpha}")
