"""P1, snapshot imitation: does the imitator play like the teacher at the moment its training was done?

The `experiments.p1.arm` imitator of replicate r acts on the first `num_tasks` of the teachers' own tasks:
  prompted  its context first filled with the last `prompt_episodes` episodes of replicate r's teacher on
            that task (the end of that teacher's history, `Prompt` in cl_limits/rollouts/rollout.py), then acting
            on for `episodes` episodes: Byrnes' P1;
  empty     from an empty context: with one goal per task and a dark room, what this measures is whether the
            imitator can identify its goal without ever seeing search (goal identification).
Each is scored against that teacher's final behaviour return on the same task (its last `ceiling_window`
episodes, every stream) and its final greedy return: per replicate, the mean over tasks of the imitator's
late return over the mean of its teachers' finals on the same tasks; summarised over replicates. Writes `<workdir>/p1/{returns.npz, summary.json, curves.png}`.
"""
from __future__ import annotations

import jax
import numpy as np

from cl_limits.analysis import ceiling as ceiling_lib
from cl_limits.analysis import stats
from cl_limits.histories import datasets
from cl_limits.rollouts import chunked
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import artifacts, common, layout, outputs
from cl_limits.stages.base import ConfigError, Stage, check, positive_int


def enabled(config) -> bool:
  return bool(str(config.experiments.p1.arm or ""))


def validate(config) -> None:
  p1 = config.experiments.p1
  common.validate_rollout(config)
  names = artifacts.arm_names(config)
  check(p1.arm in names, "experiments.p1.arm", f"is not one of the imitation arms {names}", p1.arm)
  positive_int(config, "experiments.p1.num_tasks", minimum=0)
  positive_int(config, "experiments.p1.prompt_episodes")
  positive_int(config, "experiments.p1.episodes")
  positive_int(config, "experiments.p1.late_episodes")
  check(int(p1.late_episodes) <= int(p1.episodes), "experiments.p1.late_episodes",
        f"must be <= experiments.p1.episodes={int(p1.episodes)}", p1.late_episodes)
  check(float(p1.threshold) > 0, "experiments.p1.threshold", "must be > 0", p1.threshold)
  check(common.episode_cap(common.env_of(config)) is not None, "env.name",
        "P1 needs an episode limit to size its prompts and rollouts", config.env.name)


def prompts(history, num_tasks: int, length: int) -> rollout_lib.Prompt:
  """The last `length` steps of stream 0 of every replicate's teacher on each of the first `num_tasks`
  tasks, ending at that stream's last recorded episode end: Prompt [R, K, length, ...]."""
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  recorded = done & (np.asarray(history.episode) >= 0)
  t = np.arange(done.shape[-1])
  last_end = np.where(recorded, t, -1).max(-1, keepdims=True)
  episodes = recorded.sum(-1)

  def short(r, k):
    return (f"experiments.p1.prompt_episodes: teacher {r} task {k} has {int(episodes[r, k, 0])} recorded "
            f"episodes, too few for a {length}-step prompt")
  return _stream0_windows(history, t <= last_end, num_tasks, length, short)


def kept_prompts(history, keep, num_tasks: int, length: int) -> rollout_lib.Prompt:
  """The last `length` kept steps of stream 0 of every replicate on each of the first `num_tasks` tasks, in
  time order: the window an imitator trained on that arm saw at the end of its data (keep [R, K, S, T],
  `datasets.keep_mask`). Prompt [R, K, length, ...]; ConfigError when a stream kept fewer steps."""
  keep = np.asarray(keep, bool)

  def short(r, k):
    return (f"prompt: replicate {r} task {k} kept {int(keep[r, k, 0].sum())} steps, fewer than the "
            f"{length}-step prompt")
  return _stream0_windows(history, keep, num_tasks, length, short)


def _stream0_windows(history, mask, num_tasks: int, length: int, short) -> rollout_lib.Prompt:
  """The last `length` steps of stream 0 that `mask` [R, K, S, T] selects, per replicate and task, in time
  order; ConfigError(short(r, k)) where fewer are selected."""
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  arrays = {"obs": np.asarray(history.obs), "action": np.asarray(history.action),
            "reward": np.asarray(history.reward), "done": done}
  if history.greedy is not None:     # exploratory steps, marked as in training
    arrays["explore"] = datasets.explore_of(arrays["action"], history.greedy)
  out = {key: [] for key in arrays}
  for r in range(done.shape[0]):
    row = {key: [] for key in arrays}
    for k in range(num_tasks):
      m = np.asarray(mask[r, k, 0], bool)
      if int(m.sum()) < length:
        raise ConfigError(short(r, k))
      for key, arr in arrays.items():
        row[key].append(arr[r, k, 0][m][-length:])
    for key in out:
      out[key].append(np.stack(row[key]))
  return rollout_lib.Prompt(**{key: np.stack(v) for key, v in out.items()})


def teacher_finals(history, curves, num_tasks: int, window: int) -> dict:
  """Per replicate and task [R, K]: the teacher's final behaviour return (mean of its last `window`
  episodes over every stream) and, where recorded, its final greedy return."""
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  reward = np.asarray(history.reward)
  n_r = done.shape[0]
  behaviour = np.zeros((n_r, num_tasks))
  for r in range(n_r):
    for k in range(num_tasks):
      rets, _ = ceiling_lib.episode_matrix(reward[r, k], done[r, k])
      per_stream = [row[np.isfinite(row)][-window:].mean() for row in rets]
      behaviour[r, k] = float(np.mean(per_stream))
  out = {"behaviour": behaviour}
  if curves is not None and "greedy_returns" in curves:
    out["greedy"] = np.asarray(curves["greedy_returns"])[:, :num_tasks, -1]
  return out


