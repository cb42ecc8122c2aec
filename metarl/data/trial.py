"""RL²'s trial (Duan et al. 2016, "RL²: Fast Reinforcement Learning via Slow Reinforcement Learning",
§2.2; the lecture's "hidden state maintained across episodes within a task"): N episodes of one task
run as **one** gymnasium episode.

Inner episodes reset the wrapped env here, inside the wrapper, and end nothing outside it: TorchRL
sees one episode per trial, so ``InitTracker`` marks ``is_init`` only at a trial's start and a
``GRUModule`` (which zeroes its hidden state wherever ``is_init`` is true) carries h across inner
episodes. The trial ends (terminated or truncated, as the last inner episode did) after the N-th.

The policy's input is x_t = [o_t, a_{t-1}, r_{t-1}, d_{t-1}] (the paper's §2.2 tuple), zeros at the
trial's start. At an inner boundary the two reference codes differ (methods-reference §4.1 step 2):
``boundary="paper"`` (default) passes the ended episode's last action and reward with d = 1, so the
policy sees the episode end; ``boundary="zeros"`` zeroes (a, r, d) as garage's ``RL2Env`` and ProMP's
``rl2_env`` do, where the policy never sees d = 1.

A step that ends an inner episode returns the next episode's first observation (the trial goes on);
the ended episode's final observation is in ``info["inner_final_observation"]`` (on-policy RL² never
bootstraps from it). ``info["inner_episode"]`` is the index of the inner episode the step belongs to,
so returns can be cut per inner episode (ProMP) or run over the trial (garage).
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["TrialWrapper"]

Boundary = Literal["paper", "zeros"]


class TrialWrapper(gym.Wrapper):
    """``n_episodes`` episodes of the wrapped env (same task) as one episode, observing
    ``[o, a_prev, r_prev, d_prev]``. Needs a flat Box observation and action space."""

    def __init__(self, env: gym.Env, n_episodes: int, boundary: Boundary = "paper") -> None:
        super().__init__(env)
        if n_episodes < 1:
            raise ValueError(f"TrialWrapper: n_episodes must be >= 1, got {n_episodes}")
        if boundary not in ("paper", "zeros"):
            raise ValueError(f"TrialWrapper: boundary must be 'paper' or 'zeros', got {boundary!r}")
        obs_space, act_space = env.observation_space, env.action_space
        if not (isinstance(obs_space, spaces.Box) and isinstance(act_space, spaces.Box)
                and len(obs_space.shape) == 1 and len(act_space.shape) == 1):
            raise ValueError("TrialWrapper: needs flat Box observation and action spaces, got "
                             f"{obs_space} and {act_space}")
        self.n_episodes = n_episodes
        self.boundary = boundary
        self.obs_dim, self.act_dim = obs_space.shape[0], act_space.shape[0]
        # The previous action is the one the env clips to its box; the reward and the flag are unbounded.
        low = np.concatenate([obs_space.low, act_space.low, [-np.inf, 0.0]]).astype(np.float64)
        high = np.concatenate([obs_space.high, act_space.high, [np.inf, 1.0]]).astype(np.float64)
        self.observation_space = spaces.Box(low, high, dtype=np.float64)
        self.inner_episode = 0

    def _augment(self, obs: Any, action: Any, reward: float, done: bool) -> np.ndarray:
        a = np.zeros(self.act_dim) if action is None else np.asarray(action, dtype=np.float64).reshape(-1)
        return np.concatenate([np.asarray(obs, dtype=np.float64).reshape(-1), a, [float(reward), float(done)]])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """A new trial: the first inner episode, with zeros for (a, r, d)."""
        self.inner_episode = 0
        obs, info = self.env.reset(seed=seed, options=options)
        return self._augment(obs, None, 0.0, False), {**info, "inner_episode": 0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "inner_episode": self.inner_episode}
        inner_done = bool(terminated or truncated)
        if inner_done and self.inner_episode + 1 < self.n_episodes:
            # The trial goes on: the next inner episode starts now, on the same task (no set_task).
            self.inner_episode += 1
            info["inner_final_observation"] = obs
            start, _ = self.env.reset()
            if self.boundary == "paper":
                return self._augment(start, action, reward, True), float(reward), False, False, info
            return self._augment(start, None, 0.0, False), float(reward), False, False, info
        return self._augment(obs, action, reward, inner_done), float(reward), bool(terminated), bool(truncated), info
