"""The evaluation stage: every frozen imitator (arms x seeds) rolled out on held-out tasks from an empty
context, the context carried across episodes, for `evaluation.episodes` episodes. Writes under
`<workdir>/eval/`:

  returns.npz   episode_return [arms, seeds, tasks, episodes], episode_end (1-based end step), arms, task_ids
  summary.json  protocol; per arm early / late mean return with bootstrap CIs over seeds and tasks; the
                teachers' final return; comparisons "a:b" (late return of a minus b, paired by seed and task)
  curves.png    return per episode for every arm against the rollout's environment steps
"""
from __future__ import annotations

import time

import jax
import numpy as np

from cl_limits import comma_list
from cl_limits.analysis import stats
from cl_limits.rollouts import chunked
from cl_limits.stages import artifacts, common, layout, outputs
from cl_limits.stages.base import Stage, check, positive_int


def parse_compare(spec: str) -> list[tuple[str, str]]:
  pairs = []
  for item in comma_list(spec):
    a, sep, b = item.partition(":")
    check(bool(sep and a and b), "evaluation.compare", "items must be of the form 'arm_a:arm_b'", item)
    pairs.append((a, b))
  return pairs


def validate(config) -> None:
  env = common.env_of(config)
  ev = config.evaluation
  episodes = positive_int(config, "evaluation.episodes")
  positive_int(config, "evaluation.num_tasks", minimum=0)
  for f in ("early_episodes", "late_episodes"):
    check(1 <= int(ev[f]) <= episodes, f"evaluation.{f}", f"must be in [1, episodes={episodes}]", ev[f])
  artifacts.protocol(config)
  common.validate_rollout(config)
  check(common.episode_cap(env) is not None, "env.name", "has no episode limit to size the "
        "evaluation horizon", config.env.name)
  names = artifacts.arm_names(config)
  for pair in parse_compare(ev.compare):
    for a in pair:
      check(a in names, "evaluation.compare", f"names an arm that is not one of {names}", a)


def run(step, log=print) -> None:
  config, workdir = step.config, step.workdir
  env = common.env_of(config)
  ev = config.evaluation
  model, params, arms, num_seeds = artifacts.final_imitators(config, workdir)
  tasks, task_ids = common.heldout_tasks(config, env, int(ev.num_tasks))
  episodes = int(ev.episodes)
  horizon = episodes * common.episode_cap(env)     # at least `episodes` whole episodes
  num_models, num_tasks = len(arms) * num_seeds, len(task_ids)
  keys = jax.random.split(jax.random.key(int(config.seed) + 11), num_models * num_tasks).reshape(
      num_models, num_tasks)
  log(f"[evaluate] {num_models} imitators x {num_tasks} held-out tasks, {episodes} episodes "
      f"({horizon} steps) each, {common.actions_phrase(common.describe_actions(ev))}, context "
      "carried across episodes from an empty start")
  t0 = time.time()
  res = chunked.run_batched(model, env, horizon, params, tasks, keys, settings=common.rollout_settings(config),
                            log=log, label="[evaluate]", until_episodes=episodes, **artifacts.protocol(config))
  log(f"[evaluate] {num_models * num_tasks:,} rollouts of {episodes} episodes in {time.time() - t0:.1f}s "
      "(with compilation)")
  shape = (len(arms), num_seeds, num_tasks, -1)
  rets = np.asarray(res.episode_return).reshape(shape)[..., :episodes]
  ends = np.asarray(res.episode_end).reshape(shape)[..., :episodes]
  out_dir = layout.path(workdir, "eval")
  outputs.write_npz(layout.path(out_dir, "returns.npz"), episode_return=rets, episode_end=ends,
                    arms=np.asarray(arms), task_ids=np.asarray(task_ids))
  summary = summarize(ev, rets, arms, layout.teacher_final_return(common.teachers_at(config, workdir)))
  summary["task_ids"] = np.asarray(task_ids).tolist()
  summary["horizon_steps"] = horizon
  _plot(rets, ends, arms, summary, layout.path(out_dir, "curves.png"),
        f"frozen imitators on held-out {config.env.name} tasks")
  outputs.write_json(layout.path(out_dir, layout.SUMMARY), summary)
  for a in arms:
    s = summary["arms"][a]
    log(f"[evaluate] {a}: episodes 1-{ev.early_episodes} {s['early'][0]:.2f}, last {ev.late_episodes} "
        f"{s['late'][0]:.2f} [{s['late'][1]:.2f}, {s['late'][2]:.2f}]")
  for c in summary["comparisons"]:
    log(f"[evaluate] {c['a']} - {c['b']} (last {ev.late_episodes}): {c['diff'][0]:.2f} "
        f"[{c['diff'][1]:.2f}, {c['diff'][2]:.2f}]")


def summarize(ev, rets, arms, teacher) -> dict:
  """rets [A, S, K, E] -> early/late means with CIs, comparisons, against the teachers' final return."""
  episodes = rets.shape[-1]
  n_early, n_late = int(ev.early_episodes), int(ev.late_episodes)
  rep = lambda x: list(stats.as_ci(stats.replicate_interval(x)))
  early = stats.episode_window_mean(rets, 0, n_early)              # [A, S, K]
  late = stats.episode_window_mean(rets, episodes - n_late, episodes)
  out = {"protocol": {"actions": common.describe_actions(ev), "episodes": episodes,
                      "context": "carried across episodes, empty at the start",
                      "early_episodes": n_early, "late_episodes": n_late,
                      "ci": "t-interval over the replicates' means over tasks"},
         "teacher_final_return": teacher, "arms": {}, "comparisons": []}
  for i, a in enumerate(arms):
    entry = {"early": rep(early[i]), "late": rep(late[i]),
             "late_per_seed": np.nanmean(late[i], axis=-1).tolist(),
             "mean_curve": np.nanmean(rets[i], axis=(0, 1)).tolist()}
    entry["late_over_early"] = entry["late"][0] / max(entry["early"][0], 1e-9)
    if teacher:
      entry["late_over_teacher"] = entry["late"][0] / teacher
    out["arms"][a] = entry
  for a, b in parse_compare(ev.compare):
    ia, ib = arms.index(a), arms.index(b)
    out["comparisons"].append({"a": a, "b": b, "measure": f"late return (last {n_late} episodes)",
                               "diff": rep(late[ia] - late[ib])})
  return out


def _plot(rets, ends, arms, summary, path, title):
  with outputs.figure(path) as (_, (ax,)), np.errstate(all="ignore"):
    for i, a in enumerate(arms):
      x = np.nanmean(np.where(ends[i] > 0, ends[i], np.nan), axis=(0, 1))
      per_seed = np.nanmean(rets[i], axis=1)                     # [S, E]
      (line,) = ax.plot(x, np.nanmean(per_seed, axis=0), lw=2, label=a)
      for s in range(per_seed.shape[0]):
        ax.plot(x, per_seed[s], lw=0.6, alpha=0.35, color=line.get_color())
    if summary.get("teacher_final_return"):
      ax.axhline(summary["teacher_final_return"], color="k", ls="--", lw=1, label="teachers' final return")
    ax.set_xlabel("environment steps of the rollout (context carried across episodes)")
    ax.set_ylabel("episode return (thick: mean over seeds and tasks; thin: each seed)")
    ax.set_title(title)
    ax.legend(fontsize=8)


STAGE = Stage(name="evaluation", subdir="eval", reads=("seed", "env", "imitation", "evaluation", "tasks.split_seed",
                                                       "tasks.heldout_fraction", "experiments.p3.targets"),
              locations=("teachers_from", common.ROLLOUT),
              validate=validate, run=run)
