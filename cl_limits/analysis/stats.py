"""Interval estimates over seeds (and tasks) for learning-curve summaries."""
from __future__ import annotations

import numpy as np


def bootstrap_ci(x, reps: int = 2000, alpha: float = 0.05, seed: int = 0, stat=np.mean):
  """Point estimate and (1 - alpha) percentile-bootstrap CI of stat over a [seeds] or [seeds, tasks] array.

  With two axes both are resampled (seeds, and tasks independently), so the interval reflects the
  spread over model seeds and over evaluation tasks. NaNs are an error: pass complete scores.
  Returns (estimate, low, high).
  """
  x = np.asarray(x, np.float64)
  if x.ndim == 1:
    x = x[:, None]
  if x.ndim != 2 or x.size == 0:
    raise ValueError(f"bootstrap_ci expects a non-empty [seeds] or [seeds, tasks] array, got {x.shape}")
  if not np.isfinite(x).all():
    raise ValueError("bootstrap_ci got non-finite scores")
  rng = np.random.default_rng(seed)
  s, k = x.shape
  si = rng.integers(0, s, (reps, s))
  ki = rng.integers(0, k, (reps, k))
  samples = np.array([stat(x[si[r]][:, ki[r]]) for r in range(reps)])
  lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
  return float(stat(x)), float(lo), float(hi)


def episode_window_mean(returns, first: int, last: int):
  """Mean over episodes [first, last) (0-based, python slice) of returns [..., episodes]; NaN-safe."""
  r = np.asarray(returns, np.float64)[..., first:last]
  with np.errstate(all="ignore"):
    return np.nanmean(r, axis=-1)


def replicate_interval(values, alpha: float = 0.05, bootstrap_from: int = 10, reps: int = 10_000,
                       seed: int = 0) -> dict:
  """The estimate over independent replicates (independent training runs), with its (1 - alpha) interval.

  values: [replicates] or [replicates, ...]; every axis after the first (tasks, episodes) is a repeated
  measure inside one replicate and is averaged first. The estimate is the mean of the per-replicate
  values; the interval is Student's t on r - 1 degrees of freedom and, from `bootstrap_from` replicates on,
  also a percentile bootstrap that resamples whole replicates. Returns {"estimate", "low", "high", "n",
  "per_replicate", "method"} (+ "bootstrap": (low, high) when r >= bootstrap_from)."""
  from scipy import stats as sstats  # noqa: PLC0415
  x = np.asarray(values, np.float64)
  if x.ndim == 0 or x.shape[0] == 0:
    raise ValueError(f"replicate_interval needs a [replicates, ...] array, got shape {x.shape}")
  per = x.reshape(x.shape[0], -1).mean(axis=1)
  if not np.isfinite(per).all():
    raise ValueError("replicate_interval got non-finite per-replicate values")
  r = per.size
  mean = float(per.mean())
  out = {"estimate": mean, "n": int(r), "per_replicate": per.tolist(),
         "method": f"t-interval over {r} replicates ({r - 1} df)"}
  if r < 2:
    out.update(low=float("nan"), high=float("nan"), method="one replicate: no interval")
    return out
  half = float(sstats.t.ppf(1 - alpha / 2, r - 1) * per.std(ddof=1) / np.sqrt(r))
  out.update(low=mean - half, high=mean + half)
  if r >= bootstrap_from:
    rng = np.random.default_rng(seed)
    boots = per[rng.integers(0, r, (reps, r))].mean(axis=1)
    out["bootstrap"] = [float(v) for v in np.quantile(boots, [alpha / 2, 1 - alpha / 2])]
  return out


def as_ci(interval: dict) -> tuple[float, float, float]:
  """(estimate, low, high) of a `replicate_interval`, the form the verdict rules take."""
  return interval["estimate"], interval["low"], interval["high"]
