"""The capacity sweep's aggregation: one table, one figure and TensorBoard hparams over a finished sweep,
and its verdict rows in the root run's report (launch/aggregate.py is its command).

Writes <root>/<sweep>/summary.json (per run: early / late / improvement with rliable CIs, episodes to half
the improvement; comparisons along each axis), <root>/<sweep>/capacity.png (late return vs context
length, one line per model size) and <root>/tb/<sweep>/<run> (hparams: the sweep axes, metrics: the
returns). Runs that have not finished are listed, not silently dropped.
"""
from __future__ import annotations

import os

import numpy as np

from cl_limits.analysis import curves, stats
from cl_limits.report import document as report
from cl_limits.stages import common, layout, outputs


def run_metrics(job, config) -> dict:
  path = os.path.join(job.workdir, "eval", "returns.npz")
  with np.load(path) as z:
    rets = z["episode_return"][0]                                   # [S, K, E] of the sweep's one arm
    task_ids = z["task_ids"].tolist()
  ev = config.evaluation
  e = rets.shape[-1]
  early = stats.episode_window_mean(rets, 0, int(ev.early_episodes))
  late = stats.episode_window_mean(rets, e - int(ev.late_episodes), e)
  curve = np.nanmean(rets, axis=(0, 1))
  out = {"name": job.name, "config": job.config, "context_episodes": int(config.capacity.context_episodes),
         "model": str(config.capacity.model), "layers": int(config.imitation.model.layers),
         "width": int(config.imitation.model.width), "early": _iv(early), "late": _iv(late),
         "improvement": _iv(late - early),
         "mean_curve": curve.tolist(), "task_ids": task_ids}
  out["episodes_to_half"] = curves.episodes_to_fraction(curve, out["early"][0], out["late"][0])
  p2 = (layout.summary(job.workdir, "p2") or {}).get("arms", {}).get("ad")
  if p2 is not None:     # the P2 protocol on this run: late - ceiling and the trend, per replicate
    for k in ("late_minus_ceiling", "trend"):
      out[k] = list(stats.as_ci(p2[k]))
      out[f"{k}_per_replicate"] = p2[k]["per_replicate"]
    out["headroom_ok"] = bool(p2["headroom"]["ok"])
    out["competence"] = float(p2["competence"]["ratio"])
    late = np.asarray(p2["late_minus_ceiling"]["per_replicate"])     # the comparisons use this, per replicate
  return out, late


def aggregate(module, preset: str, jobs, name: str, spec: str, root: str, log=print) -> str | None:
  """Aggregates the finished `jobs` (launch.sweep.Job) of sweep file `module` under <root>/<name>."""
  out_dir = os.path.join(os.path.abspath(root), name)
  runs, lates = [], {}
  for job in jobs:
    if not job.done():
      runs.append({"name": job.name, "error": f"not finished (see {job.log_path})"})
      continue
    config = module.get_config(job.config.partition(":")[2])
    metrics, late = run_metrics(job, config)
    runs.append(metrics)
    lates[job.name] = (metrics, late)
  if not lates:
    log(f"[aggregate] no finished runs under {out_dir}")
    return None
  comparisons = []
  done = [m for m, _ in lates.values()]
  for size in sorted({m["model"] for m in done}):
    ctxs = sorted(m["context_episodes"] for m in done if m["model"] == size)
    if len(ctxs) >= 2:
      big, small = (next(m for m in done if m["model"] == size and m["context_episodes"] == c)
                    for c in (ctxs[-1], ctxs[-2]))
      comparisons.append(_compare("context", big, small, lates, f"{size} model"))
  largest = max(m["context_episodes"] for m in done)
  by_size = sorted((m for m in done if m["context_episodes"] == largest), key=lambda m: (m["layers"], m["width"]))
  if len(by_size) >= 2:
    comparisons.append(_compare("model size", by_size[-1], by_size[-2], lates,
                                f"context {largest} episodes"))
  base = module.base_config(preset)
  summary = {"sweep": spec, "runs": runs, "comparisons": comparisons,
             "protocol": (f"AD on whole teacher histories, one run per (context, model size), "
                          f"{base.imitation.num_seeds} seeds each; rolled out on held-out tasks for "
                          f"{base.evaluation.episodes} episodes, {common.describe_actions(base.evaluation)} "
                          f"actions, empty start, context carried across episodes; early = episodes 1-"
                          f"{base.evaluation.early_episodes}, late = last {base.evaluation.late_episodes}; "
                          "t-intervals over the replicates (independent runs). Comparisons: P2's late - "
                          "ceiling of the larger minus the smaller setting, paired by replicate.")}
  outputs.write_json(os.path.join(out_dir, layout.SUMMARY), summary)
  plot(done, os.path.join(out_dir, "capacity.png"))
  _tensorboard(os.path.join(os.path.abspath(root), "tb", name), done, module)
  for r in runs:
    if "error" in r:
      log(f"[aggregate] {r['name']}: {r['error']}")
    else:
      log(f"[aggregate] {r['name']}: early {r['early'][0]:.2f}, late {r['late'][0]:.2f} "
          f"[{r['late'][1]:.2f}, {r['late'][2]:.2f}]")
  log(f"[aggregate] {len(done)} of {len(runs)} runs: {out_dir}/summary.json, capacity.png")
  update_report(base, root, log)
  return os.path.join(out_dir, "summary.json")


