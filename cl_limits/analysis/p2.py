"""P2, beyond the ceiling: imitators of truncated histories rolled out far past their data.

For every arm named in `experiments.p2.arms` (AD on the teacher histories cut at a fraction of training,
`portion="first"`), `run_p2(config, workdir)`:

  1. computes the arm's *ceiling*: the best moving-average return anywhere in the data it was trained on
     (cl_limits/analysis/ceiling.py, over `experiments.p2.ceiling_window` of the teacher's episodes,
     i.e. ceil(window / gap) kept episodes);
  2. rolls its frozen imitators (every seed) out on held-out tasks from an empty context, the context
     carried across episodes, for `horizon_factor` x the environment steps of one truncated history
     (the teacher's experience up to the cut, per learner);
  3. compares the imitator's late return (last `late_fraction` of the rollout's episodes) with the ceiling
     (IQM of late - ceiling with rliable's stratified bootstrap CI, and the fraction of runs above it), and
     with the teachers continuing past the cut on the same environment-step axis (their return at the end
     of their full run, which the imitator never saw);

and writes `workdir/p2/{returns.npz, summary.json, curves.png}` plus TensorBoard curves under
`workdir/tb/p2` (teacher, imitator and ceiling under one tag group per arm, per seed and mean).
"""
from __future__ import annotations

import os
import time

import jax
import numpy as np

from cl_limits import comma_list
from cl_limits import envs as envs_lib
from cl_limits.analysis import ceiling as ceiling_lib
from cl_limits.analysis import stats
from cl_limits.histories import datasets, history as history_lib, store
from cl_limits.imitation import runner as imitation_runner
from cl_limits.rollouts import rollout as rollout_lib

SUMMARY = "summary.json"


def p2_arms(config) -> list[str]:
  return comma_list(config.experiments.p2.arms)


def validate_config(config) -> None:
  p2 = config.experiments.p2
  names = imitation_runner.arm_names(config)
  for a in p2_arms(config):
    if a not in names:
      raise ValueError(f"experiments.p2.arms: {a!r} is not one of the imitation arms {names}")
    arm = datasets.resolve_arm(config.imitation.arms[a])
    if arm["data"] != "teacher" or arm["portion"] != "first":
      raise ValueError(f"experiments.p2.arms: arm {a!r} must train on teacher histories truncated at a "
                       f"fraction of training (data='teacher', portion='first'), got {arm['data']!r}, "
                       f"{arm['portion']!r}")
  if float(p2.horizon_factor) <= 0:
    raise ValueError(f"experiments.p2.horizon_factor: must be > 0 (got {p2.horizon_factor})")
  if not 0.0 < float(p2.late_fraction) <= 1.0:
    raise ValueError(f"experiments.p2.late_fraction: must be in (0, 1] (got {p2.late_fraction})")
  if int(p2.ceiling_window) < 1 or int(p2.num_tasks) < 0:
    raise ValueError(f"experiments.p2: ceiling_window must be >= 1 and num_tasks >= 0 (got "
                     f"{p2.ceiling_window}, {p2.num_tasks})")


def task_optimum(env, task_ids) -> np.ndarray | None:
  """Each task's optimal episode return [K] where the env has an oracle (`env.optimal_return`) and every
  optimum is positive; else None (the comparisons then stay in raw returns only).

  Tasks differ in what they allow (a DarkRoom goal returns 20 minus its distance from the start), and the
  ceiling comes from the teachers' tasks while the late return comes from held-out ones, so P2 and the
  hybrid also compare both as fractions of each task's optimum."""
  if not hasattr(env, "optimal_return") or getattr(env, "start", "center") != "center":
    return None        # no oracle, or a random start cell: no single optimum per task
  ids = np.asarray(task_ids)
  opt = np.asarray(jax.vmap(env.optimal_return)(envs_lib.tasks_at(env, ids)), np.float64)
  return opt if opt.size and (opt > 0).all() else None


def teacher_optimum(env, manifest) -> np.ndarray | None:
  """`task_optimum` of the teachers' tasks, or None for joined stores (`imitation.sources`) or another env."""
  if "sources" in manifest or manifest.get("env") != env.name:
    return None
  return task_optimum(env, manifest["task_ids"])


