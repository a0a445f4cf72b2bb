"""The teacher stage: train DQN teachers for every (seed, task) in segments, record their histories.

`run_teachers(config, workdir)` writes under `workdir/teachers/`:

  config.json        the config it ran
  checkpoints/       orbax CheckpointManager, step = number of finished segments (resume point)
  histories/         the history store (cl_limits.histories.store), sealed by its manifest when done
  tb/seed_<s>/       TensorBoard scalars per seed (mean over the task group), tb/all/ over seeds
  curves.npz         binned learning curves [seeds, tasks, bins] against learner env steps; with
                     `teacher.eval_episodes` > 0 also the greedy policy's return after every segment
                     (`greedy_returns` [seeds, tasks, segments] at `greedy_env_steps`)
  summary.json       final greedy returns per (seed, task), optimal returns where the env has an oracle
  teacher_curves.png the learning curves, x axis = environment steps

A run killed at any point resumes from its last checkpoint when the same command runs again and ends
with the same histories as an uninterrupted run; a finished run is not redone.
"""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cl_limits import envs as envs_lib
from cl_limits import sharding
from cl_limits.histories import store
from cl_limits.histories.history import keep_every, window_sums
from cl_limits.teachers import dqn


def validate_config(config) -> None:
  """Checks the parts of a config the teacher stage reads; ValueError names the field."""
  if config.env.name not in envs_lib.names():
    raise ValueError(f"env.name: unknown env {config.env.name!r}; known: {', '.join(envs_lib.names())}")
  t = config.teacher
  if int(t.num_seeds) < 1:
    raise ValueError(f"teacher.num_seeds: must be >= 1 (got {t.num_seeds})")
  if config.tasks.teacher_split not in ("train", "heldout", "all"):
    raise ValueError(f"tasks.teacher_split: must be 'train', 'heldout' or 'all' "
                     f"(got {config.tasks.teacher_split!r})")
  if int(config.tasks.max_tasks) < 0:
    raise ValueError(f"tasks.max_tasks: must be >= 0, 0 meaning all (got {config.tasks.max_tasks})")
  if int(t.log_every) < 1:
    raise ValueError(f"teacher.log_every: must be >= 1 (got {t.log_every})")
  if int(t.get("record_gap", 1)) < 1:
    raise ValueError(f"teacher.record_gap: must be >= 1, 1 recording every episode (got {t.record_gap})")
  if int(t.eval_episodes) < 0:
    raise ValueError(f"teacher.eval_episodes: must be >= 0 (got {t.eval_episodes})")
  dqn.validate(t.dqn)
  try:
    env = envs_lib.make(config.env.name, **config.env.kwargs.to_dict())
  except ValueError as e:
    raise ValueError(f"env.kwargs: {e}") from None
  dqn.validate(t.dqn, env)


def teacher_tasks(config, env):
  """(task params with a leading task axis [K], task ids [K] into env.all_tasks())."""
  train, held = envs_lib.split_ids(env, config.tasks.split_seed, config.tasks.heldout_fraction)
  split = config.tasks.teacher_split
  ids = {"train": train, "heldout": held, "all": np.arange(envs_lib.num_tasks(env))}[split]
  if int(config.tasks.max_tasks) > 0:
    ids = ids[:int(config.tasks.max_tasks)]
  return envs_lib.tasks_at(env, ids), np.asarray(ids)


def seed_task_keys(seed: int, num_seeds: int, num_tasks: int):
  """Keys [seeds, tasks]: seed s, task k -> fold_in(fold_in(key(seed), s), k)."""
  base = jax.random.key(seed)
  return jax.vmap(lambda s: jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(base, s), k))(
      jnp.arange(num_tasks)))(jnp.arange(num_seeds))


def _to_jsonable(x):
  return np.asarray(x).tolist()


