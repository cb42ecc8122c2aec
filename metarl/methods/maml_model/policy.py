"""The acting policy the collector runs for MAML with a model: uniform random actions (the first
iteration's data, learning_to_adapt ``initial_random_samples``), MPC with the meta-trained model
("plan"), or MPC with online adaptation at every step ("adapt", GrBAL's). The episode's last M
transitions come from the env's own history window (``HistoryTransform``, zero-padded at the
episode's start), so the policy keeps no state across steps but its generator."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from metarl import keys
from metarl.methods.maml_model.adapt import MAMLModelAdapt

MODES = ("random", "plan", "adapt")


class MPCPolicy:
    """All randomness (random actions, the planner's candidates) comes from ``generator``."""

    def __init__(self, adapter: MAMLModelAdapt, generator: torch.Generator) -> None:
        self.adapter = adapter
        self.generator = generator
        self.mode = "adapt"

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"MPCPolicy: unknown mode {mode!r}; allowed: {MODES}")
        self.mode = mode

    @torch.no_grad()
    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        shape = (*td.batch_size, self.adapter.act_dim)
        if self.mode == "random":
            action = torch.rand(shape, generator=self.generator) * 2 - 1
        else:
            obs = td[keys.OBS].reshape(-1)
            window = td[keys.HISTORY].reshape(td[keys.HISTORY].shape[-2:])
            steps = int(td[keys.STEP_COUNT].reshape(-1)[0])
            action = self.adapter.act(obs, window, steps, self.generator, online=self.mode == "adapt")
        td.set(keys.ACTION, action.cpu().reshape(shape))
        return td

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
