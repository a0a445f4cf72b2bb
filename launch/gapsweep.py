"""The gap x streams sweep's aggregation (experiments/configs/gap.py; launch/aggregate.py runs it).

Per run (gap g, streams s): the frozen imitator's curve on held-out tasks per replicate (mean over tasks),
its episodes to half of its improvement (`curves.episodes_to_fraction`), and P2's late - ceiling. The
replay statistic, per replicate: the least-squares slope of log(episodes to half) against log(g x s) over
the runs. An imitator that replays the compressed improvement of its data gets there in about 1 / (g x s)
as many episodes (slope -1); one that learns at its own pace does not depend on g x s (slope 0).
Writes <root>/gap/{summary.json, gap.png} and the sweep's row and section in <root>/report.md.
"""
from __future__ import annotations

import os

import numpy as np

from cl_limits.analysis import curves, stats
from cl_limits.stages import layout, outputs
from launch import capacity as capacity_stage


def run_metrics(job, config) -> dict:
  with np.load(os.path.join(job.workdir, "eval", "returns.npz")) as z:
    rets = z["episode_return"][0]                                     # [R, K, E] of the sweep's one arm
  ev = config.evaluation
  per_rep = np.nanmean(rets, axis=1)                                  # [R, E]
  e = per_rep.shape[-1]
  early = per_rep[:, :int(ev.early_episodes)].mean(-1)
  late = per_rep[:, e - int(ev.late_episodes):].mean(-1)
  half = [curves.episodes_to_fraction(c, a, b) for c, a, b in zip(per_rep, early, late)]
  g, s = int(config.gap_sweep.gap), int(config.gap_sweep.streams)
  out = {"name": job.name, "config": job.config, "gap": g, "streams": s, "kept_equivalent": g * s,
         "early": list(stats.as_ci(stats.replicate_interval(early))),
         "late": list(stats.as_ci(stats.replicate_interval(late))),
         "episodes_to_half_per_replicate": [None if h is None else int(h) for h in half],
         "mean_curve": per_rep.mean(0).tolist()}
  p2 = (layout.summary(job.workdir, "p2") or {}).get("arms", {}).get("ad")
  if p2 is not None:
    out["late_minus_ceiling"] = list(stats.as_ci(p2["late_minus_ceiling"]))
    out["late_minus_ceiling_per_replicate"] = p2["late_minus_ceiling"]["per_replicate"]
  return out


def replay_slopes(runs: list[dict]) -> list[float]:
  """Per replicate: slope of log(episodes to half) on log(gap x streams) over the runs where it improved
  (nan with fewer than two distinct g x s)."""
  n_rep = len(runs[0]["episodes_to_half_per_replicate"])
  out = []
  for r in range(n_rep):
    pts = [(np.log(m["kept_equivalent"]), np.log(m["episodes_to_half_per_replicate"][r])) for m in runs
           if m["episodes_to_half_per_replicate"][r] is not None]
    xs = np.array([p[0] for p in pts])
    if len(set(xs.tolist())) < 2:
      out.append(float("nan"))
      continue
    ys = np.array([p[1] for p in pts])
    out.append(float(np.polyfit(xs, ys, 1)[0]))
  return out


def aggregate(module, preset: str, jobs, name: str, spec: str, root: str, log=print) -> str | None:
  out_dir = os.path.join(os.path.abspath(root), name)
  runs, done = [], []
  for job in jobs:
    if not job.done():
      runs.append({"name": job.name, "error": f"not finished (see {job.log_path})"})
      continue
    m = run_metrics(job, module.get_config(job.config.partition(":")[2]))
    runs.append(m)
    done.append(m)
  if not done:
    log(f"[aggregate] no finished runs under {out_dir}")
    return None
  slopes = replay_slopes(done)
  finite = [v for v in slopes if np.isfinite(v)]
  summary = {"sweep": spec, "runs": runs,
             "replay_slope": (stats.replicate_interval(np.asarray(finite)) if finite else None),
             "replay_slope_replicates_used": len(finite),
             "protocol": ("AD on the first 50% of each teacher history at each (gap, streams), the main job's "
                          "model and budget, one run per pair on the main job's teachers; episodes to half of "
                          "the improvement from the evaluation rollouts (per replicate, mean over held-out "
                          "tasks); replay slope = slope of log(episodes to half) on log(gap x streams) per "
                          "replicate, t-interval over replicates.")}
  outputs.write_json(os.path.join(out_dir, layout.SUMMARY), summary)
  _plot(done, os.path.join(out_dir, "gap.png"))
  for m in done:
    log(f"[aggregate] {m['name']}: episodes to half {m['episodes_to_half_per_replicate']}, late {m['late'][0]:.2f}")
  log(f"[aggregate] replay slope per replicate {slopes}: {out_dir}/summary.json, gap.png")
  capacity_stage.update_report(module.base_config(preset), root, log)
  return os.path.join(out_dir, "summary.json")


def _plot(done, path):
  ms = sorted(done, key=lambda m: m["kept_equivalent"])
  x = np.array([m["kept_equivalent"] for m in ms], np.float64)
  with outputs.figure(path, ncols=2, size=(5, 4)) as (_, axes):
    n_rep = len(ms[0]["episodes_to_half_per_replicate"])
    for r in range(n_rep):
      y = np.array([np.nan if m["episodes_to_half_per_replicate"][r] is None else m["episodes_to_half_per_replicate"][r]
                    for m in ms], np.float64)
      axes[0].plot(x, y, marker="o", lw=0.6, alpha=0.6, color="C0", label="each replicate" if r == 0 else None)
    ref = next((m for m in ms if any(h is not None for h in m["episodes_to_half_per_replicate"])), None)
    if ref is not None:
      h0 = np.nanmean([np.nan if h is None else h for h in ref["episodes_to_half_per_replicate"]])
      axes[0].plot(x, h0 * ref["kept_equivalent"] / x, color="k", ls="--", lw=1, label="replay (slope -1)")
    axes[0].set_xscale("log")
    if ref is not None:            # some run improved: episodes to half exist to draw on a log axis
      axes[0].set_yscale("log")
    axes[0].set_xlabel("gap x streams (teacher episodes per kept episode)")
    axes[0].set_ylabel("imitator episodes to half its improvement")
    axes[0].legend(fontsize=7)
    for m in ms:
      axes[1].plot(np.arange(1, len(m["mean_curve"]) + 1), m["mean_curve"], lw=1, label=m["name"])
    axes[1].set_xlabel("episode of the evaluation rollout")
    axes[1].set_ylabel("return (mean over replicates and tasks)")
    axes[1].legend(fontsize=7)
