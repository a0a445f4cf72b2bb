"""P1, snapshot imitation: the `experiments.p1.arm` imitator rolled out on the teachers' own (training)
tasks, under the evaluation protocol (empty context carried across episodes, `evaluation.episodes`
episodes), against the teachers' final return. Writes `<workdir>/p1/{returns.npz, summary.json}`.
"""
from __future__ import annotations

import jax
import numpy as np

from cl_limits.analysis import stats
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import common, layout, outputs
from cl_limits.stages import imitation as imitation_stage
from cl_limits.stages.base import Stage, check, positive_int


def enabled(config) -> bool:
  return bool(str(config.experiments.p1.arm or ""))


def validate(config) -> None:
  names = imitation_stage.arm_names(config)
  check(config.experiments.p1.arm in names, "experiments.p1.arm", f"is not one of the imitation arms {names}",
        config.experiments.p1.arm)
  positive_int(config, "experiments.p1.num_tasks", minimum=0)
  check(float(config.experiments.p1.threshold) > 0, "experiments.p1.threshold", "must be > 0",
        config.experiments.p1.threshold)


def run(step, log=print) -> None:
  config, workdir = step.config, step.workdir
  env = common.env_of(config)
  name = str(config.experiments.p1.arm)
  model, params, num_seeds = imitation_stage.arm(config, workdir, name)
  tasks, task_ids = common.teacher_tasks(config, env)
  n = int(config.experiments.p1.num_tasks) or len(task_ids)
  tasks, task_ids = common.first(tasks, n), np.asarray(task_ids)[:n]
  ev = config.evaluation
  episodes = int(ev.episodes)
  horizon = episodes * common.episode_length(env)
  fn = rollout_lib.make_batched_rollout(model, env, horizon, rollout_lib.episodes_for(env, horizon),
                                        **imitation_stage.protocol(config))
  keys = jax.random.split(jax.random.key(int(config.seed) + 17), num_seeds * n).reshape(num_seeds, n)
  res = jax.device_get(fn(params, tasks, keys))
  rets = np.asarray(res.episode_return)[..., :episodes]                 # [S, K, E]
  n_late, reps = int(ev.late_episodes), int(ev.bootstrap_reps)
  late = stats.episode_window_mean(rets, episodes - n_late, episodes)
  teacher = layout.teacher_final_return(common.teachers_at(config, workdir))
  summary = {"arm": name, "tasks": "the teachers' training tasks", "task_ids": task_ids.tolist(),
             "episodes": episodes, "late_episodes": n_late, "teacher_final": teacher,
             "late": list(stats.interval(late, reps)),
             "late_over_teacher": list(stats.interval(late / teacher, reps)) if teacher else None}
  outputs.write_npz(layout.path(workdir, "p1", "returns.npz"), episode_return=rets, task_ids=task_ids)
  outputs.write_json(layout.path(workdir, "p1", layout.SUMMARY), summary)
  log(f"[p1] {name} on {n} training tasks: late {summary['late'][0]:.2f} [{summary['late'][1]:.2f}, "
      f"{summary['late'][2]:.2f}] vs teachers' final {teacher:.2f}")


STAGE = Stage(name="p1", subdir="p1", reads=("seed", "experiments.p1", "evaluation", "tasks"),
              validate=validate, run=run, enabled=enabled)
