"""P3 within family: can a frozen imitator learn, in context, a grid world it never saw?

For each target of `experiments.p3.targets` (DarkKeyToDoor, a larger DarkRoom: same actions, observation
entries the imitator's embedding covers), `run_p3(config, workdir)`:

  1. trains DQN from scratch on `num_tasks` of the target's held-out tasks (the teacher stage with the
     target env, under `workdir/p3/<target>/teachers`: resumable, TensorBoard, curves);
  2. rolls the `experiments.p3.arm` imitators (every seed), frozen, from an empty context in those tasks
     for as many environment steps as the DQN learned for (its total_steps), and, on the first
     `hybrid_tasks` tasks, every hybrid variant of `experiments.hybrid` over the same steps;
  3. rolls out a uniform random policy over the same steps;
  4. normalises per task, 0 = the random policy's mean return, 1 = the DQN's final return (its last
     logging window, mean over DQN seeds), and reports the area under the learning curve (step-weighted
     mean return over the whole horizon) and the final return (the last `late_fraction` of the steps)
     of every learner with rliable IQM CIs over seeds x tasks.

Writes `workdir/p3/{summary.json, <target>/returns.npz, <target>/curves.png}` and TensorBoard curves under
`workdir/tb/p3/<target>`.
"""
from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from cl_limits.analysis import hybrid_stage, learners, stats
from cl_limits.histories import store
from cl_limits.imitation import runner as imitation_runner
from cl_limits.rollouts import rollout as rollout_lib

SUMMARY = "summary.json"


def enabled(config) -> bool:
  p3 = config.experiments.get("p3")
  return bool(p3 is not None and str(p3.get("arm", "") or "") and len(p3.get("targets", {})))


def target_config(config, name: str):
  """The config of the DQN learning target `name` from scratch: the main config with the target env,
  teaching the first `num_tasks` of the target's held-out tasks."""
  t = config.experiments.p3.targets[name]
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.env = ml_collections.ConfigDict(dict(name=t.name, kwargs=t.kwargs.to_dict()))
  cfg.tasks.teacher_split = "heldout"
  cfg.tasks.max_tasks = int(config.experiments.p3.num_tasks)
  if "teachers_from" in cfg:
    cfg.teachers_from = ""
  cfg.lock()
  return cfg


def validate_config(config, model) -> None:
  p3 = config.experiments.p3
  names = imitation_runner.arm_names(config)
  if p3.arm not in names:
    raise ValueError(f"experiments.p3.arm: {p3.arm!r} is not one of the imitation arms {names}")
  if int(p3.num_tasks) < 1 or not 0 <= int(p3.hybrid_tasks) <= int(p3.num_tasks):
    raise ValueError(f"experiments.p3: num_tasks must be >= 1 and hybrid_tasks in [0, num_tasks] (got "
                     f"{p3.num_tasks}, {p3.hybrid_tasks})")
  if not 0 < float(p3.late_fraction) <= 1:
    raise ValueError(f"experiments.p3.late_fraction: must be in (0, 1] (got {p3.late_fraction})")
  for name, env in imitation_runner.transplant_targets(config).items():
    n = env.action_space(env.default_params).n
    if n != model.num_actions:
      raise ValueError(f"experiments.p3.targets.{name}: {env.name} has {n} actions, the imitators "
                       f"{model.num_actions}")


def normalise(x, lo, hi):
  """(x - lo) / (hi - lo) per task; x [..., K], lo / hi [K]."""
  return (x - lo) / (hi - lo)


