"""Training windows over learning histories that never cross from one history into another.

Histories (one per seed x task x stream, possibly of different lengths once episodes are dropped by the
`gap` knob) are concatenated into flat arrays; `WindowIndex` lists every legal start of a window of
`context_len` steps: every start whose window lies inside its history (so windows ending at a history's
last step are drawn too), and, for a history shorter than a window, its first step, the window then
padded past the history's end and those steps masked (`valid`). `sample` draws starts uniformly from the
list.
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
  history_end: chex.Array    # int32 [N]: flat index one past that step's history's last step
  context_len: int = struct.field(pytree_node=False)


def legal_starts(lengths, context_len: int) -> np.ndarray:
  """Flat index of every legal window start over histories of `lengths` (flat, concatenated order): for a
  history of n >= context_len steps, its first n - context_len + 1 steps; for a shorter, non-empty one,
  its first step (the window padded and masked past its end)."""
  lengths = np.asarray(lengths, np.int64)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  per = [np.arange(offsets[h], offsets[h] + max(int(lengths[h]) - context_len, 0) + 1)
         for h in range(len(lengths)) if lengths[h] > 0]
  return np.concatenate(per) if per else np.zeros((0,), np.int64)


def build_index(lengths, context_len: int) -> WindowIndex:
  """lengths: steps of each history in flat (concatenated) order."""
  lengths = np.asarray(lengths, np.int64)
  if context_len < 1:
    raise ValueError(f"context_len must be >= 1, got {context_len}")
  if (lengths < 0).any():
    raise ValueError("history lengths must be >= 0")
  starts = legal_starts(lengths, context_len)
  if not starts.size:
    raise ValueError("no history has any steps")
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  hid = np.repeat(np.arange(len(lengths)), lengths)
  return WindowIndex(starts=jnp.asarray(starts, jnp.int32),
                     history_id=jnp.asarray(hid, jnp.int32),
                     history_start=jnp.asarray(offsets[:-1][hid], jnp.int32),
                     history_end=jnp.asarray(offsets[1:][hid], jnp.int32), context_len=context_len)


def window_at(start, history_end, context_len: int):
  """(idx [..., context_len], valid [..., context_len]) of the windows starting at flat `start` [...]:
  steps past the end of the start's history are not valid, and their index repeats the history's last
  step (so that nothing reads past it)."""
  idx = start[..., None] + jnp.arange(context_len)
  end = history_end[start][..., None]
  valid = idx < end
  return jnp.where(valid, idx, end - 1), valid


def sample(index: WindowIndex, key, batch_size: int):
  """(idx, valid) [batch_size, context_len]: flat step indices of uniformly drawn legal windows, and which
  of their steps are inside the history (a window of a history shorter than context_len is padded)."""
  pick = jax.random.randint(key, (batch_size,), 0, index.starts.shape[0])
  return window_at(index.starts[pick], index.history_end, index.context_len)


def previous_index(index: WindowIndex, idx):
  """Flat index of the step before each idx in the same history, and whether one exists."""
  has_prev = idx > index.history_start[idx]
  return jnp.where(has_prev, idx - 1, idx), has_prev


def flatten_streams(x, time_axis: int = 3):
  """[seeds, tasks, streams, T, ...] -> [seeds * tasks * streams * T, ...] in history-major order."""
  x = np.asarray(x)
  lead = int(np.prod(x.shape[:time_axis + 1]))
  return x.reshape((lead,) + x.shape[time_axis + 1:])


def pad_starts(per_arm: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """Per-arm valid window starts -> (starts [A, max_n] int32 padded with 0, n_starts [A] int32)."""
  n = np.array([len(s) for s in per_arm], np.int32)
  out = np.zeros((len(per_arm), int(n.max())), np.int32)
  for a, s in enumerate(per_arm):
    out[a, :len(s)] = s
  return out, n
