"""Learning-curve statistics on the environment-step axis, numbers in and numbers out.

`step_mean` and `late_mean` summarise per-episode returns by environment steps rather than by episode
count, so envs whose episodes end early (DarkKeyToDoor, MinAtar) are weighted by the time spent in each
episode, as a learning curve over steps is. `binned_curve` is the statistic the DQN's curves hold.
"""
from __future__ import annotations

import warnings

import numpy as np

from cl_limits.histories import history as history_lib


def _lengths(ends):
  """Steps spent in each finished episode [..., E] (nan where unfinished)."""
  e = np.where(ends > 0, ends, np.nan).astype(np.float64)
  prev = np.concatenate([np.zeros(e.shape[:-1] + (1,)), e[..., :-1]], axis=-1)
  return e - prev


def step_mean(rets, ends, start: float = 0.0, horizon: float | None = None):
  """Step-weighted mean episode return over the finished episodes that end after `start` steps: the area
  under the return-vs-steps curve divided by its length. [..., E] -> [...]."""
  lengths = _lengths(ends)
  keep = np.isfinite(rets) & np.isfinite(lengths) & (np.where(ends > 0, ends, -1) > start)
  if horizon is not None:
    keep &= ends <= horizon
  w = np.where(keep, lengths, 0.0)
  with np.errstate(all="ignore"):
    return np.where(w.sum(-1) > 0, (np.where(keep, rets, 0.0) * w).sum(-1) / w.sum(-1), np.nan)


def late_mean(rets, ends, horizon: int, late_fraction: float):
  """Step-weighted mean return of the episodes that end in the last `late_fraction` of the horizon."""
  return step_mean(rets, ends, start=(1.0 - float(late_fraction)) * horizon)


def mean_curve(rets, ends, bins: int = 50, horizon: int | None = None):
  """(x [bins], y [S, bins]): per-seed return (mean over tasks) binned on the environment-step axis."""
  horizon = int(np.nanmax(ends)) if horizon is None else horizon
  edges = np.linspace(0, horizon, bins + 1)
  y = np.full((rets.shape[0], bins), np.nan)
  for b in range(bins):
    inside = (ends > edges[b]) & (ends <= edges[b + 1]) & np.isfinite(rets)
    n = inside.sum(axis=(1, 2))
    y[:, b] = np.where(n > 0, np.where(inside, rets, 0.0).sum(axis=(1, 2)) / np.maximum(n, 1), np.nan)
  return edges[1:], y


