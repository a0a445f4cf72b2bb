"""The ceiling of a training set and the P2 "exceed" test.

The *ceiling* of an imitator's training data is the best moving-average episode return found anywhere in
the histories it was trained on. Concretely, with the data as a [histories, episodes] matrix of the kept
episodes' returns in time order (NaN past a history's end):

  population curve  c[i] = mean over histories of the returns of kept episode i
  ceiling           max over i of the mean of c over the full window of `window` kept episodes ending at i
                    (the whole curve when it is shorter than `window`)

so one lucky episode of one history cannot set it; the window is a config value and is stated in the
report. P2 asks whether the frozen imitator's late return exceeds it.
"""
from __future__ import annotations

import numpy as np

from cl_limits.analysis import stats
from cl_limits.histories import history as history_lib


def episode_matrix(reward, done, keep=None):
  """Kept episodes' returns per history.

  Args: reward, done [H, T] (or any leading axes, flattened), keep [H, T] bool (None: all steps).
    An episode counts as kept when its final step is kept (arms keep whole episodes).
  Returns: (returns [H, E], end_step [H, E]) NaN / -1 padded; end_step is the 1-based step of the
    stream at which the episode ended, so curves can be drawn on the teacher's environment-step axis.
  """
  reward = np.asarray(reward, np.float64)
  done = np.asarray(done, bool)
  t_len = reward.shape[-1]
  reward, done = reward.reshape(-1, t_len), done.reshape(-1, t_len)
  keep = np.ones_like(done) if keep is None else np.asarray(keep, bool).reshape(-1, t_len)
  rows_r, rows_s = [], []
  for h in range(reward.shape[0]):
    r, s = history_lib.episode_returns(reward[h], done[h])
    kept = keep[h][s - 1] if s.size else np.zeros(0, bool)
    rows_r.append(r[kept])
    rows_s.append(s[kept])
  width = max([len(r) for r in rows_r] + [0])
  rets = np.full((len(rows_r), width), np.nan)
  ends = np.full((len(rows_r), width), -1, np.int64)
  for h, (r, s) in enumerate(zip(rows_r, rows_s)):
    rets[h, :len(r)] = r
    ends[h, :len(s)] = s
  return rets, ends


def population_curve(returns):
  """Mean over histories of each kept episode's return: [H, E] -> [E] (NaN-padded histories allowed)."""
  r = np.asarray(returns, np.float64)
  if r.ndim != 2 or r.shape[1] == 0 or np.isnan(r).all():
    raise ValueError(f"population_curve needs a [histories, episodes] matrix with some episodes, got {r.shape}")
  with np.errstate(all="ignore"):
    return np.nanmean(r, axis=0)


def ceiling(returns, window: int) -> tuple[float, int]:
  """(ceiling, episode index where the best window ends) of a [histories, episodes] return matrix."""
  if int(window) < 1:
    raise ValueError(f"ceiling window must be >= 1 episode (got {window})")
  c = population_curve(returns)
  c = c[~np.isnan(c)]
  w = min(int(window), c.size)
  sums = np.convolve(c, np.ones(w), mode="valid") / w
  i = int(np.argmax(sums))
  return float(sums[i]), i + w - 1


def exceed(late, ceiling_value: float, reps: int = 2000, seed: int = 0) -> dict:
  """How an imitator's late returns compare with a ceiling.

  late: [seeds] or [seeds, tasks] late returns. Returns
    diff  (mean late - ceiling, low, high): 95% bootstrap CI over seeds and tasks
    prob  (fraction of (seed, task) runs whose late return exceeds the ceiling, low, high)
  """
  late = np.asarray(late, np.float64)
  out = {"ceiling": float(ceiling_value),
         "diff": list(stats.bootstrap_ci(late - ceiling_value, reps=reps, seed=seed)),
         "prob": list(stats.bootstrap_ci((late > ceiling_value).astype(np.float64), reps=reps, seed=seed))}
  return out
