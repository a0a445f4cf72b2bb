"""Probe environments with known Q-values, for checking the DQN's TD target numerically.

Each has one or two observations and a known answer under discount gamma:
- OneStepReward: one step, action a pays a (so Q = [0, 1]), then the episode terminates.
- TwoStepChain: obs 0 -> obs 1 -> terminal, reward 0 then 1 whatever the action: Q(0) = gamma, Q(1) = 1.
- ConstantReward: one observation, reward 1 every step, episodes `length` steps long. With
  `terminate=False` the episode is only truncated by the time limit and Q = 1 / (1 - gamma); with
  `terminate=True` its last step terminates, and since the agent cannot see the time, Q solves a mixture.
"""
from __future__ import annotations

import chex
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProbeState(environment.EnvState):
  obs: chex.Array
  time: int


@struct.dataclass
class ProbeParams(environment.EnvParams):
  max_steps_in_episode: int = 1


class _Probe(environment.Environment):
  num_obs = 1

  @property
  def num_actions(self):
    return 2

  def action_space(self, params=None):
    return spaces.Discrete(2)

  def observation_space(self, params=None):
    return spaces.Box(0, 1, (1,), jnp.float32)

  def reset_env(self, key, params):
    state = ProbeState(obs=jnp.zeros((1,), jnp.float32), time=0)
    return state.obs, state

  def features(self, obs):
    return obs.astype(jnp.float32)


class OneStepReward(_Probe):
  @property
  def default_params(self):
    return ProbeParams(max_steps_in_episode=10)

  def step_env(self, key, state, action, params):
    state = state.replace(time=state.time + 1)
    return state.obs, state, jnp.asarray(action, jnp.float32), jnp.array(True), {}


class TwoStepChain(_Probe):
  @property
  def default_params(self):
    return ProbeParams(max_steps_in_episode=10)

  def step_env(self, key, state, action, params):
    reward = state.obs[0]
    terminated = state.obs[0] > 0.5
    state = state.replace(obs=jnp.ones((1,), jnp.float32), time=state.time + 1)
    return state.obs, state, reward, terminated, {}


class ConstantReward(_Probe):
  def __init__(self, length: int = 2, terminate: bool = False):
    super().__init__()
    self.length = length
    self.terminate = terminate

  @property
  def default_params(self):
    return ProbeParams(max_steps_in_episode=self.length)

  def step_env(self, key, state, action, params):
    state = state.replace(time=state.time + 1)
    terminated = jnp.logical_and(self.terminate, state.time >= self.length)
    return state.obs, state, jnp.float32(1.0), terminated, {}
