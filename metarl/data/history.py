"""GRU context windows: the (action, reward, observation) history before each step, MQL layout.

One window step is ``cat(a_k, r_k, o_k)`` (size ``act_dim + 1 + obs_dim``, the order of the MQL
reference, §1): ``o_k`` is the observation at which ``a_k`` was taken and ``r_k`` the reward it
earned. A window holds the H steps k < t of the current episode, oldest first, zero-padded at
the front; the next-window (for the target nets at t + 1) is the window for k <= t.

The same window is built twice and the two must agree exactly (tested):

* at acting time, by :class:`HistoryTransform` inside the TorchRL env, for the collector policy;
* at training time, by :func:`gather_history` from the replay ring (histories are never stored,
  so replay memory stays O(transitions), independent of H).

Unlike the MQL code, the first pre-history is all zeros (no random pseudo-entry (a_rand, 0, o_0));
the author says zeros do as well (reference §1, issue #4).
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import Tensor
from torchrl.data import Unbounded
from torchrl.envs.transforms import Transform

from metarl import keys


def step_features(action: Tensor, reward: Tensor, observation: Tensor) -> Tensor:
    """One window step per row: [..., act_dim], [..., 1], [..., obs_dim] -> [..., act_dim + 1 + obs_dim]."""
    dtype = torch.float32
    return torch.cat([action.to(dtype), reward.to(dtype), observation.to(dtype)], dim=-1)


def window_transitions(
    history: Tensor, observation: Tensor, steps: int, act_dim: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The current episode's newest ``k = min(steps, H)`` transitions from its acting-time window.

    Args:
        history: ``[H, act_dim + 1 + obs_dim]``, the window of :class:`HistoryTransform` at step t
            (the steps k < t of the episode, oldest first, zeros before its start).
        observation: ``[obs_dim]``, o_t. steps: t, the step count of the episode (0 at its reset).

    Returns:
        ``(o_k, a_k, r_k, o_{k+1})`` as ``[k, obs_dim]``, ``[k, act_dim]``, ``[k, 1]``, ``[k, obs_dim]``
        for the k newest steps of the episode: each window step's successor observation is the next
        window step's, the newest one's is o_t. The zero padding is never returned.
    """
    horizon = history.shape[-2]
    k = min(int(steps), horizon)
    action, reward, obs = history[..., :act_dim], history[..., act_dim : act_dim + 1], history[..., act_dim + 1 :]
    next_obs = torch.cat([obs[1:], observation.reshape(1, -1).to(obs.dtype)], dim=0)
    return obs[horizon - k :], action[horizon - k :], reward[horizon - k :], next_obs[horizon - k :]


def gather_history(
    action: Tensor,
    reward: Tensor,
    observation: Tensor,
    step_count: Tensor,
    episode: Tensor,
    slots: Tensor,
    capacity: int,
    history_len: int,
) -> tuple[Tensor, Tensor]:
    """Pre- and next-history windows of the transitions at ``slots`` of a ring-region storage.

    The storage is flat, ``N = n_regions * capacity`` rows; region r (one task) occupies rows
    ``[r * capacity, (r + 1) * capacity)`` and is a ring written in time order, so the k-th
    predecessor of the transition at ring position p sits at position ``(p - k) % capacity`` of
    the same region.

    Args:
        action: [N, act_dim]; reward: [N, 1]; observation: [N, obs_dim] (the stored transitions).
        step_count: [N] int, t within its episode; episode: [N] int, episode id (-1 = never written).
        slots: [B] int64 flat row indices of the transitions whose windows are wanted.
        capacity: rows per region; history_len: H.

    Returns:
        ``(history, next_history)``, each [B, H, act_dim + 1 + obs_dim] float32, oldest first.
        A window entry is kept only if its row holds the same episode at exactly the expected
        earlier step; everything else (steps before the episode start, rows since overwritten by
        newer data of the ring) is zero. Since a ring overwrites its oldest rows first, the zeros
        always form a prefix of the window, just like the zero padding at acting time.
    """
    device = slots.device
    offsets = torch.arange(history_len, 0, -1, device=device)  # H, ..., 1: oldest first
    region_start = torch.div(slots, capacity, rounding_mode="floor") * capacity
    pos = slots - region_start
    window = region_start[:, None] + (pos[:, None] - offsets[None, :]) % capacity  # [B, H]
    t = step_count[slots]
    # Same episode id AND the exact earlier step: with per-task increasing episode ids and
    # contiguous writes (enforced by MultiTaskReplay.extend), this rejects the previous episode,
    # wrap-around into newer data, and never-written rows (episode -1).
    valid = (episode[window] == episode[slots][:, None]) & (step_count[window] == t[:, None] - offsets[None, :])
    feats = step_features(action[window], reward[window], observation[window])
    # where, not multiply: a rejected row may hold anything (inf/nan from another episode).
    history = torch.where(valid[..., None], feats, torch.zeros((), dtype=feats.dtype, device=device))
    current = step_features(action[slots], reward[slots], observation[slots])
    next_history = torch.cat([history[:, 1:], current[:, None]], dim=1)
    return history, next_history