class _Board:
  """TensorBoard writers: one run directory per seed, one for the mean over seeds."""

  def __init__(self, directory, num_seeds, config):
    from tensorboardX import SummaryWriter  # noqa: PLC0415
    self.writers = [SummaryWriter(os.path.join(directory, f"seed_{s}")) for s in range(num_seeds)]
    self.all = SummaryWriter(os.path.join(directory, "all"))
    self.all.add_text("config", "```\n" + str(config) + "\n```", 0)

  def segment(self, ep_ret, step0, num_envs, log_every, loss, q_mean, eps):
    """ep_ret [S, K, E, T] (nan where no episode ended); env step of stream step t = step0 + (t+1)*E."""
    s_, k_, e_, t_ = ep_ret.shape
    steps = step0 + (np.arange(t_) + 1) * num_envs
    bins = steps // log_every
    per_seed = []
    for b in np.unique(bins):
      sel = ep_ret[:, :, :, bins == b].reshape(s_, -1)
      x = int((b + 1) * log_every)
      with np.errstate(invalid="ignore"), np.errstate(all="ignore"):
        means = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in sel])
      for s in range(s_):
        if np.isfinite(means[s]):
          self.writers[s].add_scalar("teacher/return", means[s], x)
      if np.isfinite(means).any():
        self.all.add_scalar("teacher/return", np.nanmean(means), x)
      per_seed.append(means)
    x_end = int(steps[-1])
    for s in range(s_):
      with np.errstate(all="ignore"):
        self.writers[s].add_scalar("teacher/loss", float(np.nanmean(loss[s])), x_end)
        self.writers[s].add_scalar("teacher/q_mean", float(np.nanmean(q_mean[s])), x_end)
      self.writers[s].add_scalar("teacher/epsilon", eps, x_end)
    return per_seed

  def close(self):
    for w in self.writers + [self.all]:
      w.close()


_SHARED_SECTIONS = ("seed", "env", "tasks", "teacher")


def teachers_dir(config, workdir: str) -> str:
  """The teacher stage's directory: workdir/teachers, or <teachers_from>/teachers when the config reuses
  the teachers of another run (the capacity sweep's jobs share the main job's)."""
  src = config.get("teachers_from") or workdir
  return os.path.join(os.path.abspath(src), "teachers")


def _check_reused(config, out_dir: str) -> None:
  """The reused teachers must have been trained with this config's seed, env, tasks and teacher."""
  path = os.path.join(out_dir, "config.json")
  if not os.path.exists(os.path.join(out_dir, "summary.json")) or not os.path.exists(path):
    raise FileNotFoundError(f"teachers_from={config.teachers_from!r}: no finished teacher stage in {out_dir} "
                            "(run the main job there first)")
  with open(path) as f:
    stored = json.load(f)
  mine = json.loads(config.to_json_best_effort())
  for k in _SHARED_SECTIONS:
    if stored.get(k) != mine.get(k):
      raise ValueError(f"teachers_from={config.teachers_from!r}: its teachers were trained with a different "
                       f"`{k}` section than this config's; point it at a run of the same base config")


