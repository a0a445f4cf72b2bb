"""AD-epsilon (Zisman et al. 2023): synthetic learning histories from noise-injected demonstrators.

Each stream acts with a demonstrator -- the env's oracle, or a given policy such as a trained DQN's greedy
action (for games without an oracle) -- except that with probability epsilon it takes a uniformly random
action; epsilon falls linearly from 1 at the first step to `eps_floor` at `decay_fraction` of the stream
and stays there (`decay_fraction` 0: at `eps_floor` throughout, one frozen epsilon-greedy policy). The
result has the shape and meaning of a teacher's history ([seeds, tasks, streams, T],
with `update` holding the step at which epsilon was computed), so the same store, selection and window
sampler serve both.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from cl_limits.histories.history import History


def epsilon_at(t, steps: int, eps_floor: float, decay_fraction: float):
  """Epsilon at step t; decay_fraction 0: at its floor from the first step (one frozen policy)."""
  if float(decay_fraction) == 0.0:
    return jnp.full(jnp.shape(t), eps_floor, jnp.float32)
  decay = jnp.maximum(decay_fraction * steps, 1.0)
  return jnp.maximum(eps_floor, 1.0 - (1.0 - eps_floor) * t / decay)


def make_generate(env, steps: int, streams: int, eps_floor: float, decay_fraction: float, start: int = 0,
                  schedule_steps: int | None = None, demonstrator=None):
  """`generate(key, env_params, demo_params=None) -> History [streams, steps]`, pure and jittable (vmap over
  tasks/seeds).

  start / schedule_steps: epsilon follows the schedule of a stream of `schedule_steps` (default `steps`)
  from its step `start` on: a stream's continuation past a cut (P2's known positive).
  demonstrator: `fn(demo_params, obs) -> action` (e.g. a DQN's greedy action, its params given to
  `generate`); None: the env's oracle, `env.optimal_action(state, env_params)`; "searcher": the env's
  scripted searcher (`search_start` / `search_action` / `search_update`, DarkRoom), a learner with memory
  whose actions follow from its own stream. Its continuation past `start` plays the stream from its first
  step and keeps the steps from `start` on (its memory at the cut is what its stream made it)."""
  sched = int(steps if schedule_steps is None else schedule_steps)
  searcher = isinstance(demonstrator, str)
  if searcher and (demonstrator != "searcher" or not hasattr(env, "search_start")):
    raise ValueError(f"demonstrator {demonstrator!r}: the only named demonstrator is 'searcher', for envs with "
                     f"a scripted searcher; {env.name} has {'one' if hasattr(env, 'search_start') else 'none'}")
  skip = int(start) if searcher else 0
  if demonstrator is None and not hasattr(env, "optimal_action"):
    raise ValueError(f"AD-epsilon needs an env with an oracle or a demonstrator policy; {env.name} has no "
                     "optimal_action")
  num_actions = env.action_space(env.default_params).n

  def one_stream(key, env_params, demo_params):
    k_reset, k_steps = jax.random.split(key)
    obs, state = env.reset(k_reset, env_params)
    memory = env.search_start(jax.random.fold_in(k_reset, 1)) if searcher else jnp.int32(0)

    def step(carry, inp):
      obs, state, episode, memory = carry
      t, k = inp
      k_eps, k_act, k_env = jax.random.split(k, 3)
      eps = epsilon_at(t + start - skip, sched, eps_floor, decay_fraction)
      if searcher:
        oracle = env.search_action(memory, state)
      elif demonstrator is None:
        oracle = env.optimal_action(state, env_params)
      else:
        oracle = jnp.asarray(demonstrator(demo_params, obs), jnp.int32)
      random = jax.random.randint(k_act, (), 0, num_actions)
      action = jnp.where(jax.random.uniform(k_eps) < eps, random, oracle)
      obs2, state2, reward, term, trunc, _ = env.step(k_env, state, action, env_params)
      if searcher:
        memory = env.search_update(memory, state, action, reward, term | trunc)
      rec = History(obs=obs, action=action.astype(jnp.int32), reward=reward.astype(jnp.float32),
                    terminated=term, truncated=trunc, episode=episode, update=t.astype(jnp.int32),
                    greedy=oracle.astype(jnp.int32), epsilon=jnp.asarray(eps, jnp.float32))
      return (obs2, state2, episode + (term | trunc).astype(jnp.int32), memory), rec

    n = steps + skip
    ts = jnp.arange(n)
    _, hist = jax.lax.scan(step, (obs, state, jnp.int32(0), memory), (ts, jax.random.split(k_steps, n)))
    return jax.tree.map(lambda x: x[skip:], hist) if skip else hist

  def generate(key, env_params, demo_params=None):
    return jax.vmap(one_stream, in_axes=(0, None, None))(jax.random.split(key, streams), env_params, demo_params)

  return generate
