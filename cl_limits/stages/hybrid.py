"""The hybrid on P2's test (its held-out tasks, horizon and ceiling; the evaluation section's actions,
which are P2's own only where `experiments.p2.protocol` does not set them): does test-time SGD on its own
experience carry an imitator past its data's ceiling where the frozen imitator stays below it?

`experiments.hybrid.arm`'s imitators roll out on held-out tasks for `horizon_factor` x one truncated
history, frozen and as every hybrid variant (`experiments.hybrid.variants`, rollouts/hybrid.py), with the
same keys; each variant's late return (last `late_fraction` of the steps) is compared with the frozen
imitator's (paired by seed and task) and with the ceiling. Writes `<workdir>/hybrid/{returns.npz,
summary.json, curves.png}` and TensorBoard under `<workdir>/tb/hybrid`. Every learner runs in chunks
(`experiments.rollout`) with progress, saving its state to `<workdir>/hybrid/partial/` so a killed stage
resumes mid-run.
"""
from __future__ import annotations

import shutil

import jax
import numpy as np

from cl_limits.analysis import ceiling as ceiling_lib
from cl_limits.analysis import curves, replicates, stats
from cl_limits.histories import datasets
from cl_limits.histories import history as history_lib
from cl_limits.rollouts import hybrid as hybrid_lib
from cl_limits.rollouts import learners
from cl_limits.stages import artifacts, common, layout, outputs
from cl_limits.stages.base import Stage, check, in_range, positive_int, wrap

PARTIAL = "partial"     # <workdir>/hybrid/partial/<learner>.npz: a learner's state between chunks


def validate(config) -> None:
  h = config.experiments.hybrid
  names = artifacts.arm_names(config)
  check(h.arm in names, "experiments.hybrid.arm", f"is not one of the imitation arms {names}", h.arm)
  arm = datasets.resolve_arm(config.imitation.arms[h.arm])
  check(arm["data"] == "teacher" and arm["portion"] == "first", "experiments.hybrid.arm",
        "must be a P2 arm (data='teacher', portion='first')", h.arm)
  check(bool(common.hybrid_variants(h.variants, "experiments.hybrid.variants")), "experiments.hybrid.variants",
        f"name at least one of {sorted(learners.VARIANTS)}", h.variants)
  in_range(config, "experiments.hybrid.horizon_factor", 0.0, float("inf"), lo_open=True)
  in_range(config, "experiments.hybrid.late_fraction", 0.0, 1.0, lo_open=True)
  positive_int(config, "experiments.hybrid.num_tasks", minimum=0)
  positive_int(config, "experiments.p2.ceiling_window")
  wrap("experiments.hybrid.learner", hybrid_lib.validate, h.learner, int(config.imitation.model.context_len))
  common.validate_rollout(config)


def run(step, log=print) -> None:
  config, workdir = step.config, step.workdir
  partial = layout.path(workdir, "hybrid", PARTIAL)
  summary, runs, d, ceiling_raw, horizon = measure(config, workdir, config.evaluation, "evaluation", log,
                                                    checkpoints=partial)
  arrays = {f"{k}/{n}": a for k, (r, e) in runs.items() for n, a in (("episode_return", r), ("episode_end", e))}
  outputs.write_npz(layout.path(workdir, "hybrid", "returns.npz"), teacher_curve=d["teacher_curve"],
                    teacher_x=d["teacher_x"], **arrays)
  _plot(summary, runs, d, ceiling_raw, layout.path(workdir, "hybrid", "curves.png"),
        horizon, f"hybrid vs frozen ({summary['arm']}) on held-out {config.env.name} tasks (raw returns)")
  outputs.curves_board(layout.path(workdir, "tb", "hybrid"), "hybrid", runs, horizon)
  outputs.write_json(layout.path(workdir, "hybrid", layout.SUMMARY), summary)
  shutil.rmtree(partial, ignore_errors=True)    # the summary and returns.npz hold what they held