def run_teachers(config, workdir: str, log=print) -> dict:
  """Trains (or resumes, or skips) the teacher stage. Returns the paths it wrote."""
  import orbax.checkpoint as ocp  # noqa: PLC0415

  validate_config(config)
  env = envs_lib.make(config.env.name, **config.env.kwargs.to_dict())
  tasks, task_ids = teacher_tasks(config, env)
  cfg = config.teacher.dqn
  num_seeds, num_tasks = int(config.teacher.num_seeds), len(task_ids)
  record_gap = int(config.teacher.get("record_gap", 1))
  out_dir = teachers_dir(config, workdir)
  if config.get("teachers_from"):
    _check_reused(config, out_dir)
  hist_dir = os.path.join(out_dir, "histories")
  paths = {"dir": out_dir, "histories": hist_dir, "summary": os.path.join(out_dir, "summary.json")}
  if store.is_complete(hist_dir) and os.path.exists(paths["summary"]):
    store.read_manifest(hist_dir)
    log(f"[teachers] already complete: {hist_dir}")
    return paths
  os.makedirs(out_dir, exist_ok=True)
  store.atomic_write_json(os.path.join(out_dir, "config.json"), json.loads(config.to_json_best_effort()))

  teacher = dqn.make_teacher(cfg, env)
  mesh = sharding.seed_mesh(num_seeds)
  keys = sharding.shard_seeds(seed_task_keys(config.seed, num_seeds, num_tasks), mesh)
  tasks = sharding.replicate(tasks, mesh)
  per_task = lambda f: jax.vmap(jax.vmap(f, in_axes=(0, 0)), in_axes=(0, None))
  init_fn = jax.jit(per_task(teacher.init))
  seg_fn = jax.jit(per_task(teacher.segment))

  state = init_fn(keys, tasks)
  greedy_fn = _greedy_fn(config, env, teacher, tasks, num_seeds, num_tasks)
  options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
  mngr = ocp.CheckpointManager(os.path.join(out_dir, "checkpoints"), options=options)
  start = mngr.latest_step() or 0
  n_seg = teacher.num_segments
  if start:
    state = mngr.restore(start, args=ocp.args.StandardRestore(state))
    log(f"[teachers] resuming from segment {start}/{n_seg} ({start * cfg.segment_steps} env steps)")
  if start > n_seg:
    raise ValueError(f"checkpoint in {out_dir} is at segment {start}, past this config's {n_seg}: "
                     "the run directory belongs to a different config")

  meta = {"env": config.env.name, "env_kwargs": config.env.kwargs.to_dict(),
          "task_ids": _to_jsonable(task_ids),
          "tasks": {jax.tree_util.keystr(p): _to_jsonable(v)
                    for p, v in jax.tree_util.tree_flatten_with_path(jax.device_get(tasks))[0]},
          "num_seeds": num_seeds, "seed": int(config.seed), "streams_per_learner": int(cfg.num_envs),
          "env_steps_per_learner": int(cfg.total_steps), "axes": ["seed", "task", "stream", "time"],
          "teacher_config": cfg.to_dict(), "obs_dtype": str(envs_lib.obs_spec(env)[1]),
          "record_gap": record_gap}
  writer = store.HistoryWriter(hist_dir, meta, time_axis=3)
  curve_dir = os.path.join(out_dir, "curve_chunks")
  os.makedirs(curve_dir, exist_ok=True)
  board = _Board(os.path.join(out_dir, "tb"), num_seeds, config)
  log(f"[teachers] {config.env.name}: {num_seeds} seeds x {num_tasks} tasks x {cfg.num_envs} streams, "
      f"{cfg.total_steps} env steps each, {n_seg} segments"
      + (f", seeds sharded over {mesh.devices.size} devices" if mesh is not None else ""))
  t_start, t_compiled, recent = time.time(), None, float("nan")
  for seg in range(start, n_seg):
    t0 = time.time()
    state, out = seg_fn(state, tasks)
    out = jax.device_get(out)
    writer.write_chunk(seg, keep_every(out.history, record_gap))
    step0 = seg * int(cfg.segment_steps)
    # The greedy policy after this segment; the last segment's uses the final evaluation's keys (salt 0),
    # so it is summary.json's greedy_return.
    greedy = None if greedy_fn is None else greedy_fn(state.params, 0 if seg + 1 == n_seg else seg + 1)
    _write_curve_chunk(curve_dir, seg, np.asarray(out.episode_return), step0, int(cfg.num_envs),
                       int(config.teacher.log_every), int(cfg.total_steps), greedy)
    eps = float(teacher.epsilon((seg + 1) * int(cfg.segment_steps)))
    per_seed = board.segment(np.asarray(out.episode_return), step0, int(cfg.num_envs),
                             int(config.teacher.log_every), np.asarray(out.loss), np.asarray(out.q_mean), eps)
    mngr.save(seg + 1, args=ocp.args.StandardSave(state), force=seg + 1 == n_seg)
    if per_seed and np.isfinite(per_seed[-1]).any():
      recent = float(np.nanmean(per_seed[-1]))
    if t_compiled is None:
      t_compiled = time.time()
      speed = ""
    else:
      rate = (seg + 1 - start - 1) * cfg.segment_steps * num_seeds * num_tasks / (time.time() - t_compiled)
      eta = (n_seg - seg - 1) * cfg.segment_steps * num_seeds * num_tasks / max(rate, 1e-9)
      speed = f", {rate:,.0f} env steps/s, eta {eta:.0f}s"
    log(f"[teachers] segment {seg + 1}/{n_seg}: {(seg + 1) * cfg.segment_steps} env steps, "
        f"return {recent:.2f}, epsilon {eps:.3f} ({time.time() - t0:.1f}s{speed})")
  mngr.wait_until_finished()
  mngr.close()
  board.close()
  writer.finalize(n_seg)
  _summarize(config, env, teacher, state, tasks, task_ids, out_dir, paths, greedy_fn)
  log(f"[teachers] done in {time.time() - t_start:.0f}s: {hist_dir}")
  return paths


