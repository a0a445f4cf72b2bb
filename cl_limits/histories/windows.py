"""Training windows over learning histories that never cross from one history into another.

Histories (one per seed x task x stream, possibly of different lengths once episodes are dropped by the
`gap` knob) are concatenated into flat arrays; `WindowIndex` lists every start position whose window of
`context_len` steps stays inside one history, and `sample` draws starts uniformly from that list.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class WindowIndex:
  starts: chex.Array        # int32 [num_valid]: flat index of every valid window start
  history_id: chex.Array    # int32 [N]: which history each flat step belongs to
  history_start: chex.Array  # int32 [N]: flat index where that step's history begins
  context_len: int = struct.field(pytree_node=False)


def build_index(lengths, context_len: int) -> WindowIndex:
  """lengths: steps of each history in flat (concatenated) order."""
  lengths = np.asarray(lengths, np.int64)
  if context_len < 1:
    raise ValueError(f"context_len must be >= 1, got {context_len}")
  if (lengths < 0).any():
    raise ValueError("history lengths must be >= 0")
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  starts = [np.arange(offsets[h], offsets[h + 1] - context_len + 1) for h in range(len(lengths))
            if lengths[h] >= context_len]
  if not starts:
    raise ValueError(f"no history is at least context_len={context_len} steps long "
                     f"(longest: {int(lengths.max()) if lengths.size else 0})")
  hid = np.repeat(np.arange(len(lengths)), lengths)
  return WindowIndex(starts=jnp.asarray(np.concatenate(starts), jnp.int32),
                     history_id=jnp.asarray(hid, jnp.int32),
                     history_start=jnp.asarray(offsets[:-1][hid], jnp.int32), context_len=context_len)


def sample(index: WindowIndex, key, batch_size: int):
  """Flat step indices [batch_size, context_len] of uniformly drawn valid windows."""
  pick = jax.random.randint(key, (batch_size,), 0, index.starts.shape[0])
  return index.starts[pick][:, None] + jnp.arange(index.context_len)[None, :]


def previous_index(index: WindowIndex, idx):
  """Flat index of the step before each idx in the same history, and whether one exists."""
  has_prev = idx > index.history_start[idx]
  return jnp.where(has_prev, idx - 1, idx), has_prev


def flatten_streams(x, time_axis: int = 3):
  """[seeds, tasks, streams, T, ...] -> [seeds * tasks * streams * T, ...] in history-major order."""
  x = np.asarray(x)
  lead = int(np.prod(x.shape[:time_axis + 1]))
  return x.reshape((lead,) + x.shape[time_axis + 1:])