def arm_data_curves(history, manifest, arm: dict, window: int, optimum=None) -> dict:
  """The arm's ceiling, the cut, and the teachers' full population curve on the learner-step axis.

  optimum: [teacher tasks] optimal returns (`teacher_optimum`); with it the result also holds the ceiling
  and the teachers' final return as fractions of each history's task optimum ("ceiling_norm",
  "teacher_final_norm") and the tasks' mean optimum ("optimal_mean")."""
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  episode = np.asarray(history.episode)
  reward = np.asarray(history.reward)
  streams = int(manifest["streams_per_learner"])
  keep = datasets.keep_mask(done, episode, arm["portion"], float(arm["fraction"]), int(arm["gap"]),
                            int(arm["streams"]))
  rets, _ = ceiling_lib.episode_matrix(reward, done, keep)
  # `window` counts the teacher's episodes; with gap g the data keeps one episode in g of a stream.
  kept_window = max(1, -(-int(window) // int(arm["gap"])))
  ceil, ceil_idx = ceiling_lib.ceiling(rets, kept_window)
  # The teacher's experience up to the cut (gap does not shorten it): last kept episode end per stream.
  cut_keep = datasets.keep_mask(done, episode, arm["portion"], float(arm["fraction"]), 1, int(arm["streams"]))
  t = np.arange(done.shape[-1]) + 1
  cut_stream_steps = int(np.max(np.where(cut_keep & done, t, 0)))
  used = done.shape[2] if not int(arm["streams"]) else int(arm["streams"])
  full, ends = ceiling_lib.episode_matrix(reward[:, :, :used], done[:, :, :used])
  teacher_curve = ceiling_lib.population_curve(full)
  # Episode i of a stream ends at stream step ends[., i]; a learner with `streams` streams has then made
  # `streams` times as many environment steps (every stream steps in lockstep).
  teacher_x = np.nanmax(np.where(ends > 0, ends, np.nan), axis=0) * streams
  final_window = min(window, teacher_curve.size)
  out = {"ceiling": ceil, "ceiling_episode": ceil_idx, "ceiling_kept_window": kept_window, "cut_stream_steps": cut_stream_steps,
         "cut_learner_steps": cut_stream_steps * streams, "teacher_curve": teacher_curve,
         "teacher_x": teacher_x, "teacher_final": float(np.mean(teacher_curve[-final_window:])),
         "data_curve": ceiling_lib.population_curve(rets)}
  if optimum is not None:
    optimum = np.asarray(optimum, np.float64)
    if optimum.shape != (reward.shape[1],):
      raise ValueError(f"arm_data_curves: {optimum.shape[0]} task optima for {reward.shape[1]} teacher tasks")
    per_row = lambda n: np.broadcast_to(optimum[None, :, None], (reward.shape[0], reward.shape[1], n)).reshape(-1, 1)
    out["ceiling_norm"] = ceiling_lib.ceiling(rets / per_row(reward.shape[2]), kept_window)[0]
    full_norm = ceiling_lib.population_curve(full / per_row(used))
    out["teacher_final_norm"] = float(np.mean(full_norm[-final_window:]))
    out["optimal_mean"] = float(optimum.mean())
  return out


def run_p2(config, workdir: str, log=print) -> dict | None:
  arms_p2 = p2_arms(config)
  if not arms_p2:
    return None
  env = envs_lib.make(config.env.name, **config.env.kwargs.to_dict())
  imitation_runner.validate_config(config, env)
  validate_config(config)
  p2 = config.experiments.p2
  paths = store.stage_paths(workdir, "p2", returns="returns.npz", figure="curves.png")
  if store.stage_complete(paths, "p2", log):
    return paths
  out_dir = paths["dir"]
  ep_len = imitation_runner.episode_length(env)
  history, manifest = imitation_runner.load_teacher_histories(config, workdir)
  model, params, arms, num_seeds = imitation_runner.load_final(config, workdir)
  tasks, task_ids = imitation_runner.heldout_tasks(config, env, int(p2.num_tasks))
  num_tasks = len(task_ids)
  reps = int(p2.bootstrap_reps)
  t_opt = teacher_optimum(env, manifest)
  e_opt = task_optimum(env, task_ids) if t_opt is not None else None
  summary = {"protocol": {"actions": rollout_lib.describe_actions(config.evaluation),
                          "context": "carried across episodes, empty at the start",
                          "horizon": f"{p2.horizon_factor:g} x the environment steps of one truncated "
                                     "history", "late": f"last {float(p2.late_fraction):.0%} of episodes",
                          "ceiling_window_episodes": int(p2.ceiling_window),
                          "ci": f"IQM, rliable stratified bootstrap 95% CI ({reps} resamples)"},
             "task_ids": np.asarray(task_ids).tolist(), "arms": {}}
  arrays = {}
  os.makedirs(out_dir, exist_ok=True)
  from tensorboardX import SummaryWriter  # noqa: PLC0415
  tb_dir = os.path.join(os.path.abspath(workdir), "tb", "p2")
  with SummaryWriter(os.path.join(tb_dir, "all")) as w:
    w.add_text("config", "```\n" + str(config) + "\n```", 0)
  for name in arms_p2:
    arm = datasets.resolve_arm(config.imitation.arms[name])
    d = arm_data_curves(history, manifest, arm, int(p2.ceiling_window), optimum=t_opt)
    streams = int(manifest["streams_per_learner"])
    horizon = int(round(float(p2.horizon_factor) * d["cut_learner_steps"]))
    if ep_len:
      horizon = max(ep_len, horizon // ep_len * ep_len)
    i = arms.index(name)
    arm_params = imitation_runner.arm_params(params, arms, name, num_seeds)
    fn = rollout_lib.make_batched_rollout(model, env, horizon, rollout_lib.episodes_for(env, horizon),
                                          **rollout_lib.actions_from(config.evaluation))
    keys = jax.random.split(jax.random.fold_in(jax.random.key(int(config.seed) + 13), i),
                            num_seeds * num_tasks).reshape(num_seeds, num_tasks)
    log(f"[p2] {name}: ceiling {d['ceiling']:.2f} (data cut at {d['cut_learner_steps']:,} learner steps); "
        f"{num_seeds} imitators x {num_tasks} held-out tasks for {horizon:,} steps each")
    t0 = time.time()
    res = jax.device_get(fn(arm_params, tasks, keys))
    n_ep = horizon // ep_len if ep_len else int(np.min(np.asarray(res.num_episodes)))
    rets = np.asarray(res.episode_return)[..., :n_ep]                    # [S, K, E]
    ends = np.asarray(res.episode_end)[..., :n_ep]
    log(f"[p2] {name}: {num_seeds * num_tasks * horizon:,} env steps in {time.time() - t0:.1f}s")
    n_late = max(1, int(round(float(p2.late_fraction) * n_ep)))
    late = stats.episode_window_mean(rets, n_ep - n_late, n_ep)          # [S, K]
    early = stats.episode_window_mean(rets, 0, min(3, n_ep))
    ex = ceiling_lib.exceed(late, d["ceiling"], reps=reps)
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
    greedy = teacher_greedy_at_cut(config, workdir, manifest, d["cut_learner_steps"], t_opt)
    if greedy is not None:
      entry["teacher_greedy_at_cut"] = greedy
    if e_opt is not None:
      entry["normalised"] = normalised_entry(late, e_opt, d, reps, (greedy or {}).get("fraction"))
    summary["arms"][name] = entry
    arrays[f"{name}/episode_return"], arrays[f"{name}/episode_end"] = rets, ends
    arrays[f"{name}/teacher_curve"], arrays[f"{name}/teacher_x"] = d["teacher_curve"], d["teacher_x"]
    _tensorboard(SummaryWriter, tb_dir, name, rets, ends, d, num_seeds)
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
  np.savez(paths["returns"], **arrays)
  plot(summary, arrays, paths["figure"], title=f"P2 on held-out {config.env.name} tasks")
  store.atomic_write_json(paths["summary"], summary)
  return paths


def teacher_greedy_at_cut(config, workdir: str, manifest, cut_learner_steps: int, optimum=None) -> dict | None:
  """The teachers' *greedy* policy at the data's cut: the mean over learners of its return after the last
  teacher segment that ended at or before the cut (`greedy_returns` in teachers/curves.npz), raw and, with
  `optimum` [tasks], as a fraction of each task's optimum. The ceiling is the return of the teachers'
  epsilon-greedy behaviour; this is what their networks could do at the same point. None when the teacher
  run recorded no greedy curve or the histories come from several stores."""
  from cl_limits.teachers.runner import teachers_dir  # noqa: PLC0415
  path = os.path.join(teachers_dir(config, workdir), "curves.npz")
  if "sources" in manifest or not os.path.exists(path):
    return None
  with np.load(path) as z:
    if "greedy_returns" not in z.files:
      return None
    greedy, steps = np.asarray(z["greedy_returns"], np.float64), np.asarray(z["greedy_env_steps"])
  before = np.flatnonzero(steps <= int(cut_learner_steps))
  if not before.size or greedy.shape[1] != len(manifest["task_ids"]):
    return None
  g = greedy[..., before[-1]]                                            # [S, K]
  out = {"env_steps": int(steps[before[-1]]), "return": float(g.mean())}
  if optimum is not None:
    out["fraction"] = float((g / np.asarray(optimum, np.float64)[None, :]).mean())
  return out


def normalised_entry(late, optimum, d, reps: int, greedy_fraction=None) -> dict:
  """late [S, K] returns on tasks with optima [K], compared with the data's ceiling, the teachers' final
  return and, when given, their greedy policy at the cut (`teacher_greedy_at_cut`'s "fraction"), all as
  fractions of each task's optimal return (`arm_data_curves` with `optimum`)."""
  late_n = np.asarray(late, np.float64) / np.asarray(optimum, np.float64)[None, :]
  out = {"optimal_mean_eval": float(np.mean(optimum)), "optimal_mean_data": d["optimal_mean"],
         "ceiling": d["ceiling_norm"], "teacher_final": d["teacher_final_norm"],
         "teacher_final_minus_ceiling": d["teacher_final_norm"] - d["ceiling_norm"],
         "late": list(stats.interval(late_n, reps)),
         "late_minus_ceiling": list(stats.interval(late_n - d["ceiling_norm"], reps)),
         "late_minus_teacher_final": list(stats.interval(late_n - d["teacher_final_norm"], reps))}
  if greedy_fraction is not None:
    out["teacher_greedy_at_cut"] = float(greedy_fraction)
    out["late_minus_teacher_greedy_at_cut"] = list(stats.interval(late_n - greedy_fraction, reps))
  return out


def _tensorboard(writer_cls, tb_dir, name, rets, ends, d, num_seeds, max_points: int = 500):
  """p2/<arm>/{teacher,imitator,ceiling} against environment steps; imitator per seed and mean."""
  def thin(n):
    return np.unique(np.linspace(0, n - 1, min(n, max_points)).astype(int))
  with writer_cls(os.path.join(tb_dir, "all")) as w:
    for j in thin(d["teacher_curve"].size):
      if np.isfinite(d["teacher_x"][j]):
        w.add_scalar(f"p2/{name}/teacher", float(d["teacher_curve"][j]), int(d["teacher_x"][j]))
    mean_curve = np.nanmean(rets, axis=(0, 1))
    x = np.nanmax(ends, axis=(0, 1))
    for j in thin(mean_curve.size):
      w.add_scalar(f"p2/{name}/imitator", float(mean_curve[j]), int(x[j]))
      w.add_scalar(f"p2/{name}/ceiling", float(d["ceiling"]), int(x[j]))
  for s in range(num_seeds):
    with writer_cls(os.path.join(tb_dir, f"seed_{s}")) as w:
      c = np.nanmean(rets[s], axis=0)
      xs = np.nanmax(ends[s], axis=0)
      for j in thin(c.size):
        w.add_scalar(f"p2/{name}/imitator", float(c[j]), int(xs[j]))


def smooth(x, window: int):
  return history_lib.moving_average(x, window)


def plot(summary, arrays, path, title=""):
  """One panel per P2 arm: teachers' full curve, the cut, the ceiling, and the imitators' rollout."""
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  names = list(summary["arms"])
  fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
  for ax, name in zip(axes[0], names):
    e = summary["arms"][name]
    w = max(1, int(summary["protocol"]["ceiling_window_episodes"]))
    tx, tc = arrays[f"{name}/teacher_x"], arrays[f"{name}/teacher_curve"]
    ax.plot(tx, smooth(tc, w), color="k", lw=1.5, label="teachers (full run)")
    rets, ends = arrays[f"{name}/episode_return"], arrays[f"{name}/episode_end"]
    x = np.nanmax(ends, axis=(0, 1))
    per_seed = np.stack([smooth(np.nanmean(r, axis=0), w) for r in rets])     # [S, E]
    ax.plot(x, per_seed.mean(0), color="C0", lw=2, label="frozen imitator (AD on truncated data)")
    if per_seed.shape[0] > 1:
      ax.fill_between(x, per_seed.min(0), per_seed.max(0), color="C0", alpha=0.2, label="seed range")
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
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def load_summary(workdir: str) -> dict | None:
  return store.read_json(os.path.join(os.path.abspath(workdir), "p2", SUMMARY))
