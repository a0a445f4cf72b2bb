"""The window sampler never returns a window that spans two histories."""
import jax
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cl_limits.histories import windows


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 40), min_size=1, max_size=12), context_len=st.integers(1, 16),
       seed=st.integers(0, 2**31 - 1))
def test_windows_never_cross_histories(lengths, context_len, seed):
  if max(lengths) < context_len:
    with pytest.raises(ValueError, match="no history is at least context_len"):
      windows.build_index(lengths, context_len)
    return
  index = windows.build_index(lengths, context_len)
  idx = np.asarray(windows.sample(index, jax.random.key(seed), 64))
  hid = np.asarray(index.history_id)[idx]
  assert (hid == hid[:, :1]).all(), "a window spans two histories"
  assert (np.diff(idx, axis=1) == 1).all(), "a window is not consecutive"
  # Every valid start is listed exactly once: the number of windows per history is length - C + 1.
  want = sum(max(n - context_len + 1, 0) for n in lengths)
  assert index.starts.shape[0] == want


def test_previous_index_stops_at_history_start():
  index = windows.build_index([3, 4], 2)
  prev, has = windows.previous_index(index, np.arange(7))
  np.testing.assert_array_equal(has, [False, True, True, False, True, True, True])
  np.testing.assert_array_equal(np.asarray(prev)[np.asarray(has)], [0, 1, 3, 4, 5])


def test_flatten_streams_is_history_major():
  x = np.arange(2 * 3 * 2 * 5).reshape(2, 3, 2, 5)
  flat = windows.flatten_streams(x)
  np.testing.assert_array_equal(flat[:5], x[0, 0, 0])
  np.testing.assert_array_equal(flat[5:10], x[0, 0, 1])
