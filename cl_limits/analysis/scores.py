"""P3 scores: every learner's curve summarised as the DQN's is, normalised between a random policy and
the DQN's final return, numbers in and numbers out.
"""
from __future__ import annotations

import numpy as np

from cl_limits.analysis import curves as curves_lib
from cl_limits.analysis import stats


def normalise(x, lo, hi):
  """(x - lo) / (hi - lo) per task; x [..., K], lo / hi [K]."""
  return (x - lo) / (hi - lo)


def score(runs, random, dqn_curves, bin_steps: int, horizon: int, frac: float, log=print, tag="") -> dict:
  """Normalised AUC and final return of the DQN and every learner, each the mean over replicates (seeds:
  independent runs) of the per-replicate mean over tasks, with a t-interval over replicates.

  Every learner is summarised as the DQN's curves are: the mean return of the episodes ending in each
  window of `bin_steps` environment steps over the first `horizon` steps; AUC = the mean over windows,
  final = the mean over the last `frac` of them. 0 = the random policy's AUC, 1 = the DQN's final (both
  per task, the DQN's mean over its seeds).

  runs: {learner: (episode_return [S, K', E], episode_end [S, K', E])}, K' <= K (a learner may run on the
  first K' tasks only; with K = 1, K' columns are K' rollouts of that one task); random: (episode_return, episode_end) [R, K, E]; dqn_curves [S_dqn, K, bins] with
  bin i covering steps (i * bin_steps, (i + 1) * bin_steps]. Returns the target entry's scores."""
  num_bins = max(1, min(horizon // bin_steps, dqn_curves.shape[-1]))
  n_late = max(1, int(round(frac * num_bins)))
  curve = lambda r, e: binned_curve_summary(curves_lib.binned_curve(r, e, bin_steps, num_bins), n_late)
  dqn = binned_curve_summary(dqn_curves[..., :num_bins], n_late)
  rnd_auc, _ = curve(*random)
  lo = curves_lib.nanmean(rnd_auc, 0)
  hi = curves_lib.nanmean(dqn[1], 0)
  ok = np.isfinite(hi) & np.isfinite(lo) & (hi - lo > 1e-6)
  out = {"tasks_used": int(ok.sum()), "learners": {}, "random_return": lo.tolist(),
         "dqn_final_return": hi.tolist(), "bin_steps": int(bin_steps), "bins": int(num_bins),
         "late_bins": n_late}
  if not ok.any():
    out["note"] = "the DQN did not beat the random policy on any task: nothing to normalise by"
    log(f"{tag}: {out['note']}")
    return out
  scored = {"dqn": dqn}
  for k, (r, e) in runs.items():
    scored[k] = curve(r, e)
  for k, (auc, fin) in scored.items():
    n_k = auc.shape[1]     # a single task's levels serve every column (repeated rollouts of one game)
    m, lo_k, hi_k = (np.repeat(v, n_k) if len(v) == 1 else v[:n_k] for v in (ok, lo, hi))
    if not m.any() or not np.isfinite(auc[:, m]).all() or not np.isfinite(fin[:, m]).all():
      out["learners"][k] = {"note": "no finished episodes to score"}
      continue
    a_n = normalise(auc[:, m], lo_k[m], hi_k[m])
    f_n = normalise(fin[:, m], lo_k[m], hi_k[m])
    auc_iv, fin_iv = stats.replicate_interval(a_n), stats.replicate_interval(f_n)
    out["learners"][k] = {"tasks": int(m.sum()), "replicates": int(a_n.shape[0]),
                          "auc": list(stats.as_ci(auc_iv)), "final": list(stats.as_ci(fin_iv)),
                          "auc_per_replicate": auc_iv["per_replicate"],
                          "final_per_replicate": fin_iv["per_replicate"],
                          "final_raw": float(np.mean(fin[:, m])), "auc_raw": float(np.mean(auc[:, m]))}
    e = out["learners"][k]
    log(f"{tag} {k}: normalised AUC {e['auc'][0]:.2f} [{e['auc'][1]:.2f}, {e['auc'][2]:.2f}], "
        f"final {e['final'][0]:.2f} [{e['final'][1]:.2f}, {e['final'][2]:.2f}] (raw {e['final_raw']:.2f})")
  return out


def binned_curve_summary(curves, n_late: int):
  """(AUC, final) [...] of binned curves [..., bins]: the mean over all bins and over the last n_late."""
  return curves_lib.nanmean(curves, -1), curves_lib.nanmean(curves[..., -n_late:], -1)


def score_protocol(frac: float) -> dict:
  """How `score` summarises a learner, for the summary's protocol."""
  return {"auc": "mean over the horizon of the mean return of the episodes ending in each DQN logging "
                 "window (the DQN's curves are that statistic)",
          "final": f"the same over the last {frac:.0%} of the windows"}