def binned_curve(rets, ends, bin_steps: int, num_bins: int):
  """[..., num_bins]: the mean return of the episodes that end in each window of `bin_steps` environment
  steps (nan where none ends), the statistic the DQN's learning curves hold (teachers/runner.py), so that
  every learner P3 compares is summarised the same way. rets / ends [..., E]."""
  total, n = history_lib.window_sums(rets, ends, bin_steps, num_bins)
  with np.errstate(all="ignore"):
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def nanmean(x, axis=None):
  """np.nanmean without the empty-slice warning (all-nan slices give nan)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    return np.nanmean(x, axis=axis)


def episodes_to_fraction(curve, early: float, late: float, fraction: float = 0.5, window: int = 5):
  """First episode (1-based) whose trailing `window`-episode mean reaches early + fraction * (late - early);
  None when the curve does not improve (late <= early) or never gets there."""
  if not late > early:
    return None
  c = np.asarray(curve, np.float64)
  kernel = np.ones(min(window, c.size)) / min(window, c.size)
  ma = np.convolve(c, kernel, mode="valid")
  hit = np.flatnonzero(ma >= early + fraction * (late - early))
  return int(hit[0] + kernel.size) if hit.size else None


def log_episode_slope(returns, first_fraction: float = 0.5):
  """The trend statistic of a long rollout: the least-squares slope of return against log(episode number)
  over the episodes after `first_fraction` of them (the second half by default), per leading index.

  returns [..., E] (episode 1 first; nan where unfinished, skipped). A learner that keeps improving at a
  steady rate per doubling of its experience has a constant positive slope; a stationary one has ~0.
  Returns [...] (nan where fewer than 2 finite episodes remain)."""
  r = np.asarray(returns, np.float64)
  e = r.shape[-1]
  start = int(np.floor(first_fraction * e))
  x = np.broadcast_to(np.log(np.arange(1, e + 1, dtype=np.float64))[start:], r[..., start:].shape)
  y = r[..., start:]
  ok = np.isfinite(y)
  n = ok.sum(-1)
  with np.errstate(all="ignore"):
    mx = np.where(ok, x, 0).sum(-1) / n
    my = np.where(ok, y, 0).sum(-1) / n
    dx = np.where(ok, x - mx[..., None], 0)
    slope = (dx * np.where(ok, y - my[..., None], 0)).sum(-1) / (dx ** 2).sum(-1)
  return np.where(n >= 2, slope, np.nan)


def search_and_keep(returns) -> dict:
  """Finding versus keeping a goal, from returns [..., episodes] of consecutive episodes (one rollout or one
  stream's kept episodes per leading index; an episode with return > 0 reached the goal; NaN pads a row
  that has fewer episodes, and a pair with a NaN in it is not counted): 'found' (share of episodes that
  did, per episode), 'after_hit' / 'after_miss' (share that did among episodes whose previous episode did /
  did not; None where there is none), 'return_if_found' (mean return of the episodes that did)."""
  r = np.asarray(returns, float)
  if r.ndim < 1 or r.shape[-1] < 2:
    raise ValueError(f"returns: need at least 2 consecutive episodes on the last axis (got shape {r.shape})")
  seen = np.isfinite(r)
  hit = seen & (np.nan_to_num(r) > 0)
  pair = seen[..., :-1] & seen[..., 1:]
  prev, nxt = hit[..., :-1], hit[..., 1:]
  rate = lambda m: float(nxt[m].mean()) if m.any() else None  # noqa: E731
  flat_hit, flat_seen = hit.reshape(-1, r.shape[-1]), seen.reshape(-1, r.shape[-1])
  found = np.where(flat_seen.any(0), flat_hit.sum(0) / np.maximum(flat_seen.sum(0), 1), np.nan)
  return {"found": found, "after_hit": rate(pair & prev), "after_miss": rate(pair & ~prev),
          "return_if_found": float(r[hit].mean()) if hit.any() else None}


def after_miss_by_knowledge(returns, informed) -> dict:
  """The goal reached after a miss (`search_and_keep`'s pairs), split by informed [..., episodes]: whether
  the agent already knew the goal from outside what an imitator sees when the episode began
  (`ceiling.kept_informed`). {'informed': (rate or None, pairs), 'uninformed': (rate or None, pairs)}."""
  r = np.asarray(returns, float)
  informed = np.asarray(informed, bool)
  if informed.shape != r.shape:
    raise ValueError(f"informed: shape {informed.shape} for returns of shape {r.shape}")
  seen = np.isfinite(r)
  hit = seen & (np.nan_to_num(r) > 0)
  miss_pair = seen[..., :-1] & seen[..., 1:] & ~hit[..., :-1]
  nxt, know = hit[..., 1:], informed[..., 1:]
  out = {}
  for name, m in (("informed", miss_pair & know), ("uninformed", miss_pair & ~know)):
    out[name] = (float(nxt[m].mean()) if m.any() else None, int(m.sum()))
  return out


def reached_before(returns) -> np.ndarray:
  """[..., episodes] bool: whether an earlier episode of the same rollout (returns [..., episodes],
  consecutive) reached the goal (return above 0): what an agent could know of the goal from its own past."""
  hit = np.nan_to_num(np.asarray(returns, float)) > 0
  before = np.logical_or.accumulate(hit, axis=-1)
  return np.concatenate([np.zeros(hit.shape[:-1] + (1,), bool), before[..., :-1]], -1)


def after_miss_by_recency(returns, context_episodes: int) -> dict:
  """The goal reached after a miss (`search_and_keep`'s pairs), split by where the last earlier episode of
  the same row that reached it lies: 'never' (none did), 'in_context' (one of the `context_episodes`
  episodes before the next one did, so a context of that many episodes still holds it), 'further_back'
  (only older ones did). returns [..., episodes], consecutive. Each value: (rate or None, pairs)."""
  n = int(context_episodes)
  if n < 1:
    raise ValueError(f"context_episodes: must be at least 1 (got {context_episodes})")
  r = np.asarray(returns, float)
  hit = np.nan_to_num(r) > 0
  # Whether one of the n episodes before episode j reached the goal: a running count of hits over a window.
  c = np.concatenate([np.zeros(hit.shape[:-1] + (1,), int), np.cumsum(hit, -1)], -1)       # c[j] = hits before j
  j = np.arange(hit.shape[-1])
  recent = (c[..., j] - c[..., np.maximum(j - n, 0)]) > 0
  before = reached_before(r)
  return {"never": after_miss_by_knowledge(r, before)["uninformed"],
          "in_context": after_miss_by_knowledge(r, recent)["informed"],
          "further_back": after_miss_by_knowledge(r, before & ~recent)["informed"]}


def paired_with_data(imitator, data, data_informed) -> dict:
  """Per replicate (independent runs), the imitator's rate minus its own data's, like for like:
  'after_hit' (the goal again after an episode that reached it) and 'uninformed' (the goal after a miss
  before the agent had reached it at all: the imitator in its own rollout, `reached_before`; the data's
  learner in any of its streams, `data_informed`). imitator [R, ...rollouts, episodes]; data and
  data_informed [R, ...streams, episodes] (replicate r's data). Each value: a list [R], or None when some
  replicate has no such pair on either side."""
  imitator, data = np.asarray(imitator, float), np.asarray(data, float)
  data_informed = np.asarray(data_informed, bool)
  if imitator.shape[0] != data.shape[0] or data.shape != data_informed.shape:
    raise ValueError(f"paired_with_data: imitator {imitator.shape}, data {data.shape} and data_informed "
                     f"{data_informed.shape} need the same replicates (and data_informed the data's shape)")
  out = {}
  for name in ("after_hit", "uninformed"):
    diffs = []
    for i in range(imitator.shape[0]):
      if name == "after_hit":
        a, b = search_and_keep(imitator[i])["after_hit"], search_and_keep(data[i])["after_hit"]
      else:
        a = after_miss_by_knowledge(imitator[i], reached_before(imitator[i]))["uninformed"][0]
        b = after_miss_by_knowledge(data[i], data_informed[i])["uninformed"][0]
      diffs.append(None if a is None or b is None else a - b)
    out[name] = None if any(d is None for d in diffs) else diffs
  return out


def path_stats(positions, hit) -> dict:
  """How an agent moves from one episode to the next, from the cells it stood on: positions [..., episodes,
  steps, coordinates] of consecutive fixed-length episodes (one rollout or one stream's kept episodes per
  leading index), hit [..., episodes] (the episode reached the goal). 'cells': distinct cells per episode
  (the mean); 'repeat_after_hit' / 'repeat_after_miss': the share of an episode's steps at the very cell
  the previous episode stood on at that step, for episodes whose previous one did / did not reach the goal
  (None where there is none). A searcher changes its path after a miss; a learner that knows the goal
  repeats it after a hit."""
  pos = np.asarray(positions)
  if pos.ndim < 3 or pos.shape[-3] < 2:
    raise ValueError(f"positions: need [..., episodes >= 2, steps, coordinates] (got shape {pos.shape})")
  hit = np.asarray(hit, bool)
  if hit.shape != pos.shape[:-2]:
    raise ValueError(f"hit: shape {hit.shape} for positions of shape {pos.shape} (needs {pos.shape[:-2]})")
  flat = pos.reshape((-1,) + pos.shape[-2:])
  cells = float(np.mean([len(np.unique(ep, axis=0)) for ep in flat]))
  same = (pos[..., 1:, :, :] == pos[..., :-1, :, :]).all(-1).mean(-1)          # [..., episodes - 1]
  prev = hit[..., :-1]
  share = lambda m: float(same[m].mean()) if m.any() else None  # noqa: E731
  return {"cells": cells, "repeat_after_hit": share(prev), "repeat_after_miss": share(~prev)}

