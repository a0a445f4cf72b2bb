"""Learning curves of every learner the P3 and hybrid stages compare, on one environment-step axis.

`run_learners(...)` rolls an arm's imitators (seeds) out on tasks as the frozen imitator and as hybrid
variants (cl_limits/rollouts/hybrid.py); `step_mean` and `late_mean` summarise per-episode returns by
environment steps rather than by episode count, so envs whose episodes end early (DarkKeyToDoor, MinAtar)
are weighted by the time spent in each episode, as a learning curve over steps is.
"""
from __future__ import annotations

import os
import time
import warnings

import jax
import numpy as np

from cl_limits import comma_list
from cl_limits.histories import history as history_lib
from cl_limits.rollouts import hybrid as hybrid_lib
from cl_limits.rollouts import rollout as rollout_lib

VARIANTS = {"full": "none", "lora": "lora"}     # variant name -> hybrid adapter


def parse_variants(spec: str) -> list[str]:
  names = comma_list(spec)
  for v in names:
    if v not in VARIANTS:
      raise ValueError(f"experiments.hybrid.variants: unknown variant {v!r}; choose from {sorted(VARIANTS)}")
  return names


def run_learners(model, params, env, tasks, horizon: int, key, *, variants=(), learner_cfg=None,
                 greedy=False, temperature=1.0, frozen=True, log=print, tag=""):
  """{learner: (episode_return [S, K, E], episode_end [S, K, E])} for "frozen" (unless frozen=False) and
  every hybrid variant.

  params: one arm's imitators [S, ...]; tasks: env params [K]. Every learner gets the same keys, so the
  frozen run and a hybrid act identically until the hybrid's first update.
  """
  num_seeds = int(jax.tree.leaves(params)[0].shape[0])
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  keys = jax.random.split(key, num_seeds * num_tasks).reshape(num_seeds, num_tasks)
  max_ep = rollout_lib.episodes_for(env, horizon)
  out = {}
  if frozen:
    t0 = time.time()
    fn = rollout_lib.make_batched_rollout(model, env, horizon, max_ep, greedy=greedy, temperature=temperature)
    res = jax.device_get(fn(params, tasks, keys))
    out["frozen"] = (np.asarray(res.episode_return), np.asarray(res.episode_end))
    log(f"{tag} frozen: {num_seeds} x {num_tasks} rollouts of {horizon:,} steps ({time.time() - t0:.1f}s)")
  for v in variants:
    cfg = learner_cfg.copy_and_resolve_references()
    cfg.adapter = VARIANTS[v]
    act = int(cfg.act_steps)
    if horizon % act:
      raise ValueError(f"hybrid.learner.act_steps={act} must divide the horizon ({horizon} steps)")
    t0 = time.time()
    fn = hybrid_lib.make_batched_hybrid(model, env, cfg, horizon // act, max_ep, greedy=greedy,
                                        temperature=temperature)
    res = jax.device_get(fn(params, tasks, keys))
    out[v] = (np.asarray(res.episode_return), np.asarray(res.episode_end))
    log(f"{tag} hybrid {v}: {horizon // act} x ({act} steps + {cfg.sgd_steps} SGD steps) x {num_seeds} x "
        f"{num_tasks} ({time.time() - t0:.1f}s), final segment loss "
        f"{np.nanmean(np.asarray(res.loss)[..., -1]):.3f}")
  return out


def _lengths(ends):
  """Steps spent in each finished episode [..., E] (nan where unfinished)."""
  e = np.where(ends > 0, ends, np.nan).astype(np.float64)
  prev = np.concatenate([np.zeros(e.shape[:-1] + (1,)), e[..., :-1]], axis=-1)
  return e - prev


def step_mean(rets, ends, start: float = 0.0, horizon: float | None = None):
  """Step-weighted mean episode return over the finished episodes that end after `start` steps: the area
  under the return-vs-steps curve divided by its length. [..., E] -> [...]."""
  lengths = _lengths(ends)
  keep = np.isfinite(rets) & np.isfinite(lengths) & (np.where(ends > 0, ends, -1) > start)
  if horizon is not None:
    keep &= ends <= horizon
  w = np.where(keep, lengths, 0.0)
  with np.errstate(all="ignore"):
    return np.where(w.sum(-1) > 0, (np.where(keep, rets, 0.0) * w).sum(-1) / w.sum(-1), np.nan)


def late_mean(rets, ends, horizon: int, late_fraction: float):
  """Step-weighted mean return of the episodes that end in the last `late_fraction` of the horizon."""
  return step_mean(rets, ends, start=(1.0 - float(late_fraction)) * horizon)


def mean_curve(rets, ends, bins: int = 50, horizon: int | None = None):
  """(x [bins], y [S, bins]): per-seed return (mean over tasks) binned on the environment-step axis."""
  horizon = int(np.nanmax(ends)) if horizon is None else horizon
  edges = np.linspace(0, horizon, bins + 1)
  y = np.full((rets.shape[0], bins), np.nan)
  for b in range(bins):
    inside = (ends > edges[b]) & (ends <= edges[b + 1]) & np.isfinite(rets)
    n = inside.sum(axis=(1, 2))
    y[:, b] = np.where(n > 0, np.where(inside, rets, 0.0).sum(axis=(1, 2)) / np.maximum(n, 1), np.nan)
  return edges[1:], y


def binned_curve(rets, ends, bin_steps: int, num_bins: int):
  """[..., num_bins]: the mean return of the episodes that end in each window of `bin_steps` environment
  steps (nan where none ends), the statistic the DQN's learning curves hold (teachers/runner.py), so that
  every learner P3 compares is summarised the same way. rets / ends [..., E]."""
  total, n = history_lib.window_sums(rets, ends, bin_steps, num_bins)
  with np.errstate(all="ignore"):
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def nanmean(x, axis=None):
  """np.nanmean without the empty-slice warning (all-nan slices give nan)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    return np.nanmean(x, axis=axis)


def tensorboard_curves(tb_dir, group, runs, horizon, lines: dict, bins: int = 100):
  """<group>/<learner> per seed and mean against environment steps, plus constant reference lines."""
  from tensorboardX import SummaryWriter  # noqa: PLC0415
  curves = {k: mean_curve(r, e, bins=bins, horizon=horizon) for k, (r, e) in runs.items()}
  with SummaryWriter(os.path.join(tb_dir, "all")) as w:
    for k, (x, y) in curves.items():
      m = nanmean(y, 0)
      for j in np.flatnonzero(np.isfinite(m)):
        w.add_scalar(f"{group}/{k}", float(m[j]), int(x[j]))
    x = curves[next(iter(curves))][0]
    for name, value in lines.items():
      for j in range(len(x)):
        w.add_scalar(f"{group}/{name}", float(value), int(x[j]))
  num_seeds = next(iter(curves.values()))[1].shape[0]
  for s in range(num_seeds):
    with SummaryWriter(os.path.join(tb_dir, f"seed_{s}")) as w:
      for k, (x, y) in curves.items():
        for j in np.flatnonzero(np.isfinite(y[s])):
          w.add_scalar(f"{group}/{k}", float(y[s, j]), int(x[j]))