def _score(late, finals) -> dict:
  """late [R, K] against the teachers' finals [R, K] on the same tasks: per replicate, the imitator's mean
  over tasks over its teacher's mean over the same tasks (a task whose teacher ended at 0 would make a
  per-task ratio undefined), with the interval over replicates."""
  out = {"late": stats.replicate_interval(late)}
  for k, v in finals.items():
    den = np.asarray(v, np.float64).mean(-1)
    if not (den > 0).all():
      raise ConfigError(f"P1: a replicate's teacher has a final {k} return <= 0 over these tasks; the ratio "
                        "is undefined (more tasks: experiments.p1.num_tasks)")
    out[f"over_{k}"] = stats.replicate_interval(np.asarray(late, np.float64).mean(-1) / den)
  return out


def run(step, log=print) -> None:
  config, workdir = step.config, step.workdir
  env = common.env_of(config)
  p1 = config.experiments.p1
  name = str(p1.arm)
  model, params, num_seeds = artifacts.arm(config, workdir, name)
  tasks, task_ids = common.teacher_tasks(config, env)
  n = int(p1.num_tasks) or len(task_ids)
  tasks, task_ids = common.first(tasks, n), np.asarray(task_ids)[:n]
  history, _ = artifacts.load_teacher_histories(config, workdir)
  ep_len = common.episode_cap(env)          # at least `episodes` whole episodes in episodes x ep_len
  length = min(int(p1.prompt_episodes) * ep_len, int(model.context_len))
  prompt = prompts(history, n, length)
  finals = teacher_finals(history, layout.teacher_curves(common.teachers_at(config, workdir)), n,
                          int(config.experiments.p2.ceiling_window))
  episodes, n_late = int(p1.episodes), int(p1.late_episodes)
  horizon = episodes * ep_len
  actions = artifacts.protocol(config)
  keys = jax.random.split(jax.random.key(int(config.seed) + 17), num_seeds * n).reshape(num_seeds, n)
  summary = {"arm": name, "tasks": "the teachers' training tasks", "task_ids": task_ids.tolist(),
             "episodes": episodes, "late_episodes": n_late, "prompt_steps": length,
             "threshold": float(p1.threshold), "replicates": num_seeds,
             "actions": common.describe_actions(config.evaluation),
             "teacher_final": {k: v.mean(-1).tolist() for k, v in finals.items()}, "modes": {}}
  arrays = {"task_ids": task_ids}
  for mode in ("prompted", "empty"):
    res = chunked.run_batched(model, env, horizon, params, tasks, keys, prompt if mode == "prompted" else None,
                              settings=common.rollout_settings(config), log=log, label=f"[p1] {name} {mode}",
                              until_episodes=episodes, **actions)
    rets = np.asarray(res.episode_return)[..., :episodes]                             # [R, K, E]
    late = stats.episode_window_mean(rets, episodes - n_late, episodes)                # [R, K]
    summary["modes"][mode] = _score(late, finals)
    arrays[f"{mode}/episode_return"] = rets
    s = summary["modes"][mode]
    log(f"[p1] {name} {mode}: late {s['late']['estimate']:.2f} on {n} training tasks, "
        f"/ teachers' final behaviour {s['over_behaviour']['estimate']:.3f} "
        f"[{s['over_behaviour']['low']:.3f}, {s['over_behaviour']['high']:.3f}]")
  outputs.write_npz(layout.path(workdir, "p1", "returns.npz"), **arrays)
  _plot(summary, arrays, finals, layout.path(workdir, "p1", "curves.png"))
  outputs.write_json(layout.path(workdir, "p1", layout.SUMMARY), summary)


def _plot(summary, arrays, finals, path):
  with outputs.figure(path) as (_, (ax,)):
    for i, mode in enumerate(summary["modes"]):
      rets = arrays[f"{mode}/episode_return"].mean(1)                                     # [R, E]
      x = np.arange(1, rets.shape[-1] + 1)
      for r, c in enumerate(rets):
        ax.plot(x, c, color=f"C{i}", lw=0.7, alpha=0.5, label=f"{mode}, each replicate" if r == 0 else None)
      ax.plot(x, rets.mean(0), color=f"C{i}", lw=2, label=f"{mode}, mean")
    ax.axhline(float(finals["behaviour"].mean()), color="k", ls="--", lw=1.2, label="teachers' final behaviour")
    if "greedy" in finals:
      ax.axhline(float(finals["greedy"].mean()), color="C2", ls=":", lw=1.2, label="teachers' final greedy")
    ax.set_xlabel("episode (after the prompt)")
    ax.set_ylabel("return (mean over tasks)")
    ax.set_title(f"P1: {summary['arm']} on the teachers' own tasks", fontsize=10)
    ax.legend(fontsize=7)


STAGE = Stage(name="p1", subdir="p1", reads=("seed", "env", "imitation", "experiments.p1",
                                             "experiments.p2.ceiling_window", "experiments.p3.targets",
                                             "evaluation", "tasks"),
              locations=("teachers_from", common.ROLLOUT),
              validate=validate, run=run, enabled=enabled)
