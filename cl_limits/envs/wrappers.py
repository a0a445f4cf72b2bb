"""Task augmentation as in GLA / GPICL (Kirsch et al. 2023): a fixed random linear projection of
observations and a fixed random permutation of actions, each drawn from a key.

The projection matrix and the permutation live in the wrapper's params, so `sample_params(key, inner)`
draws a new augmented task and vmapping over params vmaps over augmentations.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProjectionParams:
  inner: environment.EnvParams
  matrix: chex.Array  # float32 [in_dim, out_dim]


@struct.dataclass
class PermutationParams:
  inner: environment.EnvParams
  perm: chex.Array    # int32 [num_actions]: wrapper action a plays inner action perm[a]


class _Wrapper(environment.Environment):
  def __init__(self, env: environment.Environment):
    super().__init__()
    self.inner = env

  @property
  def name(self):
    return self.inner.name

  @property
  def num_actions(self):
    return self.inner.num_actions

  def action_space(self, params=None):
    return self.inner.action_space(None)

  def is_truncated(self, state, params):
    return self.inner.is_truncated(state, params.inner)

  def is_terminated(self, state, params):
    return self.inner.is_terminated(state, params.inner)

  def optimal_action(self, state, params):
    return self.inner.optimal_action(state, params.inner)

  def optimal_return(self, params, *args, **kw):
    return self.inner.optimal_return(params.inner, *args, **kw)

  def __getattr__(self, name):  # obs_nvec, size, ... of the wrapped env, obs_nvec, all_tasks, ... of the wrapped env
    # Which actions do the same is read from the wrapped env's observations and action ids, which a
    # projection or a permutation changes: not passed through (fidelity then treats every action as its own).
    if name in ("inner", "action_classes", "action_classes_at", "action_classes_rule"):
      raise AttributeError(name)
    return getattr(self.inner, name)


def _inner_features(env, obs):
  feats = getattr(env, "features", None)
  return feats(obs) if feats is not None else obs.astype(jnp.float32).reshape(obs.shape[:-1] + (-1,))


class RandomProjection(_Wrapper):
  """Observation -> features(obs).ravel() @ M, with M ~ N(0, 1/in_dim) fixed per task."""

  def __init__(self, env: environment.Environment, out_dim: int):
    super().__init__(env)
    if out_dim < 1:
      raise ValueError(f"projection out_dim must be >= 1, got {out_dim}")
    self.out_dim = out_dim
    obs_shape = env.observation_space(env.default_params).shape
    dummy = jnp.zeros(obs_shape, env.observation_space(env.default_params).dtype)
    self.in_dim = int(np.prod(_inner_features(env, dummy).shape))

  @property
  def default_params(self):
    return ProjectionParams(self.inner.default_params,
                            jnp.eye(self.in_dim, self.out_dim, dtype=jnp.float32))

  def sample_params(self, key, inner_params=None) -> ProjectionParams:
    inner_params = self.inner.default_params if inner_params is None else inner_params
    m = jax.random.normal(key, (self.in_dim, self.out_dim), jnp.float32) / jnp.sqrt(self.in_dim)
    return ProjectionParams(inner_params, m)

  def observation_space(self, params=None):
    return spaces.Box(-jnp.inf, jnp.inf, (self.out_dim,), jnp.float32)

  def _project(self, obs, params):
    return _inner_features(self.inner, obs).reshape(-1) @ params.matrix

  def step_env(self, key, state, action, params):
    obs, state, reward, terminated, info = self.inner.step_env(key, state, action, params.inner)
    return self._project(obs, params), state, reward, terminated, info

  def reset_env(self, key, params):
    obs, state = self.inner.reset_env(key, params.inner)
    return self._project(obs, params), state

  def features(self, obs):
    return obs.astype(jnp.float32)


class ActionPermutation(_Wrapper):
  """Action a plays the inner action perm[a]; perm is a fixed random permutation per task."""

  @property
  def default_params(self):
    return PermutationParams(self.inner.default_params, jnp.arange(self.inner.num_actions))

  def sample_params(self, key, inner_params=None) -> PermutationParams:
    inner_params = self.inner.default_params if inner_params is None else inner_params
    return PermutationParams(inner_params, jax.random.permutation(key, self.inner.num_actions))

  def observation_space(self, params=None):
    return self.inner.observation_space(None)

  def step_env(self, key, state, action, params):
    return self.inner.step_env(key, state, params.perm[action], params.inner)

  def reset_env(self, key, params):
    return self.inner.reset_env(key, params.inner)

  def optimal_action(self, state, params):
    inner_action = self.inner.optimal_action(state, params.inner)
    return jnp.argmax(params.perm == inner_action)

  def features(self, obs):
    return _inner_features(self.inner, obs)


def augmented(env: environment.Environment) -> RandomProjection:
  """The env as the augmented imitation arms see it: a random square projection of its flattened
  observation features over a random action permutation (`imitation.learner.augment_window` draws the
  same kind of task per training window). Draw tasks with `sample_augmented`."""
  inner = ActionPermutation(env)
  space = env.observation_space(env.default_params)
  dummy = jnp.zeros(space.shape, space.dtype)
  return RandomProjection(inner, int(np.prod(_inner_features(inner, dummy).shape)))


def sample_augmented(aug_env: RandomProjection, key, inner_params):
  """Params [K] of K augmented tasks: a fresh projection and permutation over each of inner_params [K]."""
  def one(k, p):
    k_perm, k_proj = jax.random.split(k)
    return aug_env.sample_params(k_proj, aug_env.inner.sample_params(k_perm, p))
  n = int(jax.tree.leaves(inner_params)[0].shape[0])
  return jax.vmap(one)(jax.random.split(key, n), inner_params)