def score(runs, random, dqn_curves, bin_steps: int, horizon: int, frac: float, reps: int, log=print,
          tag="") -> dict:
  """Normalised AUC and final return of the DQN and every learner, with IQM CIs over seeds x tasks.

  Every learner is summarised as the DQN's curves are: the mean return of the episodes ending in each
  window of `bin_steps` environment steps over the first `horizon` steps; AUC = the mean over windows,
  final = the mean over the last `frac` of them. 0 = the random policy's AUC, 1 = the DQN's final (both
  per task, the DQN's mean over its seeds).

  runs: {learner: (episode_return [S, K', E], episode_end [S, K', E])}, K' <= K (a learner may run on the
  first K' tasks only; with K = 1, K' columns are K' rollouts of that one task); random: (episode_return, episode_end) [R, K, E]; dqn_curves [S_dqn, K, bins] with
  bin i covering steps (i * bin_steps, (i + 1) * bin_steps]. Returns the target entry's scores."""
  num_bins = max(1, min(horizon // bin_steps, dqn_curves.shape[-1]))
  n_late = max(1, int(round(frac * num_bins)))
  curve = lambda r, e: binned_curve_summary(learners.binned_curve(r, e, bin_steps, num_bins), n_late)
  dqn = binned_curve_summary(dqn_curves[..., :num_bins], n_late)
  rnd_auc, _ = curve(*random)
  lo = learners.nanmean(rnd_auc, 0)
  hi = learners.nanmean(dqn[1], 0)
  ok = np.isfinite(hi) & np.isfinite(lo) & (hi - lo > 1e-6)
  out = {"tasks_used": int(ok.sum()), "learners": {}, "random_return": lo.tolist(),
         "dqn_final_return": hi.tolist(), "bin_steps": int(bin_steps), "bins": int(num_bins),
         "late_bins": n_late}
  if not ok.any():
    out["note"] = "the DQN did not beat the random policy on any task: nothing to normalise by"
    log(f"{tag}: {out['note']}")
    return out
  scored = {"dqn": dqn}
  for k, (r, e) in runs.items():
    scored[k] = curve(r, e)
  for k, (auc, fin) in scored.items():
    n_k = auc.shape[1]     # a single task's levels serve every column (repeated rollouts of one game)
    m, lo_k, hi_k = (np.repeat(v, n_k) if len(v) == 1 else v[:n_k] for v in (ok, lo, hi))
    if not m.any() or not np.isfinite(auc[:, m]).all() or not np.isfinite(fin[:, m]).all():
      out["learners"][k] = {"note": "no finished episodes to score"}
      continue
    a_n = normalise(auc[:, m], lo_k[m], hi_k[m])
    f_n = normalise(fin[:, m], lo_k[m], hi_k[m])
    out["learners"][k] = {"tasks": int(m.sum()), "auc": list(stats.interval(a_n, reps)),
                          "final": list(stats.interval(f_n, reps)),
                          "final_raw": float(np.mean(fin[:, m])), "auc_raw": float(np.mean(auc[:, m]))}
    e = out["learners"][k]
    log(f"{tag} {k}: normalised AUC {e['auc'][0]:.2f} [{e['auc'][1]:.2f}, {e['auc'][2]:.2f}], "
        f"final {e['final'][0]:.2f} [{e['final'][1]:.2f}, {e['final'][2]:.2f}] (raw {e['final_raw']:.2f})")
  return out


def binned_curve_summary(curves, n_late: int):
  """(AUC, final) [...] of binned curves [..., bins]: the mean over all bins and over the last n_late."""
  return learners.nanmean(curves, -1), learners.nanmean(curves[..., -n_late:], -1)


def run_p3(config, workdir: str, log=print) -> dict | None:
  if not enabled(config):
    return None
  from cl_limits.teachers.runner import run_teachers  # noqa: PLC0415
  p3 = config.experiments.p3
  paths = store.stage_paths(workdir, "p3")
  if store.stage_complete(paths, "p3", log):
    return paths
  out_dir = paths["dir"]
  model, params, arms, num_seeds = imitation_runner.load_final(config, workdir)
  validate_config(config, model)
  variants, h = [], None
  if hybrid_stage.enabled(config) and int(p3.hybrid_tasks) > 0:
    h = config.experiments.hybrid
    variants = learners.parse_variants(h.variants)
  arm_params = imitation_runner.arm_params(params, arms, p3.arm, num_seeds)
  reps, frac = int(p3.bootstrap_reps), float(p3.late_fraction)
  summary = {"arm": p3.arm, "late_fraction": frac, "threshold": float(p3.threshold),
             "protocol": {"actions": rollout_lib.describe_actions(config.evaluation),
                          "context": "carried across episodes, empty at the start",
                          "horizon": "the DQN's total environment steps in the target",
                          "normalisation": "per task: 0 = random policy, 1 = DQN's final return",
                          **score_protocol(frac),
                          "ci": f"IQM, rliable stratified bootstrap 95% CI ({reps} resamples)"},
             "targets": {}}
  os.makedirs(out_dir, exist_ok=True)
  for t_i, (name, env) in enumerate(imitation_runner.transplant_targets(config).items()):
    tcfg = target_config(config, name)
    tdir = os.path.join(out_dir, name)
    log(f"[p3] {name}: DQN from scratch on {tcfg.env.name} {tcfg.env.kwargs.to_dict()}")
    run_teachers(tcfg, tdir, log=log)
    with np.load(os.path.join(tdir, "teachers", "curves.npz")) as z:
      dqn_curves, dqn_x, dqn_ids = z["returns"], z["env_steps"], z["task_ids"]
    tasks, task_ids = imitation_runner.heldout_tasks(tcfg, env, int(p3.num_tasks))
    if not np.array_equal(np.asarray(task_ids), dqn_ids):
      raise RuntimeError(f"[p3] {name}: the DQN's tasks {dqn_ids} are not the imitator's {task_ids}")
    horizon = learner_horizon(int(tcfg.teacher.dqn.total_steps), h.learner if variants else None)
    key = jax.random.fold_in(jax.random.key(int(config.seed) + 23), t_i)
    tag = f"[p3] {name}"
    actions = rollout_lib.actions_from(config.evaluation)
    runs = learners.run_learners(model, arm_params, env, tasks, horizon, key, **actions, log=log, tag=tag)
    if variants:
      n_h = int(p3.hybrid_tasks)
      sub = jax.tree.map(lambda x: x[:n_h], tasks)
      hy = learners.run_learners(model, arm_params, env, sub, horizon, key, variants=variants,
                                 learner_cfg=h.learner, **actions, frozen=False, log=log, tag=tag)
      runs.update({f"hybrid_{v}": hy[v] for v in variants})
    rnd = rollout_lib.make_random_rollout(env, horizon, rollout_lib.episodes_for(env, horizon))(
        tasks, jax.random.split(jax.random.fold_in(key, 1), num_seeds * len(task_ids)).reshape(
            num_seeds, len(task_ids)))
    rnd = jax.device_get(rnd)
    entry = {"env": tcfg.env.name, "env_kwargs": tcfg.env.kwargs.to_dict(),
             "task_ids": np.asarray(task_ids).tolist(), "horizon_steps": horizon}
    entry.update(score(runs, (np.asarray(rnd.episode_return), np.asarray(rnd.episode_end)), dqn_curves,
                       int(dqn_x[0]), horizon, frac, reps, log=log, tag=tag))
    summary["targets"][name] = entry
    write_outputs(tdir, os.path.join(os.path.abspath(workdir), "tb", "p3", name), f"p3/{name}", name, entry,
                  runs, rnd, dqn_curves, dqn_x, horizon)
  store.atomic_write_json(paths["summary"], summary)
  return paths


def learner_horizon(total_steps: int, hybrid_learner=None) -> int:
  """The imitators' horizon: the DQN's total steps, cut to whole hybrid segments when hybrids run."""
  if hybrid_learner is None:
    return total_steps
  act = int(hybrid_learner.act_steps)
  return max(act, total_steps // act * act)


def score_protocol(frac: float) -> dict:
  """How `score` summarises a learner, for the summary's protocol."""
  return {"auc": "mean over the horizon of the mean return of the episodes ending in each DQN logging "
                 "window (the DQN's curves are that statistic)",
          "final": f"the same over the last {frac:.0%} of the windows"}


def write_outputs(out_dir, tb_dir, group, title, entry, runs, rnd, dqn_curves, dqn_x, horizon):
  """A scored target's returns.npz and curves.png under out_dir, its TensorBoard curves under tb_dir."""
  lo = np.asarray(entry["random_return"])
  np.savez(os.path.join(out_dir, "returns.npz"), dqn_curves=dqn_curves, dqn_x=dqn_x,
           random_return=np.asarray(rnd.episode_return), random_end=np.asarray(rnd.episode_end),
           **{f"{k}/{n}": a for k, (r, e) in runs.items() for n, a in (("episode_return", r), ("episode_end", e))})
  plot(title, entry, runs, dqn_curves, dqn_x, lo, os.path.join(out_dir, "curves.png"), horizon)
  learners.tensorboard_curves(tb_dir, group, runs, horizon, {"random": float(np.mean(lo))})
  dqn_tensorboard(tb_dir, group, dqn_curves, dqn_x)


def dqn_tensorboard(tb_dir, group, curves, x):
  from tensorboardX import SummaryWriter  # noqa: PLC0415
  with SummaryWriter(os.path.join(tb_dir, "all")) as w, np.errstate(all="ignore"):
    m = np.nanmean(curves, axis=(0, 1))
    for j in np.flatnonzero(np.isfinite(m)):
      w.add_scalar(f"{group}/dqn", float(m[j]), int(x[j]))


def plot(name, entry, runs, dqn_curves, dqn_x, random_level, path, horizon):
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  fig, ax = plt.subplots(figsize=(7, 4))
  with np.errstate(all="ignore"):
    ax.plot(dqn_x, np.nanmean(dqn_curves, axis=(0, 1)), color="k", lw=2, label="DQN from scratch")
  for i, (k, (r, e)) in enumerate(runs.items()):
    x, y = learners.mean_curve(r, e, horizon=horizon)
    n_tasks = r.shape[1]
    ax.plot(x, learners.nanmean(y, 0), color=f"C{i}", lw=2, label=f"imitator {k} ({n_tasks} tasks)")
  ax.axhline(float(np.mean(random_level)), color="gray", ls=":", lw=1.2, label="random policy")
  ax.set_xlabel("environment steps in the unseen env")
  ax.set_ylabel("episode return (mean over seeds and tasks)")
  ax.set_title(f"P3 {name}: {entry['env']} {entry['env_kwargs']}", fontsize=10)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def load_summary(workdir: str) -> dict | None:
  return store.read_json(os.path.join(os.path.abspath(workdir), "p3", SUMMARY))
