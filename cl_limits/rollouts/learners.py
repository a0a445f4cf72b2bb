"""Every learner the P3 and hybrid stages compare, run on the same tasks with the same keys.

`run_learners(...)` rolls one arm's imitators (seeds) out on tasks as the frozen imitator and as hybrid
variants (cl_limits/rollouts/hybrid.py), all from the same keys, so the frozen run and a hybrid act
identically until the hybrid's first update.
"""
from __future__ import annotations

import os
import time

import jax
import numpy as np

from cl_limits import comma_list
from cl_limits.rollouts import chunked
from cl_limits.rollouts import rollout as rollout_lib

VARIANTS = {"full": "none", "lora": "lora"}     # variant name -> hybrid adapter


def parse_variants(spec: str) -> list[str]:
  names = comma_list(spec)
  for v in names:
    if v not in VARIANTS:
      raise ValueError(f"variants: unknown variant {v!r}; choose from {sorted(VARIANTS)}")
  return names


def task_keys(key, num_seeds: int, num_tasks: int):
  """Keys [S, K]: fold_in(fold_in(key, s), k)."""
  return jax.vmap(lambda s: jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(key, s), k))(
      jax.numpy.arange(num_tasks)))(jax.numpy.arange(num_seeds))


def run_learners(model, params, env, tasks, horizon: int, key, *, variants=(), learner_cfg=None,
                 greedy=False, temperature=1.0, epsilon=0.0, epsilon_decay=0, frozen=True, log=print, tag="",
                 settings=None, checkpoints: str | None = None):
  """{learner: (episode_return [S, K, E], episode_end [S, K, E])} for "frozen" (unless frozen=False) and
  every hybrid variant.

  params: one arm's imitators [S, ...]; tasks: env params [K]. Every learner gets the same keys, so the
  frozen run and a hybrid act identically until the hybrid's first update. The key of (seed s, task k) is
  `task_keys(key, S, K)[s, k]`, which does not depend on how many tasks run: a run on the first K' tasks
  gets the first K' columns of a run on all K. settings: the config's `experiments.rollout` (how the
  frozen run and the hybrids are chunked, how often they report progress and save). checkpoints: a folder
  where each learner's state is saved between chunks (`<folder>/<learner>.npz`), so a killed run resumes
  there; None: nothing saved.
  """
  num_seeds = int(jax.tree.leaves(params)[0].shape[0])
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  keys = task_keys(key, num_seeds, num_tasks)
  max_ep = rollout_lib.episodes_for(env, horizon)
  out = {}
  if frozen:
    t0 = time.time()
    res = chunked.run_batched(model, env, horizon, params, tasks, keys, settings=settings, greedy=greedy,
                              temperature=temperature, epsilon=epsilon, epsilon_decay=epsilon_decay,
                              max_episodes=max_ep, log=log, label=f"{tag} frozen",
                              checkpoint=_file(checkpoints, "frozen"))
    out["frozen"] = (np.asarray(res.episode_return), np.asarray(res.episode_end))
    log(f"{tag} frozen: {num_seeds} x {num_tasks} rollouts of {horizon:,} steps ({time.time() - t0:.1f}s)")
  for v in variants:
    cfg = learner_cfg.copy_and_resolve_references()
    cfg.adapter = VARIANTS[v]
    act = int(cfg.act_steps)
    if horizon % act:
      raise ValueError(f"hybrid.learner.act_steps={act} must divide the horizon ({horizon} steps)")
    t0 = time.time()
    opts = chunked.options(settings)
    roll = chunked.make_chunked_hybrid(model, env, cfg, horizon // act, max_ep, chunks=opts.pop("chunks"),
                                       greedy=greedy, temperature=temperature, epsilon=epsilon,
                                       epsilon_decay=epsilon_decay)
    res = jax.device_get(chunked.run_chunked(roll, params, tasks, keys, checkpoint=_file(checkpoints, f"hybrid_{v}"),
                                             log=log, label=f"{tag} hybrid {v}", **opts))
    out[v] = (np.asarray(res.episode_return), np.asarray(res.episode_end))
    log(f"{tag} hybrid {v}: {horizon // act} x ({act} steps + {cfg.sgd_steps} SGD steps) x {num_seeds} x "
        f"{num_tasks} ({time.time() - t0:.1f}s), final segment loss "
        f"{np.nanmean(np.asarray(res.loss)[..., -1]):.3f}")
  return out


def _file(folder: str | None, name: str) -> str | None:
  return None if folder is None else os.path.join(folder, f"{name}.npz")