def _curve_bins(ep_ret, step0, num_envs, log_every, total):
  """(sums, counts) [S, K, bins] of the episodes that ended in one segment, binned by learner env step:
  stream step t of the segment is learner step step0 + (t + 1) * num_envs."""
  s_, k_, e_, t_ = ep_ret.shape
  steps = step0 + (np.arange(t_) + 1) * num_envs
  return window_sums(ep_ret.reshape(s_, k_, e_ * t_), np.tile(steps, e_), log_every, total // log_every,
                     clip=True)


def _write_curve_chunk(directory, seg, ep_ret, step0, num_envs, log_every, total, greedy=None):
  """The segment's learning-curve bins and, when given, the greedy policy's return [S, K] after it, written
  before its checkpoint so a resumed run has them all (the curves cannot come from the history store when
  it keeps only every record_gap-th episode)."""
  import io  # noqa: PLC0415
  sums, counts = _curve_bins(ep_ret, step0, num_envs, log_every, total)
  arrays = dict(sums=sums, counts=counts)
  if greedy is not None:
    arrays["greedy"] = np.asarray(greedy, np.float64)
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  store.atomic_write_bytes(os.path.join(directory, f"curve_{seg:05d}.npz"), buf.getvalue())


def _greedy_fn(config, env, teacher, tasks, num_seeds, num_tasks):
  """`fn(params, salt) -> [S, K]` mean greedy return over `teacher.eval_episodes` episodes (salt 0: the
  final evaluation's keys); None when eval_episodes is 0."""
  n_eval = int(config.teacher.eval_episodes)
  if n_eval <= 0:
    return None
  cap = getattr(env, "episode_len", None) or int(np.max(np.asarray(jax.device_get(
      tasks.max_steps_in_episode))))
  ev = jax.jit(jax.vmap(jax.vmap(
      lambda p, ep, k: dqn.greedy_returns(env, teacher.q_fn, p, ep, k, n_eval, n_eval * cap),
      in_axes=(0, 0, 0)), in_axes=(0, None, 0)))

  def fn(params, salt: int = 0):
    key = jax.random.key(config.seed + 1)
    if salt:
      key = jax.random.fold_in(key, salt)
    keys = jax.random.split(key, num_seeds * num_tasks).reshape(num_seeds, num_tasks)
    return np.asarray(ev(params, tasks, keys)).mean(-1)
  return fn


