"""A population of DQN teachers: one per (seed, task), trained in one program, and what is measured on it.

Library code: no config, no run directory. `per_task(f)` vmaps a teacher function over seeds x tasks;
`seed_task_keys` gives every learner its key; `make_greedy_eval` scores the greedy policy of every learner;
`segment_curve_bins` bins the episodes of one training segment into the learning curve's windows, the one
binning every writer (curves.npz, the progress line, TensorBoard) uses. `repeat_tasks`, `merge_learners` and
`per_task_mean` run k independent learners per task on the task axis and read them back per task.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits.histories.history import window_sums


def per_task(f):
  """f(key_or_state, env_params) vmapped over [seeds, tasks] states and [tasks] env params.

  With one task (a MinAtar game) the env params enter unbatched: XLA then keeps them constants instead of
  per-row operands of every env op, and the DQN runs about 1.3x faster (docs/measurements.md "MinAtar teacher
  throughput"); the result has the same [seeds, 1, ...] layout."""
  many = jax.vmap(jax.vmap(f, in_axes=(0, 0)), in_axes=(0, None))

  def g(x, env_params):
    if {int(a.shape[0]) for a in jax.tree.leaves(env_params)} != {1}:
      return many(x, env_params)
    one = jax.tree.map(lambda a: a[0], env_params)
    out = jax.vmap(f, in_axes=(0, None))(jax.tree.map(lambda a: a[:, 0], x), one)
    return jax.tree.map(lambda a: a[:, None], out)
  return g


def seed_task_keys(seed: int, num_seeds: int, num_tasks: int):
  """Keys [seeds, tasks]: seed s, task k -> fold_in(fold_in(key(seed), s), k)."""
  base = jax.random.key(seed)
  return jax.vmap(lambda s: jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(base, s), k))(
      jnp.arange(num_tasks)))(jnp.arange(num_seeds))


def repeat_tasks(tasks, k: int):
  """Env params [K, ...] -> [K * k, ...]: each task k times in a row (task t's learners at t * k + j)."""
  return tasks if k == 1 else jax.tree.map(lambda a: jnp.repeat(a, k, axis=0), tasks)


def merge_learners(x, k: int):
  """Outputs [S, K * k, E, ...] of k learners per task (`repeat_tasks`) -> [S, K, k * E, ...]: a task's
  learners' streams side by side, learner j's streams at j * E ... j * E + E - 1. Any pytree of arrays."""
  if k == 1:
    return x
  return jax.tree.map(lambda a: a.reshape(a.shape[0], a.shape[1] // k, k * a.shape[2], *a.shape[3:]), x)


def per_task_mean(fn, k: int):
  """A greedy evaluation `fn(params, salt) -> [S, K * k]` read per task: the mean over its k learners."""
  if k == 1:
    return fn
  return lambda params, salt=0: (lambda g: g.reshape(g.shape[0], -1, k).mean(-1))(np.asarray(fn(params, salt)))


def segment_curve_bins(ep_ret, step0: int, num_envs: int, log_every: int, total: int):
  """(sums, counts) [S, K, bins] of the episodes that ended in one segment, binned by learner env step.

  ep_ret [S, K, E, T] (nan where no episode ended). Stream step t of the segment is learner step
  step0 + (t + 1) * num_envs; window i covers learner steps (i * log_every, (i + 1) * log_every], so the
  segment's last step falls in the segment's own last window."""
  s_, k_, e_, t_ = ep_ret.shape
  steps = step0 + (np.arange(t_) + 1) * num_envs
  return window_sums(np.asarray(ep_ret).reshape(s_, k_, e_ * t_), np.tile(steps, e_), log_every,
                     total // log_every, clip=True)


def make_greedy_eval(env, q_fn, tasks, num_seeds: int, num_tasks: int, episodes: int, seed: int):
  """`fn(params [S, K, ...], salt) -> [S, K]`: mean greedy return over `episodes` episodes per learner;
  salt 0 gives the final evaluation's keys, salt i > 0 the evaluation after segment i."""
  cap = getattr(env, "episode_len", None) or int(np.max(np.asarray(jax.device_get(
      tasks.max_steps_in_episode))))
  ev = jax.jit(jax.vmap(jax.vmap(
      lambda p, ep, k: greedy_returns(env, q_fn, p, ep, k, episodes, episodes * cap),
      in_axes=(0, 0, 0)), in_axes=(0, None, 0)))

  def fn(params, salt: int = 0):
    key = jax.random.key(seed + 1)
    if salt:
      key = jax.random.fold_in(key, salt)
    keys = jax.random.split(key, num_seeds * num_tasks).reshape(num_seeds, num_tasks)
    return np.asarray(ev(params, tasks, keys)).mean(-1)
  return fn


def greedy_returns(env, q_fn, params, env_params, key, num_episodes: int = 1, max_steps: int | None = None):
  """Greedy policy's episode returns [num_episodes] (one env, run until that many episodes end)."""
  max_steps = int(max_steps or num_episodes * _episode_cap(env, env_params))

  def step(carry, k):
    obs, env_state, ret, rets, n = carry
    action = jnp.argmax(q_fn(params, obs[None])[0])
    obs, env_state, r, term, trunc, _ = env.step(k, env_state, action, env_params)
    ret = ret + r
    done = jnp.logical_or(term, trunc)
    rets = jnp.where(done & (n < num_episodes), rets.at[jnp.minimum(n, num_episodes - 1)].set(ret), rets)
    return (obs, env_state, jnp.where(done, 0.0, ret), rets, n + done), None

  k_reset, k_steps = jax.random.split(key)
  obs, env_state = env.reset(k_reset, env_params)
  init = (obs, env_state, jnp.float32(0), jnp.full((num_episodes,), jnp.nan, jnp.float32), jnp.int32(0))
  (_, _, _, rets, _), _ = jax.lax.scan(step, init, jax.random.split(k_steps, max_steps))
  return rets


def _episode_cap(env, env_params):
  cap = getattr(env, "episode_len", None)
  if cap is None:
    cap = int(np.max(np.asarray(env_params.max_steps_in_episode)))
  return int(cap)
