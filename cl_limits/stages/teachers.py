"""The teacher stage: DQN teachers for every (seed, task), trained in segments, their histories recorded.

Writes under `<workdir>/teachers/`:

  checkpoints/       orbax CheckpointManager, step = finished segments (the resume point)
  histories/         the history store (cl_limits.histories.store), sealed by its manifest when done
  curve_chunks/      per segment: the learning-curve bins and the greedy policy's return after it
  tb/seed_<s>/, tb/all/   TensorBoard: teacher/return (per logging window, on the environment-step axis),
                     teacher/greedy_return, loss, q_mean, epsilon
  curves.npz         returns [seeds, tasks, bins] at env_steps; greedy_returns [seeds, tasks, segments]
  summary.json       final greedy returns per (seed, task), optimal returns where the env has an oracle
  teacher_curves.png

A killed run resumes from its last checkpoint and ends with the same histories as an uninterrupted one.
"""
from __future__ import annotations

import os
import time

import jax
import numpy as np

from cl_limits import envs as envs_lib
from cl_limits import sharding
from cl_limits.histories import store
from cl_limits.histories.history import keep_every
from cl_limits.stages import artifacts, common, layout, outputs
from cl_limits.stages.base import Stage, check, positive_int, wrap
from cl_limits.teachers import dqn, population


def validate(config) -> None:
  env = common.env_of(config)
  positive_int(config, "teacher.num_seeds")
  positive_int(config, "teacher.log_every")
  positive_int(config, "teacher.record_gap")
  positive_int(config, "teacher.eval_episodes", minimum=0)
  if "learners_per_task" in config.teacher:
    positive_int(config, "teacher.learners_per_task")
  common.validate_tasks(config)
  wrap("teacher", dqn.validate, config.teacher.dqn, env)
  _, ids = common.teacher_tasks(config, env)
  check(len(ids) > 0, "tasks", "select no teacher task", config.tasks.to_dict())