def _summarize(config, env, teacher, state, tasks, task_ids, out_dir, paths, greedy_fn=None):
  """Learning curves from the per-segment curve chunks, final greedy returns, a figure."""
  log_every = int(config.teacher.log_every)
  total = int(config.teacher.dqn.total_steps)
  n_bins = total // log_every
  n_seg = total // int(config.teacher.dqn.segment_steps)
  num_seeds, num_tasks = int(config.teacher.num_seeds), len(task_ids)
  sums, counts = np.zeros((num_seeds, num_tasks, n_bins)), np.zeros((num_seeds, num_tasks, n_bins))
  greedy = []
  for seg in range(n_seg):
    path = os.path.join(out_dir, "curve_chunks", f"curve_{seg:05d}.npz")
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path} is missing: this teacher run was started by an older version that "
                              "did not write curve chunks; run it again in a new workdir")
    with np.load(path) as z:
      sums += z["sums"]
      counts += z["counts"]
      if "greedy" in z.files:
        greedy.append(z["greedy"])
  with np.errstate(invalid="ignore"):
    curves = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
  bin_steps = (np.arange(n_bins) + 1) * log_every
  summary = {"env": config.env.name, "task_ids": _to_jsonable(task_ids)}
  extra = {}
  if len(greedy) == n_seg:     # every segment's greedy return; the last one is the final evaluation
    extra["greedy_returns"] = np.stack(greedy, -1)
    extra["greedy_env_steps"] = (np.arange(n_seg) + 1) * int(config.teacher.dqn.segment_steps)
    summary["greedy_return"] = greedy[-1].tolist()
  else:                        # chunks written without greedy returns (eval_episodes 0, or older runs)
    greedy_fn = greedy_fn or _greedy_fn(config, env, teacher, tasks, num_seeds, num_tasks)
    if greedy_fn is not None:
      summary["greedy_return"] = greedy_fn(state.params).tolist()
  if hasattr(env, "optimal_return"):
    summary["optimal_return"] = np.asarray(jax.vmap(env.optimal_return)(tasks)).tolist()
  np.savez(os.path.join(out_dir, "curves.npz"), returns=curves, env_steps=bin_steps,
           task_ids=np.asarray(task_ids), **extra)
  store.atomic_write_json(paths["summary"], summary)
  paths["figure"] = _plot(curves, bin_steps, summary, config, os.path.join(out_dir, "teacher_curves.png"))


def _plot(curves, bin_steps, summary, config, path):
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  fig, ax = plt.subplots(figsize=(6, 4))
  with np.errstate(all="ignore"):
    per_seed = np.nanmean(curves, axis=1)
  for s, c in enumerate(per_seed):
    ax.plot(bin_steps, c, alpha=0.6, lw=1, label=f"seed {s}" if s < 8 else None)
  with np.errstate(all="ignore"):
    ax.plot(bin_steps, np.nanmean(per_seed, 0), color="k", lw=2, label="mean over seeds")
  if "optimal_return" in summary:
    ax.axhline(float(np.mean(summary["optimal_return"])), color="g", ls="--", label="optimal")
  ax.set_xlabel("environment steps (per learner, all streams)")
  ax.set_ylabel("episode return (mean over tasks)")
  ax.set_title(f"DQN teachers on {config.env.name}")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def load_final_state(config, workdir: str):
  """The teachers' final TeacherState [seeds, tasks, ...] from a finished teacher stage's checkpoints."""
  import orbax.checkpoint as ocp  # noqa: PLC0415
  env = envs_lib.make(config.env.name, **config.env.kwargs.to_dict())
  tasks, task_ids = teacher_tasks(config, env)
  teacher = dqn.make_teacher(config.teacher.dqn, env)
  keys = seed_task_keys(config.seed, int(config.teacher.num_seeds), len(task_ids))
  per_task = lambda f: jax.vmap(jax.vmap(f, in_axes=(0, 0)), in_axes=(0, None))
  abstract = jax.eval_shape(per_task(teacher.init), keys, tasks)
  abstract = sharding.restore_target(abstract, int(config.teacher.num_seeds))
  directory = os.path.join(teachers_dir(config, workdir), "checkpoints")
  mngr = ocp.CheckpointManager(directory)
  step = mngr.latest_step()
  if step != teacher.num_segments:
    raise FileNotFoundError(f"no finished teacher checkpoint in {directory} (latest step {step}, "
                            f"need {teacher.num_segments})")
  state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  mngr.close()
  return state


def load_config_dict(path: str) -> ml_collections.ConfigDict:
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))
