"""P3 within family: can a frozen imitator learn, in context, a grid world it never saw?

For each target of `experiments.p3.targets` (DarkKeyToDoor, a larger DarkRoom: the same actions,
observation entries the imitator's embedding covers) a DQN first learns `num_tasks` of the target's
held-out tasks from scratch (the teacher stage again, its own step under `<workdir>/p3/<target>/teachers`).
This stage then rolls out, for as many environment steps as that DQN learned for, the `experiments.p3.arm`
(or a target's own `arm`)
imitators frozen and a uniform random policy on the same tasks, and scores every learner per task, 0 =
random, 1 = the DQN's final return (analysis/scores.py), summarised over replicates. A target whose `role`
is "positive_control" (held-out goals of the training family) is scored the same way: there the imitator
is known to learn in context, so it shows that the scoring can say "refuted". On the first `hybrid_tasks`
tasks, every hybrid variant of `experiments.hybrid` runs from the frozen run's keys (rollouts/learners.py:
a task's key does not depend on how many tasks run), so each is paired with the frozen run's first tasks,
for the hybrid section: test-time SGD is not what P3 predicts about. Writes `<workdir>/p3/{summary.json, <target>/returns.npz, <target>/curves.png}` and
TensorBoard under `<workdir>/tb/p3/<target>`.
"""
from __future__ import annotations

import jax
import ml_collections
import numpy as np

from cl_limits.analysis import curves, scores, stats
from cl_limits.rollouts import learners
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import artifacts, common, layout, outputs
from cl_limits.stages.base import ConfigError, Stage, check, in_range, positive_int


ROLES = ("transfer", "positive_control")


def enabled(config) -> bool:
  p3 = config.experiments.p3
  return bool(str(p3.arm or "") and len(p3.targets))


def target_config(config, name: str):
  """The config of the DQN learning target `name` from scratch: the main config with the target env,
  teaching the first `num_tasks` of the target's held-out tasks."""
  t = config.experiments.p3.targets[name]
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.env = ml_collections.ConfigDict(dict(name=t.name, kwargs=t.kwargs.to_dict()))
  cfg.tasks.teacher_split = "heldout"
  cfg.tasks.max_tasks = int(config.experiments.p3.num_tasks)
  cfg.teachers_from = ""
  steps = int(t.get("total_steps", 0) or 0)     # 0: the main teachers' steps
  if steps:
    cfg.teacher.dqn.total_steps = steps
  cfg.lock()
  return cfg


def dqn_dir(config, workdir: str, name: str) -> str:
  return common.teachers_at(config, workdir) if common.reuses_teachers(config, name) else layout.p3_target_dir(workdir, name)


def validate(config) -> None:
  p3 = config.experiments.p3
  common.validate_rollout(config)
  names = artifacts.arm_names(config)
  check(p3.arm in names, "experiments.p3.arm", f"is not one of the imitation arms {names}", p3.arm)
  n = positive_int(config, "experiments.p3.num_tasks")
  check(0 <= int(p3.hybrid_tasks) <= n, "experiments.p3.hybrid_tasks", f"must be in [0, num_tasks={n}]",
        p3.hybrid_tasks)
  in_range(config, "experiments.p3.late_fraction", 0.0, 1.0, lo_open=True)
  for name, t in p3.targets.items():
    check(t.get("role", "transfer") in ROLES, f"experiments.p3.targets.{name}.role", f"must be one of {ROLES}",
          t.get("role"))
    check(isinstance(t.get("hybrid", True), bool), f"experiments.p3.targets.{name}.hybrid", "must be True or False",
          t.get("hybrid"))
    check(not str(t.get("arm", "") or "") or t.get("arm") in names, f"experiments.p3.targets.{name}.arm",
          f"is not one of the imitation arms {names} ('' or absent: experiments.p3.arm)", t.get("arm"))
    steps = int(t.get("total_steps", 0) or 0)
    seg = int(config.teacher.dqn.segment_steps)
    check(steps >= 0 and steps % seg == 0, f"experiments.p3.targets.{name}.total_steps",
          f"must be 0 (the main teachers' steps) or a multiple of teacher.dqn.segment_steps={seg}", steps)
    check(not steps or not t.get("reuse_teachers", False), f"experiments.p3.targets.{name}.total_steps",
          "must be 0 for a target that reuses the main teachers", steps)
    same = t.name == config.env.name and t.kwargs.to_dict() == config.env.kwargs.to_dict()
    check(not t.get("reuse_teachers", False) or same, f"experiments.p3.targets.{name}.reuse_teachers",
          f"needs the target to be the training env {config.env.name} {config.env.kwargs.to_dict()}",
          (t.name, t.kwargs.to_dict()))
  env = common.env_of(config)
  n_act = env.action_space(env.default_params).n
  for name, target in artifacts.target_envs(config).items():
    m = target.action_space(target.default_params).n
    check(m == n_act, f"experiments.p3.targets.{name}.name", f"has {m} actions, the imitators {n_act}",
          target.name)


