"""P2, beyond the ceiling: imitators of truncated histories rolled out far past their data.

For every arm of `experiments.p2.arms` (AD on the teacher histories cut at a fraction of training):
  1. the arm's *ceiling*: the best moving-average return anywhere in its data (analysis/ceiling.py, over
     `ceiling_window` teacher episodes, i.e. ceil(window / gap) kept episodes);
  2. its frozen imitators (every seed) rolled out on held-out tasks from an empty context, the context
     carried across episodes, for `horizon_factor` x the environment steps of one truncated history;
  3. late return (last `late_fraction` of the episodes) against the ceiling, the teachers' continuation
     past the cut on the same environment-step axis, and their greedy policy at the cut.
Writes `<workdir>/p2/{returns.npz, summary.json, curves.png}` and TensorBoard under `<workdir>/tb/p2`.
"""
from __future__ import annotations

import time

import jax
import numpy as np

from cl_limits import comma_list
from cl_limits.analysis import ceiling as ceiling_lib
from cl_limits.analysis import stats
from cl_limits.histories import datasets
from cl_limits.histories import history as history_lib
from cl_limits.imitation import learner as learner_lib
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import common, layout, outputs
from cl_limits.stages import imitation as imitation_stage
from cl_limits.stages.base import Stage, check, in_range, positive_int


def arms(config) -> list[str]:
  return comma_list(config.experiments.p2.arms)


def enabled(config) -> bool:
  return bool(arms(config))


def validate(config) -> None:
  names = imitation_stage.arm_names(config)
  for a in arms(config):
    check(a in names, "experiments.p2.arms", f"names an arm that is not one of {names}", a)
    arm = datasets.resolve_arm(config.imitation.arms[a])
    check(arm["data"] == "teacher" and arm["portion"] == "first", "experiments.p2.arms",
          f"arm {a!r} must train on teacher histories truncated at a fraction of training (data='teacher', "
          "portion='first')", (arm["data"], arm["portion"]))
  in_range(config, "experiments.p2.horizon_factor", 0.0, float("inf"), lo_open=True)
  in_range(config, "experiments.p2.late_fraction", 0.0, 1.0, lo_open=True)
  positive_int(config, "experiments.p2.ceiling_window")
  positive_int(config, "experiments.p2.num_tasks", minimum=0)
  positive_int(config, "experiments.p2.bootstrap_reps")


def data_curves(config, workdir, env, history, manifest, name: str) -> dict:
  """The ceiling, cut and teachers' curve of arm `name` (analysis/ceiling.py), with the teachers' greedy
  policy at the cut where the teacher run recorded it."""
  arm = datasets.resolve_arm(config.imitation.arms[name])
  t_opt = ceiling_lib.teacher_optimum(env, manifest)
  d = ceiling_lib.arm_data_curves(history, manifest, arm, int(config.experiments.p2.ceiling_window),
                                  optimum=t_opt)
  d["arm"], d["optimum"] = arm, t_opt
  curves = None if "sources" in manifest else layout.teacher_curves(
      common.teachers_at(config, workdir))
  if curves is not None and "greedy_returns" in curves:
    d["greedy"] = ceiling_lib.greedy_at_cut(curves["greedy_returns"], curves["greedy_env_steps"],
                                            d["cut_learner_steps"], len(manifest["task_ids"]), t_opt)
  return d


