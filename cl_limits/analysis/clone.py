"""The competence gate's clone: what a perfect imitator of the data would read on it (its power), and how
far an imitator sits below that clone (`clone_gap`). Split from `replicates`, which calls it."""
from __future__ import annotations

import numpy as np

from cl_limits.analysis import stats


def clone_gap(competence: dict) -> dict | None:
  """How far the imitator sits below a perfect clone of its data on the competence gate: per replicate the
  clone's gain over random minus the imitator's (paired: same replicate, same data end), its interval, and
  `detects`: the interval's lower end above 0. A gate that even the clone fails still detects an imitator
  this far below it; None where either gain is missing."""
  clone = competence.get("clone")
  if not clone:
    return None
  gap = np.asarray(clone["per_replicate"], np.float64) - np.asarray(competence["per_replicate"], np.float64)
  iv = stats.replicate_interval(gap) if np.isfinite(gap).all() and gap.size > 1 else None
  return {"per_replicate": gap.tolist(), "interval": iv, "detects": bool(iv is not None and iv["low"] > 0)}


def clone_competence(data: list, normalised: bool, random: float, fraction: float, rollouts: int = 1) -> dict | None:
  """The competence gate's power: the same gate read by a perfect clone of the data. Per replicate, the
  data's last stream that kept episodes (held out from the imitator's training) stands in for the
  imitator's rollout -- one stream per task, as the rollout is -- against the other streams' end, as a gain
  over random. With `rollouts` M > 1 (the gate's rollouts per task) the clone is the mean end of the last
  h = min(M, streams // 2) streams against the mean end of the others (`streams_used` h): the two sets
  disjoint, as the imitator's rollouts and its data are (a leave-one-out mean of ratios would read about 1
  whatever the noise), and each no larger than the gate's, so the clone is at least as noisy as the gate
  and never claims more power than it has. A gate this clone fails (the interval's lower end below `fraction`) cannot tell a failed
  imitator from noise, so the row's failure is the gate's, not the imitator's. None for data made before
  the streams' ends were kept, or with a single stream."""
  key = "stream_end_norm" if normalised else "stream_end"
  if not data or any(key not in d for d in data):
    return None
  gain, used = [], []
  for d in data:
    ends = np.asarray(d[key], np.float64)
    kept = np.flatnonzero(np.isfinite(ends))
    if kept.size < 2:
      return None
    h = max(1, min(int(rollouts), kept.size // 2))
    rest = float(np.mean(ends[kept[:-h]])) - float(random)
    gain.append((float(np.mean(ends[kept[-h:]])) - float(random)) / rest if rest > 0 else np.nan)
    used.append(h)
  gain = np.asarray(gain)
  iv = stats.replicate_interval(gain) if np.isfinite(gain).all() and gain.size > 1 else None
  return {"per_replicate": gain.tolist(), "interval": iv, "needed": float(fraction), "streams_used": min(used),
          "ok": bool(iv is not None and iv["low"] >= fraction)}
