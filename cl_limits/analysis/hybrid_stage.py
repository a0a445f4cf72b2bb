"""The hybrid under the P2 protocol: does test-time SGD on its own experience carry an imitator past its
data's ceiling where the frozen imitator stays below it?

For `experiments.hybrid.arm` (a P2 arm: AD on histories cut at a fraction of training), `run_hybrid`
rolls the arm's imitators out on held-out tasks for `horizon_factor` x one truncated history, frozen and as
every hybrid variant (`experiments.hybrid.variants`, cl_limits/rollouts/hybrid.py), with the same keys,
and compares each variant's late return (last `late_fraction` of the environment steps) with the frozen
imitator's (paired by seed and task) and with the ceiling. Writes `workdir/hybrid/{returns.npz,
summary.json, curves.png}` and TensorBoard curves under `workdir/tb/hybrid`.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from cl_limits import envs as envs_lib
from cl_limits.analysis import learners, stats
from cl_limits.analysis import p2 as p2_lib
from cl_limits.histories import datasets, store
from cl_limits.imitation import runner as imitation_runner
from cl_limits.rollouts import hybrid as hybrid_lib
from cl_limits.rollouts import rollout as rollout_lib

SUMMARY = "summary.json"


def enabled(config) -> bool:
  return bool(str(config.experiments.get("hybrid", {}).get("arm", "") or ""))


def validate_config(config, model) -> None:
  h = config.experiments.hybrid
  names = imitation_runner.arm_names(config)
  if h.arm not in names:
    raise ValueError(f"experiments.hybrid.arm: {h.arm!r} is not one of the imitation arms {names}")
  arm = datasets.resolve_arm(config.imitation.arms[h.arm])
  if arm["data"] != "teacher" or arm["portion"] != "first":
    raise ValueError(f"experiments.hybrid.arm: {h.arm!r} must be a P2 arm (data='teacher', portion='first')")
  if not learners.parse_variants(h.variants):
    raise ValueError("experiments.hybrid.variants: name at least one of " + ", ".join(learners.VARIANTS))
  if float(h.horizon_factor) <= 0 or not 0 < float(h.late_fraction) <= 1 or int(h.num_tasks) < 0:
    raise ValueError(f"experiments.hybrid: horizon_factor must be > 0, late_fraction in (0, 1], num_tasks "
                     f">= 0 (got {h.horizon_factor}, {h.late_fraction}, {h.num_tasks})")
  try:
    hybrid_lib.validate(h.learner, model.context_len)
  except ValueError as e:
    raise ValueError(f"experiments.{e}") from None


def run_hybrid(config, workdir: str, log=print) -> dict | None:
  if not enabled(config):
    return None
  h = config.experiments.hybrid
  paths = store.stage_paths(workdir, "hybrid")
  if store.stage_complete(paths, "hybrid", log):
    return paths
  out_dir = paths["dir"]
  env = envs_lib.make(config.env.name, **config.env.kwargs.to_dict())
  model, params, arms, num_seeds = imitation_runner.load_final(config, workdir)
  validate_config(config, model)
  arm = datasets.resolve_arm(config.imitation.arms[h.arm])
  history, manifest = imitation_runner.load_teacher_histories(config, workdir)
  d = p2_lib.arm_data_curves(history, manifest, arm, int(config.experiments.p2.ceiling_window),
                             optimum=p2_lib.teacher_optimum(env, manifest))
  act = int(h.learner.act_steps)
  horizon = max(act, int(round(float(h.horizon_factor) * d["cut_learner_steps"])) // act * act)
  tasks, task_ids = imitation_runner.heldout_tasks(config, env, int(h.num_tasks))
  variants = learners.parse_variants(h.variants)
  log(f"[hybrid] {h.arm}: frozen vs {', '.join(variants)} on {len(task_ids)} held-out tasks, {horizon:,} steps "
      f"({h.horizon_factor:g} x the {d['cut_learner_steps']:,} steps of one truncated history); ceiling "
      f"{d['ceiling']:.2f}")
  runs = learners.run_learners(model, imitation_runner.arm_params(params, arms, h.arm, num_seeds), env, tasks,
                               horizon, jax.random.key(int(config.seed) + 19), variants=variants,
                               learner_cfg=h.learner, **rollout_lib.actions_from(config.evaluation), log=log,
                               tag=f"[hybrid] {h.arm}")
  reps, frac = int(h.bootstrap_reps), float(h.late_fraction)
  late = {k: learners.late_mean(r, e, horizon, frac) for k, (r, e) in runs.items()}
  for k, v in late.items():
    if not np.isfinite(v).all():
      raise RuntimeError(f"[hybrid] {k}: no episode finished in the last {frac:.0%} of the horizon")
  summary = {"arm": h.arm, "task_ids": np.asarray(task_ids).tolist(), "horizon_steps": horizon,
             "cut_learner_steps": d["cut_learner_steps"], "ceiling": d["ceiling"],
             "teacher_final": d["teacher_final"], "late_fraction": frac,
             "learner": h.learner.to_dict(),
             "protocol": {"actions": rollout_lib.describe_actions(config.evaluation),
                          "context": "carried across episodes, empty at the start",
                          "late": f"episodes ending in the last {frac:.0%} of the steps, step-weighted",
                          "ci": f"IQM, rliable stratified bootstrap 95% CI ({reps} resamples)"},
             "learners": {}}
  e_opt = p2_lib.task_optimum(env, task_ids) if "ceiling_norm" in d else None
  if e_opt is not None:
    summary["normalised"] = {"optimal_mean_eval": float(np.mean(e_opt)), "optimal_mean_data": d["optimal_mean"],
                             "ceiling": d["ceiling_norm"], "teacher_final": d["teacher_final_norm"]}
  for k in runs:
    entry = {"late": list(stats.interval(late[k], reps)),
             "late_minus_ceiling": list(stats.interval(late[k] - d["ceiling"], reps))}
    if k != "frozen":
      entry["late_minus_frozen"] = list(stats.interval(late[k] - late["frozen"], reps))
    if e_opt is not None:
      entry["normalised"] = p2_lib.normalised_entry(late[k], e_opt, d, reps)
    summary["learners"][k] = entry
    log(f"[hybrid] {k}: late {entry['late'][0]:.2f} [{entry['late'][1]:.2f}, {entry['late'][2]:.2f}]"
        + (f", minus frozen {entry['late_minus_frozen'][0]:.2f} [{entry['late_minus_frozen'][1]:.2f}, "
           f"{entry['late_minus_frozen'][2]:.2f}]" if k != "frozen" else "")
        + f"; ceiling {d['ceiling']:.2f}"
        + (f"; as fractions of each task's optimum: late {entry['normalised']['late'][0]:.3f} vs ceiling "
           f"{d['ceiling_norm']:.3f}" if "normalised" in entry else ""))
  os.makedirs(out_dir, exist_ok=True)
  arrays = {f"{k}/{n}": a for k, (r, e) in runs.items() for n, a in (("episode_return", r), ("episode_end", e))}
  np.savez(os.path.join(out_dir, "returns.npz"), teacher_curve=d["teacher_curve"], teacher_x=d["teacher_x"],
           **arrays)
  plot(summary, runs, d, os.path.join(out_dir, "curves.png"), horizon,
       title=f"hybrid vs frozen ({h.arm}) on held-out {config.env.name} tasks")
  learners.tensorboard_curves(os.path.join(os.path.abspath(workdir), "tb", "hybrid"), "hybrid", runs, horizon,
               {"ceiling": d["ceiling"]})
  store.atomic_write_json(paths["summary"], summary)
  return paths


def plot(summary, runs, d, path, horizon, title=""):
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  fig, ax = plt.subplots(figsize=(7, 4))
  sel = d["teacher_x"] <= horizon
  ax.plot(d["teacher_x"][sel], p2_lib.smooth(d["teacher_curve"], 10)[sel], color="k", lw=1.2,
          label="teachers (their training)")
  for i, (k, (r, e)) in enumerate(runs.items()):
    x, y = learners.mean_curve(r, e, horizon=horizon)
    ax.plot(x, learners.nanmean(y, 0), color=f"C{i}", lw=2, label=f"imitator {k}")
  ax.axhline(summary["ceiling"], color="C3", ls="--", lw=1.2, label=f"ceiling of its data ({summary['ceiling']:.2f})")
  ax.set_xlabel("environment steps")
  ax.set_ylabel("episode return (mean over seeds and tasks)")
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def load_summary(workdir: str) -> dict | None:
  return store.read_json(os.path.join(os.path.abspath(workdir), "hybrid", SUMMARY))