def run(step, log=print) -> None:
  config, workdir = step.config, step.workdir
  env = common.env_of(config)
  p2 = config.experiments.p2
  ep_len = common.episode_length(env)
  history, manifest = imitation_stage.load_teacher_histories(config, workdir)
  model, params, arm_list, num_seeds = imitation_stage.final_imitators(config, workdir)
  tasks, task_ids = common.heldout_tasks(config, env, int(p2.num_tasks))
  num_tasks, reps = len(task_ids), int(p2.bootstrap_reps)
  summary = {"protocol": {"actions": rollout_lib.describe_actions(config.evaluation),
                          "context": "carried across episodes, empty at the start",
                          "horizon": f"{p2.horizon_factor:g} x the environment steps of one truncated "
                                     "history", "late": f"last {float(p2.late_fraction):.0%} of episodes",
                          "ceiling_window_episodes": int(p2.ceiling_window),
                          "ci": f"IQM, rliable stratified bootstrap 95% CI ({reps} resamples)"},
             "task_ids": np.asarray(task_ids).tolist(), "arms": {}}
  arrays = {}
  tb_dir = layout.path(workdir, "tb", "p2")
  for name in arms(config):
    d = data_curves(config, workdir, env, history, manifest, name)
    e_opt = ceiling_lib.task_optimum(env, task_ids) if d["optimum"] is not None else None
    horizon = common.whole_episodes(float(p2.horizon_factor) * d["cut_learner_steps"], ep_len)
    i = arm_list.index(name)
    fn = rollout_lib.make_batched_rollout(model, env, horizon, rollout_lib.episodes_for(env, horizon),
                                          **imitation_stage.protocol(config))
    keys = jax.random.split(jax.random.fold_in(jax.random.key(int(config.seed) + 13), i),
                            num_seeds * num_tasks).reshape(num_seeds, num_tasks)
    log(f"[p2] {name}: ceiling {d['ceiling']:.2f} (data cut at {d['cut_learner_steps']:,} learner steps); "
        f"{num_seeds} imitators x {num_tasks} held-out tasks for {horizon:,} steps each")
    t0 = time.time()
    res = jax.device_get(fn(learner_lib.arm_params(params, arm_list, name, num_seeds), tasks,
                            keys))
    n_ep = horizon // ep_len if ep_len else int(np.min(np.asarray(res.num_episodes)))
    rets = np.asarray(res.episode_return)[..., :n_ep]                    # [S, K, E]
    ends = np.asarray(res.episode_end)[..., :n_ep]
    log(f"[p2] {name}: {num_seeds * num_tasks * horizon:,} env steps in {time.time() - t0:.1f}s")
    entry = _entry(d, rets, n_ep, horizon, float(p2.late_fraction), reps, int(manifest["streams_per_learner"]),
                   e_opt)
    summary["arms"][name] = entry
    arrays[f"{name}/episode_return"], arrays[f"{name}/episode_end"] = rets, ends
    arrays[f"{name}/teacher_curve"], arrays[f"{name}/teacher_x"] = d["teacher_curve"], d["teacher_x"]
    outputs.line_board(layout.path(tb_dir, "teacher"), f"p2/{name}/teacher", d["teacher_x"], d["teacher_curve"])
    outputs.curves_board(tb_dir, f"p2/{name}", {"imitator": (rets, ends)}, horizon,
                         {"ceiling": d["ceiling"]}, bins=min(100, n_ep))
    _log_entry(log, name, entry, d)
  outputs.write_npz(layout.path(workdir, "p2", "returns.npz"), **arrays)
  _plot(summary, arrays, layout.path(workdir, "p2", "curves.png"), f"P2 on held-out {config.env.name} tasks")
  outputs.write_json(layout.path(workdir, "p2", layout.SUMMARY), summary)


def _entry(d, rets, n_ep, horizon, late_fraction, reps, streams, e_opt) -> dict:
  n_late = max(1, int(round(late_fraction * n_ep)))
  late = stats.episode_window_mean(rets, n_ep - n_late, n_ep)          # [S, K]
  early = stats.episode_window_mean(rets, 0, min(3, n_ep))
  ex = ceiling_lib.exceed(late, d["ceiling"], reps=reps)
  arm = d["arm"]
  entry = {"fraction": float(arm["fraction"]), "gap": int(arm["gap"]), "streams_per_learner": streams,
           "ceiling": d["ceiling"], "ceiling_episode": d["ceiling_episode"],
           "ceiling_kept_window": d["ceiling_kept_window"],
           "cut_learner_steps": d["cut_learner_steps"], "horizon_steps": horizon, "episodes": n_ep,
           "late_episodes": n_late, "early": list(stats.interval(early, reps)),
           "late": list(stats.interval(late, reps)),
           "late_minus_ceiling": list(stats.interval(late - d["ceiling"], reps)),
           "late_minus_ceiling_mean": ex["diff"], "prob_exceed": ex["prob"],
           "teacher_final": d["teacher_final"],
           "teacher_final_minus_ceiling": d["teacher_final"] - d["ceiling"],
           "late_minus_teacher_final": list(stats.interval(late - d["teacher_final"], reps)),
           "late_per_seed": np.mean(late, axis=-1).tolist()}
  greedy = d.get("greedy")
  if greedy is not None:
    entry["teacher_greedy_at_cut"] = greedy
  if e_opt is not None:
    entry["normalised"] = ceiling_lib.normalised_entry(late, e_opt, d, reps, (greedy or {}).get("fraction"))
  return entry