def run(step, log=print) -> None:
  import orbax.checkpoint as ocp  # noqa: PLC0415
  config, workdir = step.config, step.workdir
  env, tasks, task_ids, teacher = artifacts.teacher_setup(config)
  cfg = config.teacher.dqn
  num_seeds, num_tasks = int(config.teacher.num_seeds), len(task_ids)
  k = common.learners_per_task(config)
  record_gap, log_every = int(config.teacher.record_gap), int(config.teacher.log_every)
  out_dir = layout.teachers_dir(workdir)
  mesh = sharding.seed_mesh(num_seeds)
  # k independent learners per task: the task axis holds task t's learners at t * k ... t * k + k - 1, and
  # every output is read back per task, the learners' streams side by side (`population.merge_learners`).
  learners = population.repeat_tasks(tasks, k)
  keys = sharding.shard_seeds(population.seed_task_keys(config.seed, num_seeds, num_tasks * k), mesh)
  learners = sharding.replicate(learners, mesh)
  init_fn, seg_fn = jax.jit(population.per_task(teacher.init)), jax.jit(population.per_task(teacher.segment))
  state = init_fn(keys, learners)
  n_eval = int(config.teacher.eval_episodes)
  greedy_fn = (population.per_task_mean(population.make_greedy_eval(
      env, teacher.q_fn, learners, num_seeds, num_tasks * k, n_eval, int(config.seed)), k) if n_eval else None)
  mngr = ocp.CheckpointManager(layout.path(out_dir, "checkpoints"),
                               options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
  start, n_seg = mngr.latest_step() or 0, teacher.num_segments
  if start > n_seg:
    raise ValueError(f"checkpoint in {out_dir} is at segment {start}, past this config's {n_seg}")
  if start:
    state = mngr.restore(start, args=ocp.args.StandardRestore(state))
    log(f"[teachers] resuming from segment {start}/{n_seg} ({start * cfg.segment_steps} env steps)")
  meta = {"env": config.env.name, "env_kwargs": config.env.kwargs.to_dict(),
          "task_ids": np.asarray(task_ids).tolist(),
          "tasks": {jax.tree_util.keystr(p): np.asarray(v).tolist()
                    for p, v in jax.tree_util.tree_flatten_with_path(jax.device_get(tasks))[0]},
          "num_seeds": num_seeds, "seed": int(config.seed), "streams_per_learner": int(cfg.num_envs),
          "env_steps_per_learner": int(cfg.total_steps), "axes": ["seed", "task", "stream", "time"],
          "teacher_config": cfg.to_dict(), "obs_dtype": str(envs_lib.obs_spec(env)[1]),
          "record_gap": record_gap, **({"learners_per_task": k} if k > 1 else {})}
  writer = store.HistoryWriter(layout.path(out_dir, "histories"), meta, time_axis=3)
  board = outputs.Board(layout.path(out_dir, "tb"), num_seeds, purge_step=start * int(cfg.segment_steps) + 1,
                        config=config)
  log(f"[teachers] {config.env.name}: {num_seeds} seeds x {num_tasks} tasks x "
      + (f"{k} independent learners x " if k > 1 else "") + f"{cfg.num_envs} streams, "
      f"{cfg.total_steps} env steps each, {n_seg} segments"
      + (f", seeds sharded over {mesh.devices.size} devices" if mesh is not None else ""))
  t_start, t_compiled = time.time(), None
  for seg in range(start, n_seg):
    t0 = time.time()
    state, out = seg_fn(state, learners)
    out = jax.device_get(out)
    history = population.merge_learners(out.history, k)
    writer.write_chunk(seg, keep_every(history, record_gap))
    step0 = seg * int(cfg.segment_steps)
    # The last segment's greedy evaluation uses the final evaluation's keys (salt 0): summary.json's.
    greedy = None if greedy_fn is None else greedy_fn(state.params, 0 if seg + 1 == n_seg else seg + 1)
    sums, counts = population.segment_curve_bins(population.merge_learners(np.asarray(out.episode_return), k),
                                                 step0, int(cfg.num_envs),
                                                 log_every, int(cfg.total_steps))
    chunk = dict(sums=sums, counts=counts, **({} if greedy is None else {"greedy": np.asarray(greedy, np.float64)}))
    outputs.write_npz(layout.path(out_dir, "curve_chunks", f"curve_{seg:05d}.npz"), **chunk)
    recent = _board_segment(board, sums, counts, seg, int(cfg.segment_steps), log_every, greedy, out,
                            float(teacher.epsilon((seg + 1) * int(cfg.segment_steps))))
    mngr.save(seg + 1, args=ocp.args.StandardSave(state), force=seg + 1 == n_seg)
    speed = ""
    if t_compiled is None:
      t_compiled = time.time()
    else:
      rate = (seg - start) * cfg.segment_steps * num_seeds * num_tasks * k / (time.time() - t_compiled)
      eta = (n_seg - seg - 1) * cfg.segment_steps * num_seeds * num_tasks * k / max(rate, 1e-9)
      speed = f", {rate:,.0f} env steps/s, eta {eta:.0f}s"
    log(f"[teachers] segment {seg + 1}/{n_seg}: {(seg + 1) * cfg.segment_steps} env steps, "
        f"return {recent:.2f} (last {log_every} steps), epsilon "
        f"{float(teacher.epsilon((seg + 1) * int(cfg.segment_steps))):.3f} ({time.time() - t0:.1f}s{speed})")
  mngr.wait_until_finished()
  mngr.close()
  board.close()
  writer.finalize(n_seg)
  _summarize(config, env, tasks, task_ids, state, out_dir, greedy_fn)
  log(f"[teachers] done in {time.time() - t_start:.0f}s: {layout.path(out_dir, 'histories')}")


def _board_segment(board, sums, counts, seg, seg_steps, log_every, greedy, out, eps) -> float:
  """One segment's TensorBoard points from its curve bins (the same bins curves.npz holds): a point per
  logging window that ends inside the segment. Returns the mean return of its last window."""
  lo, hi = seg * seg_steps, (seg + 1) * seg_steps
  recent = float("nan")
  for b in range(lo // log_every, -(-hi // log_every)):
    x = (b + 1) * log_every
    if not lo < x <= hi:
      continue
    n = counts[..., b].sum(-1)
    with np.errstate(all="ignore"):
      per_seed = np.where(n > 0, sums[..., b].sum(-1) / np.maximum(n, 1), np.nan)
    board.scalars("teacher/return", per_seed, x)
    if np.isfinite(per_seed).any():
      recent = float(np.nanmean(per_seed))
  if greedy is not None:
    board.scalars("teacher/greedy_return", np.asarray(greedy).mean(-1), hi)
  with np.errstate(all="ignore"):
    board.scalars("teacher/loss", np.nanmean(np.asarray(out.loss).reshape(board.num_seeds, -1), -1), hi)
    board.scalars("teacher/q_mean", np.nanmean(np.asarray(out.q_mean).reshape(board.num_seeds, -1), -1), hi)
  board.scalars("teacher/epsilon", np.full(board.num_seeds, eps), hi)
  return recent


def _summarize(config, env, tasks, task_ids, state, out_dir, greedy_fn=None):
  """Learning curves from the per-segment curve chunks, final greedy returns, a figure."""
  log_every, total = int(config.teacher.log_every), int(config.teacher.dqn.total_steps)
  seg_steps = int(config.teacher.dqn.segment_steps)
  n_bins, n_seg = total // log_every, total // seg_steps
  num_seeds, num_tasks = int(config.teacher.num_seeds), len(task_ids)
  sums, counts = np.zeros((num_seeds, num_tasks, n_bins)), np.zeros((num_seeds, num_tasks, n_bins))
  greedy = []
  for seg in range(n_seg):
    p = layout.path(out_dir, "curve_chunks", f"curve_{seg:05d}.npz")
    check(os.path.exists(p), p, "is missing: this teacher run was started by an older version that "
          "did not write curve chunks; run it again in a new workdir", None)
    with np.load(p) as z:
      sums += z["sums"]
      counts += z["counts"]
      if "greedy" in z.files:
        greedy.append(z["greedy"])
  with np.errstate(invalid="ignore"):
    curves = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
  bin_steps = (np.arange(n_bins) + 1) * log_every
  summary = {"env": config.env.name, "task_ids": np.asarray(task_ids).tolist()}
  extra = {}
  if len(greedy) == n_seg:     # every segment's greedy return; the last one is the final evaluation
    extra["greedy_returns"] = np.stack(greedy, -1)
    extra["greedy_env_steps"] = (np.arange(n_seg) + 1) * seg_steps
    summary["greedy_return"] = greedy[-1].tolist()
  elif greedy_fn is not None:
    summary["greedy_return"] = greedy_fn(state.params).tolist()
  if hasattr(env, "optimal_return"):
    summary["optimal_return"] = np.asarray(jax.vmap(env.optimal_return)(tasks)).tolist()
  outputs.write_npz(layout.path(out_dir, "curves.npz"), returns=curves, env_steps=bin_steps,
                    task_ids=np.asarray(task_ids), **extra)
  _plot(curves, bin_steps, summary, config.env.name, layout.path(out_dir, "teacher_curves.png"))
  outputs.write_json(layout.path(out_dir, layout.SUMMARY), summary)


def _plot(curves, bin_steps, summary, env_name, path):
  with outputs.figure(path, size=(6, 4)) as (_, (ax,)), np.errstate(all="ignore"):
    per_seed = np.nanmean(curves, axis=1)
    for s, c in enumerate(per_seed):
      ax.plot(bin_steps, c, alpha=0.6, lw=1, label=f"seed {s}" if s < 8 else None)
    ax.plot(bin_steps, np.nanmean(per_seed, 0), color="k", lw=2, label="mean over seeds")
    if "optimal_return" in summary:
      ax.axhline(float(np.mean(summary["optimal_return"])), color="g", ls="--", label="optimal")
    ax.set_xlabel("environment steps (per learner, all streams)")
    ax.set_ylabel("episode return (mean over tasks)")
    ax.set_title(f"DQN teachers on {env_name}")
    ax.legend(fontsize=7)


STAGE = Stage(name="teachers", subdir="teachers", reads=("seed", "env", "tasks", "teacher"),
              validate=validate, run=run)
