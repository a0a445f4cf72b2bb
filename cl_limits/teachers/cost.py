"""What a DQN step costs, as XLA counts it: FLOPs of a compiled program and of one learner's env step
(benchmarks/teacher_throughput.py and experiments/budget.py read them)."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def compiled_flops(compiled) -> float:
  """FLOPs XLA counts for a compiled program (`cost_analysis()`; a scan's body is counted once)."""
  ca = compiled.cost_analysis()
  ca = ca[0] if isinstance(ca, (list, tuple)) else ca
  return float((ca or {}).get("flops", 0.0))


def flops_per_env_step(cfg, env, teacher) -> float:
  """FLOPs of one env step of one learner: an acting forward pass per stream plus an update's share
  (`train_every` steps per update: online Q on obs and next_obs, target Q on next_obs, the gradient)."""
  state = jax.eval_shape(lambda: teacher.init(jax.random.key(0), env.default_params))
  obs = jax.ShapeDtypeStruct(state.obs.shape, state.obs.dtype)
  act = jax.jit(teacher.greedy_action).lower(state.params, obs).compile()
  b = int(cfg.batch_size)
  batch = jax.ShapeDtypeStruct((b,) + state.obs.shape[1:], state.obs.dtype)

  def update(params, target, o, a, r, o2):
    def loss(p):
      q = teacher.q_fn(p, o)
      q_taken = jnp.take_along_axis(q, a[:, None], axis=-1)[:, 0]
      best = jnp.argmax(teacher.q_fn(p, o2), axis=-1)
      q_next = jnp.take_along_axis(teacher.q_fn(target, o2), best[:, None], axis=-1)[:, 0]
      return jnp.square(q_taken - jax.lax.stop_gradient(r + q_next)).mean()
    return jax.grad(loss)(params)
  upd = jax.jit(update).lower(state.params, state.params, batch, jax.ShapeDtypeStruct((b,), jnp.int32),
                              jax.ShapeDtypeStruct((b,), jnp.float32), batch).compile()
  return compiled_flops(act) / int(cfg.num_envs) + compiled_flops(upd) / int(cfg.train_every)
