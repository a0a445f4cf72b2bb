"""Rollouts driven from the host in chunks: progress with an ETA, and checkpoints a killed run resumes from.

`make_chunked_rollout` cuts `rollout.make_batched_rollout`'s scan into `chunks` jitted pieces (the last
one masked where the chunk length does not divide the horizon); `run_chunked` runs them, printing progress
and saving the carry (KV caches, environment states, episodes so far) between chunks. Step t's key is the
same however the steps are chunked, so the result equals one scan step for step. `run_batched` is what the
stages call, with the config's `experiments.rollout` settings. `make_chunked_hybrid` does the same for the
hybrid learner (rollouts/hybrid.py), in chunks of whole segments (act, then SGD).

On a CPU, `run_chunked` can split the models into `groups` and run each group's chunk in its own thread.
A batched step over one device's models is latency-bound there (each step reads every model's weights, and
XLA spreads one step's small products poorly over the cores), so two groups on two cores run the Breakout
study's rollouts about 1.8x faster. A frozen model's rollout is computed alone whatever batch it is in, so
the result is the same to the bit (tested). A hybrid's is not: its SGD compiled for fewer models rounds
otherwise (measured: one model's returns moved after the first update), so hybrids run in one group.
"""
from __future__ import annotations

import hashlib
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits.rollouts import hybrid as hybrid_lib
from cl_limits.rollouts.rollout import RolloutResult, make_parts, episodes_for


class ChunkedRollout(NamedTuple):
  """One batched rollout of `horizon` steps run from the host in chunks of `chunk` steps (`run_chunked`).
  init(params [M], env_params [K], keys [M, K][, prompts]) -> carry; advance(params, env_params, keys, carry,
  t0) -> carry (steps t0 .. t0 + chunk - 1); finish(carry) -> RolloutResult [M, K, ...]; first (optional):
  (params, env_params, keys) -> the carry after the first chunk, init and that chunk compiled as one
  program (run_chunked uses it when it starts from step 0). All jitted."""
  init: Any
  advance: Any
  finish: Any
  horizon: int
  chunk: int
  tag: str
  first: Any = None     # (params, env_params, keys) -> the carry after the first chunk, init compiled with it
  groupable: bool = True   # False: its result depends on how many models one program holds (run in one group)


