"""P1, snapshot imitation: the snapshot imitator rolled out on the teachers' own (training) tasks.

A snapshot of a teacher can only be asked to play what the teacher played, so P1 compares the `p1.arm`
imitator's late return on `p1.num_tasks` of the teachers' training tasks (same protocol as the evaluation
stage: empty context carried across episodes, `evaluation.episodes` episodes) with the teachers' final
return. Writes `workdir/p1/{returns.npz, summary.json}`; held-out tasks stay in the evaluation stage.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from cl_limits import envs as envs_lib
from cl_limits.analysis import stats
from cl_limits.histories import store
from cl_limits.imitation import runner as imitation_runner
from cl_limits.rollouts import evaluation
from cl_limits.rollouts import rollout as rollout_lib

SUMMARY = "summary.json"


def run_p1(config, workdir: str, log=print) -> dict | None:
  arm = str(config.experiments.p1.arm or "")
  if not arm:
    return None
  from cl_limits.teachers.runner import teacher_tasks  # noqa: PLC0415
  env = envs_lib.make(config.env.name, **config.env.kwargs.to_dict())
  names = imitation_runner.arm_names(config)
  if arm not in names:
    raise ValueError(f"experiments.p1.arm: {arm!r} is not one of the imitation arms {names}")
  paths = store.stage_paths(workdir, "p1")
  if store.stage_complete(paths, "p1", log):
    return paths
  out_dir = paths["dir"]
  model, params, arms, num_seeds = imitation_runner.load_final(config, workdir)
  tasks, task_ids = teacher_tasks(config, env)
  n = int(config.experiments.p1.num_tasks) or len(task_ids)
  tasks, task_ids = jax.tree.map(lambda x: x[:n], tasks), np.asarray(task_ids)[:n]
  ev = config.evaluation
  episodes = int(ev.episodes)
  horizon = episodes * imitation_runner.episode_length(env)
  fn = rollout_lib.make_batched_rollout(model, env, horizon, rollout_lib.episodes_for(env, horizon),
                                        **rollout_lib.actions_from(ev))
  arm_params = imitation_runner.arm_params(params, arms, arm, num_seeds)
  keys = jax.random.split(jax.random.key(int(config.seed) + 17), num_seeds * n).reshape(num_seeds, n)
  res = jax.device_get(fn(arm_params, tasks, keys))
  rets = np.asarray(res.episode_return)[..., :episodes]                 # [S, K, E]
  n_late, reps = int(ev.late_episodes), int(ev.bootstrap_reps)
  late = stats.episode_window_mean(rets, episodes - n_late, episodes)
  teacher = evaluation.teacher_final_return(config, workdir)
  summary = {"arm": arm, "tasks": "the teachers' training tasks", "task_ids": task_ids.tolist(),
             "episodes": episodes, "late_episodes": n_late, "teacher_final": teacher,
             "late": list(stats.interval(late, reps)),
             "late_over_teacher": list(stats.interval(late / teacher, reps)) if teacher else None}
  os.makedirs(out_dir, exist_ok=True)
  np.savez(os.path.join(out_dir, "returns.npz"), episode_return=rets, task_ids=task_ids)
  store.atomic_write_json(paths["summary"], summary)
  log(f"[p1] {arm} on {n} training tasks: late {summary['late'][0]:.2f} [{summary['late'][1]:.2f}, "
      f"{summary['late'][2]:.2f}] vs teachers' final {teacher:.2f}")
  return paths


def load_summary(workdir: str) -> dict | None:
  return store.read_json(os.path.join(os.path.abspath(workdir), "p1", SUMMARY))