def measure(config, workdir, section, path: str, log=print, checkpoints=None):
  """The hybrid's rollouts and summary on P2's test with the action protocol of `section` (an evaluation-
  like section at config path `path`: the stage plays `evaluation`; `experiments.hybrid_protocol` P2's, on
  the same tasks and keys). Returns (summary, runs, the first replicate's data curves, the raw ceiling or None, horizon)."""
  h = config.experiments.hybrid
  env = common.env_of(config)
  model, params, num_seeds = artifacts.arm(config, workdir, h.arm)
  history, manifest = artifacts.load_teacher_histories(config, workdir)
  arm = datasets.resolve_arm(config.imitation.arms[h.arm])
  window = int(config.experiments.p2.ceiling_window)
  t_opt = ceiling_lib.teacher_optimum(env, manifest)
  data = replicates.data_per_replicate(history, manifest, arm, window, t_opt)
  d = data[0]
  greedy, steps = artifacts.teacher_greedy(config, workdir, manifest)
  actions = wrap(path, common.protocol_of, section)
  c = replicates.ceilings(data, greedy, steps, t_opt, basis=common.headroom_basis(config, arm, actions))
  horizon = common.whole_segments(float(h.horizon_factor) * d["cut_learner_steps"], int(h.learner.act_steps))
  tasks, task_ids = common.heldout_tasks(config, env, int(h.num_tasks))
  e_opt = ceiling_lib.task_optimum(env, task_ids) if t_opt is not None else None
  unit = "fraction of each task's optimal return" if e_opt is not None else "return"
  names = common.hybrid_variants(h.variants, "experiments.hybrid.variants")
  ceil = np.asarray(c["ceiling"])
  log(f"[hybrid] {h.arm}: frozen vs {', '.join(names)} on {len(task_ids)} held-out tasks, {horizon:,} steps "
      f"({h.horizon_factor:g} x the {d['cut_learner_steps']:,} steps of one truncated history); ceiling "
      f"{ceil.mean():.3f} ({unit})")
  runs = learners.run_learners(model, params, env, tasks, horizon, jax.random.key(int(config.seed) + 19),
                               variants=names, learner_cfg=h.learner, **actions,
                               log=log, tag=f"[hybrid] {h.arm}", settings=common.rollout_settings(config),
                               checkpoints=checkpoints)
  frac = float(h.late_fraction)
  late = {}
  for k, (r, e) in runs.items():
    v = curves.late_mean(replicates.in_unit(r, e_opt, task_axis=1), e, horizon, frac)        # [R, K]
    if not np.isfinite(v).all():
      raise RuntimeError(f"[hybrid] {k}: no episode finished in the last {frac:.0%} of the horizon")
    late[k] = v.mean(-1)                                                                     # [R]
  summary = {"arm": h.arm, "task_ids": np.asarray(task_ids).tolist(), "horizon_steps": horizon,
             "cut_learner_steps": d["cut_learner_steps"], "unit": unit,
             "ceiling": stats.replicate_interval(ceil), "ceiling_per_replicate": c,
             "late_fraction": frac, "learner": h.learner.to_dict(),
             "protocol": {"actions": common.describe_actions(section),
                          "context": "carried across episodes, empty at the start",
                          "late": f"episodes ending in the last {frac:.0%} of the steps, step-weighted",
                          "ci": f"t-interval over the {len(ceil)} replicates (frozen and hybrids paired: "
                                "same tasks and keys)"},
             "learners": {}}
  for k in runs:
    entry = {"late": stats.replicate_interval(late[k]),
             "late_minus_ceiling": stats.replicate_interval(late[k] - ceil)}
    if k != "frozen":
      entry["late_minus_frozen"] = stats.replicate_interval(late[k] - late["frozen"])
    summary["learners"][k] = entry
    log(f"[hybrid] {k}: late {entry['late']['estimate']:.3f}"
        + (f", minus frozen {common.fmt(entry['late_minus_frozen'])}" if k != "frozen" else "")
        + f"; minus ceiling {common.fmt(entry['late_minus_ceiling'])}")
  return summary, runs, d, (float(np.mean(ceil)) if e_opt is None else None), horizon


def _plot(summary, runs, d, ceiling_raw, path, horizon, title):
  with outputs.figure(path) as (_, (ax,)):
    sel = d["teacher_x"] <= horizon
    ax.plot(d["teacher_x"][sel], history_lib.moving_average(d["teacher_curve"], 10)[sel], color="k", lw=1.2,
            label="teachers (their training)")
    for i, (k, (r, e)) in enumerate(runs.items()):
      x, y = curves.mean_curve(r, e, horizon=horizon)
      ax.plot(x, curves.nanmean(y, 0), color=f"C{i}", lw=2, label=f"imitator {k}")
      for s in range(y.shape[0]):
        ax.plot(x, y[s], color=f"C{i}", lw=0.5, alpha=0.3)
    if ceiling_raw is not None:
      ax.axhline(ceiling_raw, color="C3", ls="--", lw=1.2, label=f"ceiling of its data ({ceiling_raw:.2f})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return (thick: mean; thin: each seed)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)


STAGE = Stage(name="hybrid", subdir="hybrid",
              reads=("seed", "env", "imitation", "experiments.hybrid", "experiments.p2.ceiling_window",
                     "experiments.p3.targets", "evaluation", "tasks", "teacher.dqn.eps_end"), locations=("teachers_from", common.ROLLOUT),
              validate=validate, run=run, enabled=common.hybrid_enabled, extra_outputs=("tb/hybrid",))