def run(step, log=print) -> None:
  config, workdir = step.config, step.workdir
  p3 = config.experiments.p3
  model, params, num_seeds = artifacts.arm(config, workdir, str(p3.arm))
  arm_of = lambda t: str(t.get("arm", "") or "") or str(p3.arm)    # a target may name its own arm
  names, h = [], None
  if common.hybrid_enabled(config) and int(p3.hybrid_tasks) > 0:
    h = config.experiments.hybrid
    names = common.hybrid_variants(h.variants, "experiments.hybrid.variants")
  frac = float(p3.late_fraction)
  actions = artifacts.protocol(config)
  summary = {"arm": p3.arm, "late_fraction": frac, "threshold": float(p3.threshold),
             "protocol": {"actions": common.describe_actions(config.evaluation),
                          "context": "carried across episodes, empty at the start",
                          "horizon": "the DQN's total environment steps in the target",
                          "normalisation": "per task: 0 = random policy, 1 = DQN's final return",
                          **scores.score_protocol(frac),
                          "ci": f"t-interval over the {num_seeds} replicates' means over tasks"},
             "targets": {}, "hybrid": {}}
  for t_i, (name, env) in enumerate(artifacts.target_envs(config).items()):
    t = p3.targets[name]
    _, params, _ = artifacts.arm(config, workdir, arm_of(t))
    dqn = layout.teacher_curves(dqn_dir(config, workdir, name))
    tasks, task_ids = common.heldout_tasks(config, env, int(p3.num_tasks))
    if not np.array_equal(np.asarray(task_ids), dqn["task_ids"]):
      raise ConfigError(f"{dqn_dir(config, workdir, name)}: the DQN's tasks {dqn['task_ids']} are not the "
                        f"imitator's {task_ids}")
    total = int(t.get("total_steps", 0) or 0) or int(config.teacher.dqn.total_steps)   # as target_config
    horizon = common.whole_segments(total, int(h.learner.act_steps)) if names else total
    key = jax.random.fold_in(jax.random.key(int(config.seed) + 23), t_i)
    tag = f"[p3] {name}"
    runs = learners.run_learners(model, params, env, tasks, horizon, key, **actions, log=log, tag=tag,
                                 settings=common.rollout_settings(config))
    rnd = rollout_lib.random_rollout(env, horizon, tasks, jax.random.split(
        jax.random.fold_in(key, 1), num_seeds * len(task_ids)).reshape(num_seeds, len(task_ids)))
    rnd_runs = (np.asarray(rnd.episode_return), np.asarray(rnd.episode_end))
    entry = {"env": t.name, "env_kwargs": t.kwargs.to_dict(), "arm": arm_of(t),
             "role": str(p3.targets[name].get("role", "transfer")),
             "task_ids": np.asarray(task_ids).tolist(), "horizon_steps": horizon}
    entry.update(scores.score(runs, rnd_runs, dqn["returns"], int(dqn["env_steps"][0]), horizon, frac, log=log,
                              tag=tag))
    summary["targets"][name] = entry
    if names and bool(p3.targets[name].get("hybrid", True)):
      # Every hybrid on the frozen run's first tasks from the same keys: a paired comparison.
      n_h = int(p3.hybrid_tasks)
      sub = common.first(tasks, n_h)
      hy = learners.run_learners(model, params, env, sub, horizon, key, variants=names, learner_cfg=h.learner,
                                 **actions, frozen=False, log=log, tag=tag + " (hybrid section)",
                                 settings=common.rollout_settings(config))
      hy = {"frozen": tuple(a[:, :n_h] for a in runs["frozen"]), **hy}
      sub_dqn = dqn["returns"][:, :n_h]
      sub_rnd = tuple(a[:, :n_h] for a in rnd_runs)
      h_entry = {"task_ids": np.asarray(task_ids)[:n_h].tolist(), "horizon_steps": horizon,
                 "env": t.name, "env_kwargs": t.kwargs.to_dict(), "role": entry["role"]}
      h_entry.update(scores.score(hy, sub_rnd, sub_dqn, int(dqn["env_steps"][0]), horizon, frac, log=log,
                                  tag=tag + " (hybrid section)"))
      _paired(h_entry, hy, sub_rnd, sub_dqn, int(dqn["env_steps"][0]), horizon, frac)
      summary["hybrid"][name] = h_entry
      runs.update({f"hybrid_{v}": hy[v] for v in names})
    outputs.write_target(layout.p3_target_dir(workdir, name), layout.path(workdir, "tb", "p3", name), f"p3/{name}", name, entry,
                 runs, rnd, dqn["returns"], dqn["env_steps"], horizon)
  outputs.write_json(layout.path(workdir, "p3", layout.SUMMARY), summary)


def _paired(entry, runs, random, dqn_curves, bin_steps, horizon, frac) -> None:
  """Each hybrid's normalised final minus the frozen imitator's, per replicate (same tasks and keys)."""
  num_bins = max(1, min(horizon // bin_steps, dqn_curves.shape[-1]))
  n_late = max(1, int(round(frac * num_bins)))
  fin = lambda r, e: scores.binned_curve_summary(curves.binned_curve(r, e, bin_steps, num_bins), n_late)[1]
  lo = curves.nanmean(fin(*random), 0)
  hi = curves.nanmean(scores.binned_curve_summary(dqn_curves[..., :num_bins], n_late)[1], 0)
  frozen = scores.normalise(fin(*runs["frozen"]), lo, hi)
  for k, (r, e) in runs.items():
    if k != "frozen" and k in entry["learners"] and "final" in entry["learners"][k]:
      diff = scores.normalise(fin(r, e), lo, hi) - frozen
      if np.isfinite(diff).all():
        iv = stats.replicate_interval(diff)
        entry["learners"][k]["final_minus_frozen"] = list(stats.as_ci(iv))
        entry["learners"][k]["final_minus_frozen_per_replicate"] = iv["per_replicate"]


STAGE = Stage(name="p3", subdir="p3",
              reads=("seed", "env", "imitation", "experiments.p3", "experiments.hybrid", "evaluation", "tasks",
                     "teacher.dqn.total_steps", "teacher.dqn.segment_steps"),
              locations=("teachers_from", common.ROLLOUT),
              validate=validate, run=run, enabled=enabled, extra_outputs=("tb/p3",))
