"""The evaluation stage: frozen imitators rolled out on held-out tasks from an empty context.

`run_evaluation(config, workdir)` restores the final weights of every imitator (arms x seeds), rolls each
out greedily (or sampled) on the held-out tasks for `evaluation.episodes` episodes with the context
carried across episodes, and writes under `workdir/eval/`:

  returns.npz   episode_return [arms, seeds, tasks, episodes], episode_end (environment step at which
                each episode ended, 1-based), arms, task_ids
  summary.json  protocol, per arm: early / late mean return with bootstrap CIs over seeds and tasks;
                the teachers' final return; comparisons "a:b" (late return of a minus b, paired by seed
                and task, bootstrap CI)
  curves.png    return per episode for every arm (mean over seeds and tasks, band = 95% CI over seeds),
                x axis = environment steps of the rollout, teachers' final return and the oracle as lines
"""
from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from cl_limits import comma_list
from cl_limits import envs as envs_lib
from cl_limits.analysis import stats
from cl_limits.histories import store
from cl_limits.imitation import runner as imitation_runner
from cl_limits.rollouts import rollout as rollout_lib

SUMMARY = "summary.json"


def validate_config(config, env) -> None:
  ev = config.evaluation
  if int(ev.episodes) < 1:
    raise ValueError(f"evaluation.episodes: must be >= 1 (got {ev.episodes})")
  if int(ev.num_tasks) < 0:
    raise ValueError(f"evaluation.num_tasks: must be >= 0, 0 meaning all held-out tasks (got {ev.num_tasks})")
  if not 1 <= int(ev.early_episodes) <= int(ev.episodes) or not 1 <= int(ev.late_episodes) <= int(ev.episodes):
    raise ValueError(f"evaluation.early_episodes / late_episodes: must be in [1, episodes={ev.episodes}] "
                     f"(got {ev.early_episodes}, {ev.late_episodes})")
  rollout_lib.actions_from(ev)     # a temperature that is not > 0
  if imitation_runner.episode_length(env) is None:
    raise ValueError(f"evaluation: {config.env.name} has no fixed episode limit to size the horizon")
  names = imitation_runner.arm_names(config)
  for pair in parse_compare(ev.compare):
    for a in pair:
      if a not in names:
        raise ValueError(f"evaluation.compare: arm {a!r} is not one of the imitation arms {names}")


def parse_compare(spec: str) -> list[tuple[str, str]]:
  pairs = []
  for item in comma_list(spec):
    a, sep, b = item.partition(":")
    if not sep or not a or not b:
      raise ValueError(f"evaluation.compare: {item!r} is not of the form 'arm_a:arm_b'")
    pairs.append((a, b))
  return pairs


def teacher_final_return(config, workdir: str) -> float | None:
  """Mean training return of the teachers in their last logging window (over seeds and tasks)."""
  from cl_limits.teachers.runner import teachers_dir  # noqa: PLC0415
  path = os.path.join(teachers_dir(config, workdir), "curves.npz")
  if not os.path.exists(path):
    return None
  with np.load(path) as z, np.errstate(all="ignore"):
    return float(np.nanmean(z["returns"][..., -1]))