def _iv(x) -> list:
  return list(stats.as_ci(stats.replicate_interval(x)))


def _compare(axis, big, small, lates, where):
  if big["task_ids"] != small["task_ids"]:
    raise ValueError(f"runs {big['name']} and {small['name']} were evaluated on different tasks")
  diff = lates[big["name"]][1] - lates[small["name"]][1]      # paired by replicate (and task)
  measure = ("P2 late - ceiling (fractions of each task's optimum)" if "late_minus_ceiling" in big
             else "late return on held-out tasks")
  return {"axis": f"{axis}, {where}", "larger": big["name"], "smaller": small["name"], "measure": measure,
          "gain": _iv(diff)}


def update_report(base_config, root, log):
  from cl_limits.stages import pipeline  # noqa: PLC0415
  actions = pipeline.decide(pipeline.plan(base_config, root))
  if not all(a[0] == "reuse" for a in actions.values()):
    log(f"[aggregate] the main job in {root} has not finished; its report will include these rows when "
        "it does")
    return
  log(f"[aggregate] report: {report.write(base_config, root)}")


def plot(done, path):
  with outputs.figure(path, ncols=3, size=(5, 4)) as (_, axes):
    for size in sorted({m["model"] for m in done}):
      ms = sorted((m for m in done if m["model"] == size), key=lambda m: m["context_episodes"])
      x = [m["context_episodes"] for m in ms]
      for ax, key in zip(axes[:2], ("late_minus_ceiling", "trend")):
        if all(key in m for m in ms):
          y = np.array([m[key] for m in ms])
          ax.errorbar(x, y[:, 0], yerr=[y[:, 0] - y[:, 1], y[:, 2] - y[:, 0]], marker="o", capsize=3,
                      label=f"{size} model")
          for r in range(len(ms[0][f"{key}_per_replicate"])):
            ax.plot(x, [m[f"{key}_per_replicate"][r] for m in ms], color="gray", lw=0.5, alpha=0.5)
      for m in ms:
        axes[2].plot(np.arange(1, len(m["mean_curve"]) + 1), m["mean_curve"], lw=1,
                     label=f"{size}, {m['context_episodes']} ep")
    for ax, what in zip(axes[:2], ("P2 late - ceiling (fraction of optimum)", "trend: slope vs log(episode)")):
      ax.set_xscale("log", base=2)
      ax.axhline(0, color="gray", lw=0.6)
      ax.set_xlabel("context length (episodes)")
      ax.set_ylabel(f"{what}; grey: each replicate")
      ax.legend(fontsize=8)
    axes[2].set_xlabel("episode of the evaluation rollout (context carried across episodes)")
    axes[2].set_ylabel("return (mean over replicates and tasks)")
    axes[2].legend(fontsize=7, ncol=2)


def _tensorboard(tb_dir, done, module):
  for m in done:
    outputs.hparams_board(os.path.join(tb_dir, m["name"]), {"context_episodes": m["context_episodes"],
                                                            "model": m["model"]},
                          {"capacity/early": m["early"][0], "capacity/late": m["late"][0],
                           "capacity/improvement": m["improvement"][0]},
                          {"capacity/return_per_episode": m["mean_curve"]},
                          str(module.get_config(m["config"].partition(":")[2])))
