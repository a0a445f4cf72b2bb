"""Acceptance: DQN with PureJaxRL's defaults solves gymnax CartPole-v1 (slow: about a minute)."""
import jax
import numpy as np
import pytest

from cl_limits import envs
from cl_limits.histories.history import learner_curve
from experiments.configs import cartpole
from cl_limits.teachers import dqn


@pytest.mark.slow
def test_cartpole_reaches_475_for_3_of_4_seeds():
  config = cartpole.get_config()
  env = envs.make("CartPole-v1")
  teacher = dqn.make_teacher(config.teacher.dqn, env)
  keys = jax.random.split(jax.random.key(0), 4)
  _, history, _ = jax.jit(jax.vmap(teacher.train, in_axes=(0, None)))(keys, env.default_params)
  last20 = [learner_curve(jax.tree.map(lambda a: a[s], history))[1][-20:].mean() for s in range(4)]
  assert sum(r >= 475 for r in last20) >= 3, f"mean return over the last 20 episodes per seed: {last20}"
