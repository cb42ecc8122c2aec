"""Grouped hyperparameters: each group is one section of an experiment YAML."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CollectSettings:
    """How data is gathered during meta-training (MQL reference §2.4-2.6)."""

    episodes_per_iter: int = 5  # reference `num_tasks_sample`
    expl_noise: float = 0.3  # paper Table 1 "TD3 exploration noise"
    cold_start_steps: int = 10_000  # reference: max(num_initial_steps * n_train, burn_in)
    cold_start_episode_len: int = 50  # reference: max_path_length / 4 during the cold start
    min_replay_for_full_updates: int = 100_000  # reference `min_buffer_size`
    replay_size: int = 1_000_000  # reference `replay_size` (pooled over tasks)
    snapshot_size: int = 2000  # reference `snapshot_size`: recent per-task data for the classifier

    def validate(self) -> None:
        for name in ("episodes_per_iter", "replay_size", "snapshot_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"collect.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("cold_start_steps", "cold_start_episode_len", "min_replay_for_full_updates"):
            if getattr(self, name) < 0:
                raise ValueError(f"collect.{name} must be >= 0, got {getattr(self, name)}")
        if self.expl_noise < 0:
            raise ValueError(f"collect.expl_noise must be >= 0, got {self.expl_noise}")


@dataclass(frozen=True)
class EvalSettings:
    """The validation loop: adaptation on held-out tasks every ``every_env_steps``."""

    every_env_steps: int = 10_000  # reference `eval_freq`
    num_tasks: int | None = None  # None: every eval task; else the first k (adaptation is costly)
    episodes: int = 2  # reference `num_evals` (configs/pearl_envs.json)
    adapt: bool = True  # False gives TD3-context (paper §4.3)

    def validate(self) -> None:
        if self.every_env_steps < 1:
            raise ValueError(f"eval.every_env_steps must be >= 1, got {self.every_env_steps}")
        if self.num_tasks is not None and self.num_tasks < 1:
            raise ValueError(f"eval.num_tasks must be >= 1 or null, got {self.num_tasks}")
        if self.episodes < 1:
            raise ValueError(f"eval.episodes must be >= 1, got {self.episodes}")
