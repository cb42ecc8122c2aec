"""TensorDict keys: the data contract between collection, replay storage and the losses.

Follows TorchRL's conventions: what is observed after a step lives under ``"next"``.

A transition written to replay storage holds::

    observation            [obs_dim]   float32   o_t
    action                 [act_dim]   float32   a_t (in [-1, 1])
    task_id                []          int64     index into the family's train tasks
    step_count             []          int64     t, the step index within its episode (0 at reset)
    episode                []          int64     a global episode counter (tells episodes apart in a ring)
    next.observation       [obs_dim]   float32   o_{t+1}
    next.reward            [1]         float32   r_t
    next.terminated        [1]         bool      true termination (no bootstrap)
    next.truncated         [1]         bool      time-limit truncation (bootstraps)
    next.done              [1]         bool      terminated or truncated

A sampled batch adds the GRU context windows, gathered at sample time (never stored)::

    history                [H, act_dim + 1 + obs_dim]   the H (a, r, o) triples before t, oldest first,
                                                        zero-padded at the start of an episode
    next.history           [H, act_dim + 1 + obs_dim]   the same window for t + 1 (ends with (a_t, r_t, o_t))
    weight                 [1]                          per-sample loss weight (beta in eq. 19; 1 otherwise)
"""

from __future__ import annotations

OBS = "observation"
ACTION = "action"
TASK_ID = "task_id"
STEP_COUNT = "step_count"
EPISODE = "episode"
NEXT = "next"
NEXT_OBS = ("next", "observation")
REWARD = ("next", "reward")
TERMINATED = ("next", "terminated")
TRUNCATED = ("next", "truncated")
DONE = ("next", "done")
HISTORY = "history"
NEXT_HISTORY = ("next", "history")
WEIGHT = "weight"

#: Keys stored per transition in replay (histories are derived, not stored).
STORED_KEYS = (OBS, ACTION, TASK_ID, STEP_COUNT, EPISODE, NEXT_OBS, REWARD, TERMINATED, TRUNCATED, DONE)
