"""How often a replicate gate passes, and how many replicates it needs to pass reliably.

A gate over independent replicates reads one end of a Student-t interval: the competence gate passes when
the lower end of the gain over random is at or above its threshold (`side="above"`); a P2 row reads
"supported" when the upper end of late - ceiling is at or below 0 (`side="below"`). With n replicates
drawn from N(mu, sigma^2), the gate's statistic (mean - threshold) / (s / sqrt(n)) follows a noncentral t
with n - 1 degrees of freedom and noncentrality (mu - threshold) sqrt(n) / sigma, so the chance that the
gate passes is exact under that model (`pass_probability`).

The normal model is a model: a collapsed replicate (a second mode) gives heavier tails than it allows, and
sigma estimated from a handful of replicates is itself loose; read the figures as the size of the problem,
not as a guarantee.
"""
from __future__ import annotations

import numpy as np

SIDES = ("above", "below")


def pass_probability(mean: float, sd: float, n: int, threshold: float, side: str = "above",
                     alpha: float = 0.05) -> float:
  """The chance that the (1 - alpha) t-interval over n replicates from N(mean, sd^2) has its lower end at
  or above `threshold` (side "above") or its upper end at or below it (side "below")."""
  from scipy import stats as sstats  # noqa: PLC0415
  if side not in SIDES:
    raise ValueError(f"side: one of {SIDES} (got {side!r})")
  if int(n) < 2:
    raise ValueError(f"n: an interval needs at least 2 replicates (got {n})")
  if not (np.isfinite(mean) and np.isfinite(sd)) or sd < 0:
    raise ValueError(f"mean and sd must be finite, sd >= 0 (got {mean}, {sd})")
  crit = float(sstats.t.ppf(1 - alpha / 2, n - 1))
  shift = (mean - threshold) if side == "above" else (threshold - mean)
  if sd == 0:
    return float(shift > 0 or (shift == 0 and side == "above"))
  return float(sstats.nct.sf(crit, n - 1, shift * np.sqrt(n) / sd))


def replicates_for(mean: float, sd: float, threshold: float, side: str = "above", power: float = 0.8,
                   alpha: float = 0.05, most: int = 200) -> int | None:
  """The fewest replicates (2 to `most`) at which the gate passes with probability >= `power`, or None
  when it does not by `most` (a mean on the wrong side of the threshold never gets there)."""
  for n in range(2, int(most) + 1):
    if pass_probability(mean, sd, n, threshold, side, alpha) >= power:
      return n
  return None


def pooled(groups: list[list[float]]) -> dict:
  """Per-replicate values of several runs (each a list) -> {"mean" over all replicates, "sd": the pooled
  within-run standard deviation (runs with other base seeds may differ in more than their replicates),
  "df", "n": per run}. ValueError when a value is not finite or no run has two replicates."""
  arrays = [np.asarray(g, np.float64) for g in groups]
  if any(not np.isfinite(a).all() for a in arrays):
    raise ValueError("pooled: a per-replicate value is not finite")
  df = sum(a.size - 1 for a in arrays if a.size > 1)
  if df == 0:
    raise ValueError("pooled: no run has two replicates")
  ss = sum(float(((a - a.mean()) ** 2).sum()) for a in arrays if a.size > 1)
  return {"mean": float(np.concatenate(arrays).mean()), "sd": float(np.sqrt(ss / df)), "df": int(df),
          "n": [int(a.size) for a in arrays]}
