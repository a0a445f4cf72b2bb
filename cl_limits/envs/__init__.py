"""Environments in the gymnax API, one registry, task splits.

`make(name, **kwargs)` builds any env the project knows: the dark grid worlds, the MinAtar games behind
the shared interface, the probe envs, and any plain gymnax env id (e.g. "CartPole-v1").
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits.envs import grid, minatar, probes, wrappers
from cl_limits.envs.grid import DarkKeyToDoor, DarkRoom
from cl_limits.envs.minatar import SharedMinAtar
from cl_limits.envs.wrappers import ActionPermutation, RandomProjection

_OWN = {
    "DarkRoom": lambda **kw: DarkRoom(**kw),
    "DarkRoomHard": lambda **kw: DarkRoom(**{"size": 17, **kw, "hard": True}),
    "DarkKeyToDoor": lambda **kw: DarkKeyToDoor(**kw),
    "Probe-OneStepReward": lambda **kw: probes.OneStepReward(**kw),
    "Probe-TwoStepChain": lambda **kw: probes.TwoStepChain(**kw),
    "Probe-ConstantReward": lambda **kw: probes.ConstantReward(**kw),
}
for _game in minatar.GAMES:
  _OWN[f"MinAtar-{_game}"] = (lambda g: lambda **kw: SharedMinAtar(g, **kw))(_game)

GYMNAX_ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")


def names() -> list[str]:
  return sorted(_OWN) + list(GYMNAX_ENVS)


def make(name: str, **kwargs):
  """Returns the env instance; its `default_params` hold the default task."""
  if name in _OWN:
    try:
      return _OWN[name](**kwargs)
    except TypeError as e:
      raise ValueError(f"bad kwargs for env {name!r}: {e}") from None
  if name in GYMNAX_ENVS:
    if kwargs:
      raise ValueError(f"env {name!r} takes no kwargs, got {sorted(kwargs)}")
    import gymnax  # noqa: PLC0415  (gymnax's registry builds every env; only pay for it here)
    env, _ = gymnax.make(name)
    return env
  raise ValueError(f"unknown env {name!r}; known: {', '.join(names())}")


def features(env, obs):
  """float32 feature vector(s) for a network torso: the env's own `features` or a plain cast."""
  fn = getattr(env, "features", None)
  if fn is not None:
    return fn(obs)
  return obs.astype(jnp.float32)


def obs_spec(env):
  """(shape, numpy dtype) of one observation."""
  space = env.observation_space(env.default_params)
  dtype = np.dtype(space.dtype) if space.dtype is not None else np.dtype(np.float32)
  return tuple(space.shape), dtype


def num_tasks(env) -> int:
  if hasattr(env, "all_tasks"):
    return int(jax.tree.leaves(env.all_tasks())[0].shape[0])
  return 1


def split_ids(env, seed: int = 0, heldout_fraction: float = 0.25):
  """Task ids (into `env.all_tasks()`) of the reproducible (train, heldout) split, each sorted.

  The split is a permutation drawn from `seed` alone, so every stage that names the same seed and
  fraction sees the same tasks. An env with a single task gives it as train and as heldout.
  """
  if not 0.0 <= heldout_fraction < 1.0:
    raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
  n = num_tasks(env)
  if n == 1:
    return np.array([0]), np.array([0])
  order = np.random.default_rng(seed).permutation(n)
  n_held = int(round(n * heldout_fraction))
  return np.sort(order[n_held:]), np.sort(order[:n_held])


def tasks_at(env, ids):
  """Task params with a leading task axis for the given ids (the default task for single-task envs)."""
  if not hasattr(env, "all_tasks"):
    return jax.tree.map(lambda x: jnp.asarray(x)[None], env.default_params)
  return select_tasks(env.all_tasks(), ids)


def task_split(env, seed: int = 0, heldout_fraction: float = 0.25):
  """The (train, heldout) split of `split_ids` as params, each with a leading task axis."""
  train, held = split_ids(env, seed, heldout_fraction)
  return tasks_at(env, train), tasks_at(env, held)


def select_tasks(tasks, indices):
  return jax.tree.map(lambda x: jnp.asarray(x)[np.asarray(indices)], tasks)


__all__ = ["make", "names", "features", "obs_spec", "task_split", "split_ids", "tasks_at", "select_tasks", "num_tasks",
           "DarkRoom", "DarkKeyToDoor", "SharedMinAtar", "RandomProjection", "ActionPermutation",
           "grid", "minatar", "probes", "wrappers"]