def _chunk_length(total: int, chunks: int) -> tuple[int, bool]:
  """(length of each of `chunks` equal pieces of `total` steps or segments, whether the last is masked)."""
  if chunks < 1:
    raise ValueError(f"chunks must be >= 1 (got {chunks})")
  length = -(-total // min(chunks, total))
  return length, total % length != 0


def _proto(greedy: bool, temperature: float, epsilon: float, epsilon_decay: int = 0) -> str:
  """The action protocol in a checkpoint's tag (a checkpoint of another protocol is never resumed)."""
  base = "greedy" if greedy else f"t{float(temperature):g}"
  return (base + (f"-eps{float(epsilon):g}" if float(epsilon) > 0 else "")
          + (f"-decay{int(epsilon_decay)}" if int(epsilon_decay) > 0 else ""))


def make_chunked_rollout(model, env, horizon: int, max_episodes: int, chunks: int = 1, greedy: bool = True,
                         mode: str = "cached", temperature: float = 1.0, prompted: bool = False,
                         epsilon: float = 0.0, epsilon_decay: int = 0) -> ChunkedRollout:
  """`make_batched_rollout`'s rollout cut into `chunks` pieces of equal length (the last one masked where
  the length does not divide the horizon): the same result, step for step, whatever `chunks` is."""
  if prompted and mode != "cached":
    raise ValueError("prompted rollouts use the KV cache (mode='cached')")
  chunk, masked = _chunk_length(horizon, chunks)
  init, advance, finish = make_parts(model, env, horizon, max_episodes, greedy, mode, temperature, False, epsilon,
                                     epsilon_decay)

  def step(params, env_params, key, carry, t0):
    return advance(params, env_params, key, carry, t0, chunk, masked)[0]

  if prompted:
    init_b = jax.vmap(jax.vmap(init, in_axes=(None, 0, 0, 0)), in_axes=(0, None, 0, 0))
  else:
    init_b = jax.vmap(jax.vmap(lambda p, e, k: init(p, e, k), in_axes=(None, 0, 0)), in_axes=(0, None, 0))
  step_b = jax.vmap(jax.vmap(step, in_axes=(None, 0, 0, 0, None)), in_axes=(0, None, 0, 0, None))
  tag = f"h{horizon}-c{chunk}-{mode}-{_proto(greedy, temperature, epsilon, epsilon_decay)}-{'p' if prompted else 'e'}"
  return ChunkedRollout(jax.jit(init_b), jax.jit(step_b, donate_argnums=(3,)), jax.jit(jax.vmap(jax.vmap(finish))),
                        int(horizon), int(chunk), tag)


def make_chunked_hybrid(model, env, cfg, num_segments: int, max_episodes: int, chunks: int = 1,
                        greedy: bool = False, temperature: float = 1.0, epsilon: float = 0.0,
                        epsilon_decay: int = 0) -> ChunkedRollout:
  """`hybrid.make_batched_hybrid` cut into `chunks` pieces of whole segments (the last one masked where the
  chunk length does not divide the segments), as a `ChunkedRollout` counted in environment steps for
  `run_chunked`. Segment s's keys are the one-scan hybrid's; the first chunk (compiled with init) is that
  run to the bit, and a later chunk's SGD, compiled as its own program, equals it to float rounding (about
  1e-7 of a loss), so over a long run a sampled action can come out otherwise; `chunks=1` is the one-scan
  hybrid exactly. A killed run resumes to the uninterrupted chunked run's result, bit for bit. The final
  weights are dropped, as in `make_batched_hybrid`; the carry (weights, optimiser state, buffer, caches) is
  what a checkpoint saves."""
  per, masked = _chunk_length(num_segments, chunks)
  init, advance, finish = hybrid_lib.make_hybrid_parts(model, env, cfg, num_segments, max_episodes, greedy,
                                                       temperature, epsilon, epsilon_decay)
  act = int(cfg.act_steps)

  def step(params, env_params, key, carry, t0):
    return advance(params, env_params, key, carry, t0 // act, per, masked)

  def slim(carry):
    return finish(None, carry)._replace(params=None, adapter=None)

  def first(params, env_params, key):
    return step(params, env_params, key, init(params, env_params, key), 0)

  init_b = jax.vmap(jax.vmap(init, in_axes=(None, 0, 0)), in_axes=(0, None, 0))
  first_b = jax.vmap(jax.vmap(first, in_axes=(None, 0, 0)), in_axes=(0, None, 0))
  step_b = jax.vmap(jax.vmap(step, in_axes=(None, 0, 0, 0, None)), in_axes=(0, None, 0, 0, None))
  proto = _proto(greedy, temperature, epsilon, epsilon_decay)
  tag = f"hybrid-{num_segments}x{act}-c{per}-{proto}-{sorted(cfg.to_dict().items())}"
  # The first chunk is compiled with init: XLA then sees the initial weights and optimiser state as the
  # one-scan program does, and the SGD arithmetic is the same to the bit (a separately compiled first
  # chunk differs from one scan in the losses' last digits).
  return ChunkedRollout(jax.jit(init_b), jax.jit(step_b, donate_argnums=(3,)), jax.jit(jax.vmap(jax.vmap(slim))),
                        num_segments * act, per * act, tag, first=jax.jit(first_b), groupable=False)


def _fingerprint(roll: ChunkedRollout, *trees) -> str:
  """What a chunk checkpoint was made from: the rollout's shape and protocol, and every input's bytes."""
  h = hashlib.sha256(roll.tag.encode())
  for tree in trees:
    for leaf in jax.tree.leaves(tree):
      if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
      a = np.asarray(jax.device_get(leaf))
      h.update(str((a.shape, a.dtype.str)).encode())
      h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()


def _save(path: str, t: int, fingerprint: str, carry) -> None:
  from cl_limits.histories import store  # noqa: PLC0415
  buf = io.BytesIO()
  leaves = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(jax.device_get(jax.tree.leaves(carry)))}
  np.savez(buf, t=np.int64(t), fingerprint=np.asarray(fingerprint), **leaves)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  store.atomic_write_bytes(path, buf.getvalue())


def _load(path: str, fingerprint: str, shapes):
  """(t, carry) from a checkpoint made from the same inputs, else None (and why)."""
  if not os.path.exists(path):
    return None, ""
  try:
    with np.load(path) as z:
      if str(z["fingerprint"]) != fingerprint:
        return None, "made from other inputs"
      leaves, treedef = jax.tree.flatten(shapes)
      got = [z[f"leaf_{i}"] for i in range(len(leaves))]
      t = int(z["t"])
  except (OSError, KeyError, ValueError) as e:
    return None, f"unreadable ({type(e).__name__})"
  if any(g.shape != s.shape or g.dtype != s.dtype for g, s in zip(got, leaves)):
    return None, "its arrays do not match this rollout's"
  return t, jax.tree.unflatten(treedef, got)


def after_chunk(label: str, t: int, horizon: int) -> None:
  """Called after every chunk (and its checkpoint, if one is due): a hook for tests that stop a run
  between chunks."""
  del label, t, horizon


def split_models(num_models: int, groups: int) -> list[np.ndarray]:
  """Indices of `num_models` models in at most `groups` contiguous groups of one size, the last padded by
  repeating the last model (its copies are dropped when the groups are joined): 5 in 2 -> [0 1 2], [3 4 4]."""
  g = max(1, min(int(groups), int(num_models)))
  size = -(-int(num_models) // g)
  return [np.minimum(np.arange(lo, lo + size), num_models - 1) for lo in range(0, num_models, size)]


def auto_groups(groups: int) -> int:
  """`groups` as asked; 0: one per CPU core when the computation runs on one CPU device, else 1 (a GPU, or
  models already sharded over several devices)."""
  if int(groups) > 0:
    return int(groups)
  if jax.default_backend() != "cpu" or jax.device_count() > 1:
    return 1
  return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _join(parts, num_models: int):
  """The groups' trees joined on the model axis, the padding dropped (numpy)."""
  parts = jax.device_get(parts)
  return jax.tree.map(lambda *xs: np.concatenate(xs)[:num_models], *parts)


def run_chunked(roll: ChunkedRollout, params, env_params, keys, prompts=None, *, checkpoint: str | None = None,
                checkpoint_seconds: float = 60.0, progress_seconds: float = 10.0, log=None,
                label: str = "rollout", until_episodes: int = 0, groups: int = 1) -> RolloutResult:
  """Runs `roll` chunk by chunk from the host: a progress line with the ETA at most every
  `progress_seconds`, and (with `checkpoint`, a file path) the carry -- KV caches, environment states,
  episode records -- saved at most every `checkpoint_seconds` and after the last chunk, so a killed run
  resumes from its last checkpoint. A checkpoint is used only when it was made from the same inputs
  (params, tasks, keys, prompts, horizon, chunking and action protocol); the result is the same as one
  uninterrupted scan.

  until_episodes=N > 0: stop after the first chunk by whose end every rollout has finished N episodes (a
  horizon of N x the episode cap, for stages that count episodes, is mostly steps after the N-th episode
  where episodes end early). The first N episodes are the whole horizon's, bit for bit (a step depends only
  on the steps before it); later episodes are not played, so their slots stay empty.

  groups=G > 1: the models (the leading axis of params, keys and prompts) run in G groups, each group's
  chunk in its own thread (`split_models`); checkpoints hold the joined carry, so a run resumes with any G.
  A frozen rollout's result is the one-group result to the bit; a roll that is not `groupable` (a hybrid)
  runs in one group whatever G is."""
  args = (params, env_params, keys) + ((prompts,) if prompts is not None else ())
  num_models = int(np.shape(keys)[0])
  idx = split_models(num_models, groups if roll.groupable else 1)
  one = len(idx) == 1
  pick = lambda tree, i: tree if one else jax.tree.map(lambda x: x[i], tree)
  sub = [(pick(params, i), env_params, pick(keys, i)) + ((pick(prompts, i),) if prompts is not None else ())
         for i in idx]
  t, carries, fp = 0, None, ""
  if checkpoint:
    fp = _fingerprint(roll, *args)
    t, got = _load(checkpoint, fp, jax.eval_shape(roll.init, *args))
    if t is None:
      if got and log:
        log(f"{label}: checkpoint {checkpoint} not used ({got}); starting from step 0")
      t, got = 0, None
    elif log:
      log(f"{label}: resuming from its checkpoint at step {t:,} of {roll.horizon:,}")
    if got is not None:
      carries = [jax.device_put(pick(got, i)) for i in idx]
  if carries is None and roll.first is None:
    carries = [roll.init(*a) for a in sub]
  t0, t_first, last_log, last_save = t, time.time(), time.time(), time.time()
  start_t, t_start = None, None       # after the first chunk, which compiles: the rate the ETA uses

  def enough(cs) -> bool:
    if until_episodes <= 0 or cs is None:
      return False
    return min(int(np.min(jax.device_get(roll.finish(c).num_episodes))) for c in cs) >= until_episodes

  def chunk(g, t_now, cs):
    a = sub[g]      # the first chunk is compiled with init; block: the clock must see the work, not the queueing
    return jax.block_until_ready(roll.first(*a) if cs is None else roll.advance(a[0], a[1], a[2], cs[g],
                                                                                jnp.int32(t_now)))
  done = enough(carries)
  with ThreadPoolExecutor(len(idx)) as pool:
    while t < roll.horizon and not done:
      carries = ([chunk(0, t, carries)] if one else
                 list(pool.map(lambda g, t_now=t, cs=carries: chunk(g, t_now, cs), range(len(idx)))))
      t = min(t + roll.chunk, roll.horizon)
      done = enough(carries)
      now = time.time()
      if start_t is None:
        start_t, t_start = t, now
      if done and log and t < roll.horizon:
        log(f"{label}: every rollout has finished {until_episodes} episodes by step {t:,} of {roll.horizon:,}")
      if checkpoint and (t >= roll.horizon or done or now - last_save >= checkpoint_seconds):
        _save(checkpoint, t, fp, carries[0] if one else _join(carries, num_models))
        last_save = time.time()
      if log and t < roll.horizon and not done and now - last_log >= progress_seconds:
        rate = (t - start_t) / (now - t_start) if t > start_t else (t - t0) / max(now - t_first, 1e-9)
        log(f"{label}: step {t:,} of {roll.horizon:,} ({100 * t / roll.horizon:.0f}%), "
            f"{now - t_first:.0f}s, ETA {(roll.horizon - t) / max(rate, 1e-9):.0f}s")
        last_log = time.time()
      after_chunk(label, t, roll.horizon)
  results = [roll.finish(c) for c in carries]
  return results[0] if one else _join(results, num_models)


def options(settings) -> dict:
  """The config's `experiments.rollout` as run_chunked's keywords plus "chunks" (None: one chunk, silent)."""
  get = (lambda k, d: settings.get(k, d)) if settings is not None else (lambda k, d: d)
  return dict(chunks=int(get("chunks", 1)), checkpoint_seconds=float(get("checkpoint_seconds", 60.0)),
              progress_seconds=float(get("progress_seconds", 10.0)), groups=auto_groups(int(get("groups", 1))))


def run_batched(model, env, horizon: int, params, env_params, keys, prompts=None, *, settings=None,
                greedy: bool = True, temperature: float = 1.0, epsilon: float = 0.0, epsilon_decay: int = 0,
                max_episodes: int | None = None, until_episodes: int = 0,
                checkpoint: str | None = None, log=None, label: str = "rollout") -> RolloutResult:
  """What the stages call: `make_batched_rollout(...)(params, env_params, keys[, prompts])`, run in
  `settings.chunks` chunks (the config's `experiments.rollout`: chunks, checkpoint_seconds,
  progress_seconds; None: one chunk, silent) with progress and an optional checkpoint file; with
  `until_episodes`, only until every rollout has finished that many episodes (`run_chunked`)."""
  opts = options(settings)
  roll = make_chunked_rollout(model, env, horizon, max_episodes or episodes_for(env, horizon),
                              chunks=opts.pop("chunks"), greedy=greedy, temperature=temperature,
                              prompted=prompts is not None, epsilon=epsilon, epsilon_decay=epsilon_decay)
  return jax.device_get(run_chunked(roll, params, env_params, keys, prompts, checkpoint=checkpoint, log=log,
                                    label=label, until_episodes=until_episodes, **opts))
