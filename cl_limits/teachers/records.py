"""The DQN teacher's state and records (`cl_limits/teachers/dqn.py` builds the functions over them)."""
from __future__ import annotations

from typing import Any

import chex
from flax import struct

from cl_limits.histories.history import History


@struct.dataclass
class Replay:
  obs: chex.Array        # [B, *obs]
  action: chex.Array     # [B] int32
  reward: chex.Array     # [B]
  terminated: chex.Array  # [B] bool
  next_obs: chex.Array   # [B, *obs] the real next observation (before any auto-reset)
  ptr: chex.Array        # int32
  size: chex.Array       # int32


@struct.dataclass
class Transitions:
  """Recorded transitions for `follow`, fields [E, T]: obs, action, reward, terminated, and next_obs, the
  real next observation (the episode's last one where it ended, not the reset's)."""
  obs: chex.Array
  action: chex.Array
  reward: chex.Array
  terminated: chex.Array
  next_obs: chex.Array


@struct.dataclass
class TeacherState:
  params: Any
  target_params: Any
  opt_state: Any
  replay: Replay
  env_state: Any         # [E] batched env states
  obs: chex.Array        # [E, *obs]
  episode: chex.Array    # [E] int32 episode index per stream
  updates: chex.Array    # int32 gradient updates applied
  env_steps: chex.Array  # int32 transitions seen, all streams
  ep_return: chex.Array  # [E] float32 return of each stream's running episode
  rng: chex.Array        # raw key data (uint32), so states checkpoint without typed keys


@struct.dataclass
class SegmentOutput:
  history: History       # [E, T_segment, ...]
  episode_return: chex.Array  # [E, T_segment] return of the episode that ended at this step, else nan
  loss: chex.Array       # [num_updates_in_segment]
  q_mean: chex.Array     # [num_updates_in_segment]



@struct.dataclass
class _Teacher:
  init: Any = struct.field(pytree_node=False)
  segment: Any = struct.field(pytree_node=False)
  train: Any = struct.field(pytree_node=False)
  greedy_action: Any = struct.field(pytree_node=False)
  q_fn: Any = struct.field(pytree_node=False)
  network: Any = struct.field(pytree_node=False)
  num_segments: int = struct.field(pytree_node=False)
  epsilon: Any = struct.field(pytree_node=False)
  segment_iters: int = struct.field(pytree_node=False)
  follow: Any = struct.field(pytree_node=False, default=None)