def run_evaluation(config, workdir: str, log=print) -> dict:
  env = envs_lib.make(config.env.name, **config.env.kwargs.to_dict())
  imitation_runner.validate_config(config, env)
  validate_config(config, env)
  ev = config.evaluation
  paths = store.stage_paths(workdir, "eval", returns="returns.npz", figure="curves.png")
  if store.stage_complete(paths, "evaluate", log):
    return paths
  out_dir = paths["dir"]
  model, params, arms, num_seeds = imitation_runner.load_final(config, workdir)
  tasks, task_ids = imitation_runner.heldout_tasks(config, env, int(ev.num_tasks))
  episodes = int(ev.episodes)
  horizon = episodes * imitation_runner.episode_length(env)
  fn = rollout_lib.make_batched_rollout(model, env, horizon, rollout_lib.episodes_for(env, horizon),
                                        **rollout_lib.actions_from(ev))
  num_models, num_tasks = len(arms) * num_seeds, len(task_ids)
  keys = jax.random.split(jax.random.key(int(config.seed) + 11), num_models * num_tasks).reshape(
      num_models, num_tasks)
  log(f"[evaluate] {num_models} imitators x {num_tasks} held-out tasks, {episodes} episodes "
      f"({horizon} steps) each, {rollout_lib.actions_phrase(rollout_lib.describe_actions(ev))}, context carried across "
      "episodes from an empty start")
  t0 = time.time()
  res = jax.device_get(fn(params, tasks, keys))
  dt = time.time() - t0
  shape = (len(arms), num_seeds, num_tasks, -1)
  rets = np.asarray(res.episode_return).reshape(shape)[..., :episodes]
  ends = np.asarray(res.episode_end).reshape(shape)[..., :episodes]
  log(f"[evaluate] {num_models * num_tasks * horizon:,} env steps in {dt:.1f}s (with compilation)")
  os.makedirs(out_dir, exist_ok=True)
  np.savez(paths["returns"], episode_return=rets, episode_end=ends, arms=np.asarray(arms),
           task_ids=np.asarray(task_ids))
  summary = summarize(config, rets, arms, workdir)
  summary["task_ids"] = np.asarray(task_ids).tolist()
  summary["horizon_steps"] = horizon
  plot_curves(rets, ends, arms, summary, paths["figure"], title=f"frozen imitators on held-out "
              f"{config.env.name} tasks")
  store.atomic_write_json(paths["summary"], summary)
  for a in arms:
    s = summary["arms"][a]
    log(f"[evaluate] {a}: episodes 1-{ev.early_episodes} {s['early'][0]:.2f}, last {ev.late_episodes} "
        f"{s['late'][0]:.2f} [{s['late'][1]:.2f}, {s['late'][2]:.2f}]")
  for c in summary["comparisons"]:
    log(f"[evaluate] {c['a']} - {c['b']} (last {ev.late_episodes}): {c['diff'][0]:.2f} "
        f"[{c['diff'][1]:.2f}, {c['diff'][2]:.2f}]")
  return paths


def summarize(config, rets, arms, workdir) -> dict:
  """rets [A, S, K, E] -> early/late means with CIs, comparisons, teachers' final return."""
  ev = config.evaluation
  episodes = rets.shape[-1]
  n_early, n_late, reps = int(ev.early_episodes), int(ev.late_episodes), int(ev.bootstrap_reps)
  early = stats.episode_window_mean(rets, 0, n_early)              # [A, S, K]
  late = stats.episode_window_mean(rets, episodes - n_late, episodes)
  teacher = teacher_final_return(config, workdir)
  out = {"protocol": {"actions": rollout_lib.describe_actions(ev), "episodes": episodes,
                      "context": "carried across episodes, empty at the start",
                      "early_episodes": n_early, "late_episodes": n_late,
                      "ci": f"95% percentile bootstrap over seeds and tasks ({reps} resamples)"},
         "teacher_final_return": teacher, "arms": {}, "comparisons": []}
  for i, a in enumerate(arms):
    entry = {"early": list(stats.bootstrap_ci(early[i], reps)), "late": list(stats.bootstrap_ci(late[i], reps)),
             "late_per_seed": np.nanmean(late[i], axis=-1).tolist(),
             "mean_curve": np.nanmean(rets[i], axis=(0, 1)).tolist()}
    entry["late_over_early"] = entry["late"][0] / max(entry["early"][0], 1e-9)
    if teacher:
      entry["late_over_teacher"] = entry["late"][0] / teacher
    out["arms"][a] = entry
  for a, b in parse_compare(ev.compare):
    ia, ib = arms.index(a), arms.index(b)
    out["comparisons"].append({"a": a, "b": b, "measure": f"late return (last {n_late} episodes)",
                               "diff": list(stats.bootstrap_ci(late[ia] - late[ib], reps))})
  return out


def plot_curves(rets, ends, arms, summary, path, title=""):
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  fig, ax = plt.subplots(figsize=(7, 4))
  for i, a in enumerate(arms):
    x = np.nanmean(np.where(ends[i] > 0, ends[i], np.nan), axis=(0, 1))
    with np.errstate(all="ignore"):
      per_seed = np.nanmean(rets[i], axis=1)                     # [S, E]
      mean = np.nanmean(per_seed, axis=0)
    ax.plot(x, mean, lw=2, label=a)
    if per_seed.shape[0] > 1:
      lo, hi = np.nanpercentile(per_seed, [2.5, 97.5], axis=0)
      ax.fill_between(x, lo, hi, alpha=0.2)
  if summary.get("teacher_final_return"):
    ax.axhline(summary["teacher_final_return"], color="k", ls="--", lw=1, label="teachers' final return")
  ax.set_xlabel("environment steps of the rollout (context carried across episodes)")
  ax.set_ylabel("episode return (mean over seeds and tasks)")
  ax.set_title(title)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def load_summary(workdir: str) -> dict:
  with open(os.path.join(os.path.abspath(workdir), "eval", SUMMARY)) as f:
    return json.load(f)
