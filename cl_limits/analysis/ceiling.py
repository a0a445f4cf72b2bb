"""The ceiling of a training set (P2; analysis/replicates.py applies it per replicate).

The *ceiling* of an imitator's training data is the best moving-average episode return found anywhere in
the histories it was trained on. Concretely, with the data as a [histories, episodes] matrix of the kept
episodes' returns in time order (NaN past a history's end):

  population curve  c[i] = mean over histories of the returns of kept episode i
  ceiling           max over i of the mean of c over the full window of `window` kept episodes ending at i
                    (the whole curve when it is shorter than `window`), with the maximum's selection bias
                    removed by choosing i on half of the streams and reading it on the other half
                    (`split_ceiling`; the in-sample maximum is kept beside it to show the bias)

so one lucky episode of one history cannot set it; the window is a config value and is stated in the
report. P2 asks whether the frozen imitator's late return exceeds it (or the teachers' greedy return at
the cut, where that is higher: analysis/replicates.py).
"""
from __future__ import annotations

import warnings

import numpy as np

import jax

from cl_limits import envs as envs_lib
from cl_limits.histories import datasets
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


def split_ceiling(returns, window: int, streams: int) -> tuple[float, float]:
  """(ceiling, in-sample maximum) of a [histories, episodes] matrix whose rows cycle through `streams`
  streams (row h is stream h % streams), with the maximum's selection bias removed by splitting: the
  best window is chosen on the even streams' population curve and read on the odd streams', and the other
  way round, and the two readings are averaged. A maximum over many noisy window means is biased upward
  (the in-sample maximum, returned beside it, shows by how much); with fewer than two streams nothing can
  be split and both values are the in-sample maximum."""
  best, _ = ceiling(returns, window)
  r = np.asarray(returns, np.float64)
  if int(streams) < 2 or r.shape[0] < 2:
    return best, best
  even = (np.arange(r.shape[0]) % int(streams)) % 2 == 0
  with warnings.catch_warnings():                       # all-NaN columns past the shorter half's end
    warnings.simplefilter("ignore", RuntimeWarning)
    a, b = np.nanmean(r[even], axis=0), np.nanmean(r[~even], axis=0)
  n = int(np.flatnonzero(np.isfinite(a) & np.isfinite(b)).max(initial=-1)) + 1
  if n == 0:
    return best, best
  w = min(int(window), n)
  sa = np.convolve(np.nan_to_num(a[:n]), np.ones(w), mode="valid") / w
  sb = np.convolve(np.nan_to_num(b[:n]), np.ones(w), mode="valid") / w
  return float(0.5 * (sb[int(np.argmax(sa))] + sa[int(np.argmax(sb))])), best


def task_optimum(env, task_ids) -> np.ndarray | None:
  """Each task's optimal episode return [K] where the env has an oracle (`env.optimal_return`) and every
  optimum is positive; else None (the comparisons then stay in raw returns only).

  Tasks differ in what they allow (a DarkRoom goal returns 20 minus its distance from the start), and the
  ceiling comes from the teachers' tasks while the late return comes from held-out ones, so P2 and the
  hybrid also compare both as fractions of each task's optimum."""
  if not hasattr(env, "optimal_return") or getattr(env, "start", "center") != "center":
    return None        # no oracle, or a random start cell: no single optimum per task
  ids = np.asarray(task_ids)
  opt = np.asarray(jax.vmap(env.optimal_return)(envs_lib.tasks_at(env, ids)), np.float64)
  return opt if opt.size and (opt > 0).all() else None


def teacher_optimum(env, manifest) -> np.ndarray | None:
  """`task_optimum` of the teachers' tasks, or None for joined stores (`imitation.sources`) or another env."""
  if "sources" in manifest or manifest.get("env") != env.name:
    return None
  return task_optimum(env, manifest["task_ids"])


def kept_returns(history, arm: dict) -> np.ndarray:
  """The returns of the episodes an arm keeps, in the order its imitator sees them: [histories, kept
  episodes] (rows: every leading index of the histories [S, K, E, T], flattened), NaN-padded."""
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  keep = datasets.arm_keep(done, np.asarray(history.episode), arm)
  return episode_matrix(np.asarray(history.reward), done, keep)[0]