def _log_entry(log, name, entry, d):
  log(f"[p2] {name}: late {entry['late'][0]:.2f} [{entry['late'][1]:.2f}, {entry['late'][2]:.2f}] vs "
      f"ceiling {d['ceiling']:.2f}: late - ceiling {entry['late_minus_ceiling'][0]:.2f} "
      f"[{entry['late_minus_ceiling'][1]:.2f}, {entry['late_minus_ceiling'][2]:.2f}]; teachers went on to "
      f"{d['teacher_final']:.2f}")
  if "normalised" in entry:
    n = entry["normalised"]
    log(f"[p2] {name}: as fractions of each task's optimum (mean {n['optimal_mean_eval']:.2f} on these "
        f"tasks, {n['optimal_mean_data']:.2f} on the teachers'): late {n['late'][0]:.3f} vs ceiling "
        f"{n['ceiling']:.3f}: late - ceiling {n['late_minus_ceiling'][0]:.3f} [{n['late_minus_ceiling'][1]:.3f}, "
        f"{n['late_minus_ceiling'][2]:.3f}]"
        + (f"; the teachers' greedy policy at the cut {n['teacher_greedy_at_cut']:.3f}, late minus it "
           f"{n['late_minus_teacher_greedy_at_cut'][0]:.3f} [{n['late_minus_teacher_greedy_at_cut'][1]:.3f}, "
           f"{n['late_minus_teacher_greedy_at_cut'][2]:.3f}]" if "teacher_greedy_at_cut" in n else ""))


def _plot(summary, arrays, path, title):
  """One panel per P2 arm: teachers' full curve, the cut, the ceiling, and every imitator seed's rollout."""
  names = list(summary["arms"])
  smooth = history_lib.moving_average
  with outputs.figure(path, ncols=len(names), size=(6, 4)) as (fig, axes):
    for ax, name in zip(axes, names):
      e = summary["arms"][name]
      w = max(1, int(summary["protocol"]["ceiling_window_episodes"]))
      tx, tc = arrays[f"{name}/teacher_x"], arrays[f"{name}/teacher_curve"]
      ax.plot(tx, smooth(tc, w), color="k", lw=1.5, label="teachers (full run)")
      rets, ends = arrays[f"{name}/episode_return"], arrays[f"{name}/episode_end"]
      x = np.nanmax(ends, axis=(0, 1))
      per_seed = np.stack([smooth(np.nanmean(r, axis=0), w) for r in rets])     # [S, E]
      ax.plot(x, per_seed.mean(0), color="C0", lw=2, label="frozen imitator (AD on truncated data)")
      for s, c in enumerate(per_seed):
        ax.plot(x, c, color="C0", lw=0.6, alpha=0.35, label="each seed" if s == 0 else None)
      ax.axhline(e["ceiling"], color="C3", ls="--", lw=1.2, label=f"ceiling of its data ({e['ceiling']:.2f})")
      ax.axvline(e["cut_learner_steps"], color="gray", ls=":", lw=1.2, label="data cut")
      if "teacher_greedy_at_cut" in e:
        g = e["teacher_greedy_at_cut"]
        ax.plot([g["env_steps"]], [g["return"]], marker="*", ms=12, color="C2", ls="none",
                label=f"teachers' greedy policy at the cut ({g['return']:.2f})")
      ax.set_xlabel("environment steps (teacher: its training; imitator: its rollout)")
      ax.set_ylabel(f"episode return (moving average, {w} episodes)")
      ax.set_title(f"{name}: data cut at {e['fraction']:.0%} of training")
      ax.legend(fontsize=7)
    fig.suptitle(title)


STAGE = Stage(name="p2", subdir="p2", reads=("seed", "experiments.p2", "evaluation", "tasks"),
              validate=validate, run=run, enabled=enabled, extra_outputs=("tb/p2",))