class HistoryTransform(Transform):
    """Keeps the pre-history window under ``"history"`` at acting time: [*batch, H, act_dim + 1 + obs_dim].

    Zeros at reset; after each step, ``("next", "history")`` is the window shifted left by one
    with ``cat(action, next.reward, observation)`` appended (the observation *before* the step),
    so after ``step_mdp`` the policy reads the window of the new current step. Put it after
    ``DoubleToFloat`` and ``StepCounter``. The window at step t equals what
    :meth:`MultiTaskReplay.sample` reconstructs for the same transition.
    """

    def __init__(self, history_len: int, obs_dim: int, act_dim: int) -> None:
        for name, value in (("history_len", history_len), ("obs_dim", obs_dim), ("act_dim", act_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"HistoryTransform: {name} must be an int >= 1, got {value!r}")
        super().__init__(in_keys=[], out_keys=[keys.HISTORY])
        self.history_len = history_len
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.feature_dim = act_dim + 1 + obs_dim

    def _zeros(self, like: TensorDictBase) -> Tensor:
        return torch.zeros(
            (*like.batch_size, self.history_len, self.feature_dim), dtype=torch.float32, device=like.device
        )

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        history = self._zeros(tensordict_reset)
        reset = tensordict.get("_reset", None) if tensordict is not None else None
        old = tensordict.get(keys.HISTORY, None) if tensordict is not None else None
        if reset is not None and old is not None:
            # Partial reset of a batched env: only the reset sub-envs start from zeros.
            mask = reset.reshape(*tensordict_reset.batch_size, -1).any(-1)[..., None, None]
            history = torch.where(mask, history, old.to(history.device))
        tensordict_reset.set(keys.HISTORY, history)
        return tensordict_reset

    def _reset_on_native_autoreset(
        self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        return self._reset(tensordict, tensordict_reset)

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        history = tensordict.get(keys.HISTORY, None)
        if history is None:
            raise KeyError(
                f"HistoryTransform: the input tensordict has no {keys.HISTORY!r} entry; step from a "
                "tensordict produced by this env's reset()/step()"
            )
        # _step sees the "next" level itself, so the reward is at REWARD[-1]; the observation is the one
        # the action was taken at (the root), as in the replay's window.
        reward = next_tensordict.get(keys.REWARD[-1])
        new = step_features(tensordict.get(keys.ACTION), reward, tensordict.get(keys.OBS)).to(history.device)
        if new.shape[-1] != self.feature_dim:
            raise ValueError(
                f"HistoryTransform: act_dim + 1 + obs_dim = {new.shape[-1]} in the data, but the transform "
                f"was built for {self.feature_dim} (act_dim={self.act_dim}, obs_dim={self.obs_dim})"
            )
        next_tensordict.set(keys.HISTORY, torch.cat([history[..., 1:, :], new.unsqueeze(-2)], dim=-2))
        return next_tensordict

    def transform_observation_spec(self, observation_spec):  # type: ignore[no-untyped-def]
        observation_spec[keys.HISTORY] = Unbounded(
            shape=(*observation_spec.shape, self.history_len, self.feature_dim),
            dtype=torch.float32,
            device=observation_spec.device,
        )
        return observation_spec