def kept_informed(history, arm: dict) -> np.ndarray:
  """[histories, kept episodes] bool, aligned with `kept_returns` (False in its NaN padding): whether,
  when each kept episode began, its learner had already reached the goal (ended an episode with a return
  above 0) in any of its streams, kept or not. Streams step in lockstep, so a step index is one time for
  all of a learner's streams. What a learner knew from its other streams and its unkept episodes is not in
  the context of the stream an imitator is trained on."""
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  keep = datasets.arm_keep(done, np.asarray(history.episode), arm)
  reward = np.asarray(history.reward, np.float64)
  t_len, n_streams = done.shape[-1], done.shape[-2]
  rows = [history_lib.episode_returns(r, d) for r, d in zip(reward.reshape(-1, t_len), done.reshape(-1, t_len))]
  first = np.full(len(rows) // n_streams, np.inf)          # per learner: the first step a rewarded episode ended
  for h, (rets, ends) in enumerate(rows):
    if (rets > 0).any():
      first[h // n_streams] = min(first[h // n_streams], float(ends[rets > 0].min()))
  out = []
  for h, ((_, ends), k) in enumerate(zip(rows, keep.reshape(-1, t_len))):
    began_after = np.concatenate([[0], ends[:-1]])          # an episode begins after the step the last one ended
    kept = k[ends - 1] if ends.size else np.zeros(0, bool)
    out.append(first[h // n_streams] <= began_after[kept])
  width = max([len(x) for x in out] + [0])
  return np.array([np.pad(x, (0, width - len(x))) for x in out], bool).reshape(len(out), width)


def arm_data_curves(history, manifest, arm: dict, window: int, optimum=None) -> dict:
  """The arm's ceiling, the cut, and the teachers' full population curve on the learner-step axis.

  optimum: [teacher tasks] optimal returns (`teacher_optimum`); with it the result also holds the ceiling
  and the teachers' final return as fractions of each history's task optimum ("ceiling_norm",
  "teacher_final_norm") and the tasks' mean optimum ("optimal_mean")."""
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  episode = np.asarray(history.episode)
  reward = np.asarray(history.reward)
  streams = int(manifest["streams_per_learner"])
  keep = datasets.arm_keep(done, episode, arm)
  rets = kept_returns(history, arm)
  # `window` counts the teacher's episodes; with gap g the data keeps one episode in g of a stream.
  kept_window = max(1, -(-int(window) // int(arm["gap"])))
  ceil_idx = ceiling(rets, kept_window)[1]
  ceil, ceil_in_sample = split_ceiling(rets, kept_window, reward.shape[2])    # rows: [tasks x streams]
  # The teacher's experience up to the cut (gap does not shorten it): last kept episode end per stream.
  cut_keep = datasets.arm_keep(done, episode, arm, gap=1)
  t = np.arange(done.shape[-1]) + 1
  cut_stream_steps = int(np.max(np.where(cut_keep & done, t, 0)))
  # Where the kept data begins in its stream (after an arm's `start`; 0 without one): the first kept step
  # and the episodes that ended before it, each a mean over the streams that kept any (the figures' axes).
  rows, row_done = cut_keep.reshape(-1, cut_keep.shape[-1]), done.reshape(-1, done.shape[-1])
  any_kept = rows.any(-1)
  first = np.argmax(rows, -1)
  dropped = (row_done & (np.arange(rows.shape[-1]) < first[:, None])).sum(-1)
  first_kept = (float(first[any_kept].mean()), float(dropped[any_kept].mean())) if any_kept.any() else (0.0, 0.0)
  # One kept history in the imitator's own time: the steps a stream kept (every gap-th episode up to the
  # cut), averaged over the streams that kept any.
  kept = keep.reshape(-1, keep.shape[-1]).sum(-1)
  kept_stream_steps = float(kept[kept > 0].mean()) if (kept > 0).any() else 0.0
  used = done.shape[2] if not int(arm["streams"]) else int(arm["streams"])
  full, ends = episode_matrix(reward[:, :, :used], done[:, :, :used])
  teacher_curve = population_curve(full)
  # Episode i of a stream ends at stream step ends[., i]; a learner with `streams` streams has then made
  # `streams` times as many environment steps (every stream steps in lockstep).
  teacher_x = np.nanmax(np.where(ends > 0, ends, np.nan), axis=0) * streams
  final_window = min(window, teacher_curve.size)
  # Each stream's end of data (its last kept_window kept episodes, mean over tasks): the competence gate's
  # power check reads one held-out stream against the others as a perfect clone of the data would read.
  out_streams = {"stream_end": _stream_ends(rets, kept_window, reward.shape[2])}
  out = {"ceiling": ceil, "ceiling_in_sample": ceil_in_sample, "ceiling_episode": ceil_idx, "ceiling_kept_window": kept_window, "cut_stream_steps": cut_stream_steps,
         "kept_stream_steps": kept_stream_steps, "cut_learner_steps": cut_stream_steps * streams, "teacher_curve": teacher_curve,
         "teacher_x": teacher_x, "teacher_final": float(np.mean(teacher_curve[-final_window:])),
         "data_curve": population_curve(rets), "first_kept_stream_step": first_kept[0],
         "dropped_episodes": first_kept[1]}
  if optimum is not None:
    optimum = np.asarray(optimum, np.float64)
    if optimum.shape != (reward.shape[1],):
      raise ValueError(f"arm_data_curves: {optimum.shape[0]} task optima for {reward.shape[1]} teacher tasks")
    per_row = lambda n: np.broadcast_to(optimum[None, :, None], (reward.shape[0], reward.shape[1], n)).reshape(-1, 1)
    out["ceiling_norm"], out["ceiling_in_sample_norm"] = split_ceiling(rets / per_row(reward.shape[2]),
                                                                       kept_window, reward.shape[2])
    out["data_curve_norm"] = population_curve(rets / per_row(reward.shape[2]))
    full_norm = population_curve(full / per_row(used))
    out["teacher_curve_norm"] = full_norm
    out["teacher_final_norm"] = float(np.mean(full_norm[-final_window:]))
    out["optimal_mean"] = float(optimum.mean())
    out_streams["stream_end_norm"] = _stream_ends(rets / per_row(reward.shape[2]), kept_window, reward.shape[2])
  return {**out, **out_streams}


def _stream_ends(returns, window: int, streams: int) -> list:
  """Per stream, the mean return of each history's last `window` kept episodes, averaged over the
  histories of that stream (rows cycle through `streams` streams: row h is stream h % streams); NaN for a
  stream that kept no episode."""
  r = np.asarray(returns, np.float64)
  last = np.full(r.shape[0], np.nan)
  for h in range(r.shape[0]):
    row = r[h][np.isfinite(r[h])]
    if row.size:
      last[h] = row[-int(window):].mean()
  out = []
  for s in range(int(streams)):
    v = last[s::int(streams)]
    out.append(float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan"))
  return out
