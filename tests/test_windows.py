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
  if max(lengths) == 0:
    with pytest.raises(ValueError, match="no history has any steps"):
      windows.build_index(lengths, context_len)
    return
  index = windows.build_index(lengths, context_len)
  idx, valid = (np.asarray(a) for a in windows.sample(index, jax.random.key(seed), 64))
  hid = np.asarray(index.history_id)[idx]
  assert (hid == hid[:, :1]).all(), "a window spans two histories"
  # Valid steps are consecutive from the start, padding only at the end of a short history's window.
  for row, ok in zip(idx, valid):
    n = int(ok.sum())
    assert ok[:n].all() and not ok[n:].any()
    assert (np.diff(row[:n]) == 1).all(), "a window is not consecutive"
    assert n == min(context_len, lengths[int(np.asarray(index.history_id)[row[0]])])
  # Every legal start is listed exactly once: n - C + 1 per history at least C long, 1 per shorter one.
  want = sum(max(n - context_len + 1, 1) for n in lengths if n > 0)
  assert index.starts.shape[0] == want


def test_every_legal_start_is_drawn_and_no_other():
  """Histories of 5, 3 and 8 steps, windows of 4: legal starts are steps 0-1 of the first (windows ending
  at its last step included), the first step of the 3-step one (padded: its 4th step masked), and steps
  0-4 of the third. Drawn 4,000 times, every one appears, nothing else does, about uniformly."""
  index = windows.build_index([5, 3, 8], 4)
  legal = {0, 1, 5, 8, 9, 10, 11, 12}
  assert set(np.asarray(index.starts).tolist()) == legal
  idx, valid = (np.asarray(a) for a in windows.sample(index, jax.random.key(0), 4_000))
  starts = idx[:, 0]
  counts = {s: int((starts == s).sum()) for s in legal}
  assert set(starts.tolist()) == legal
  assert min(counts.values()) > 4_000 / len(legal) * 0.7
  short = starts == 5
  np.testing.assert_array_equal(valid[short][0], [True, True, True, False])
  assert (idx[short][:, 3] == 7).all()            # the masked step repeats the history's last step
  assert valid[~short].all()
  ends = {s: s + 3 for s in legal if s != 5}
  assert 4 in {ends[s] for s in (0, 1)} and 15 in {ends[s] for s in range(8, 13)}   # last steps reached


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
