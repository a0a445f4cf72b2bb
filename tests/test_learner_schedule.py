"""Each arm's learning-rate schedule runs over its own update budget, in one vmapped program."""
import jax
import pytest
import jax.numpy as jnp
import numpy as np

from cl_limits.histories import datasets, windows
from cl_limits.imitation import learner as learner_lib


def tiny_data(n=200, length=50):
  rng = np.random.default_rng(0)
  fd = datasets.FlatData(obs=rng.integers(0, 5, (n, 2)).astype(np.int8), action=rng.integers(0, 3, n).astype(np.int32),
                         label=rng.integers(0, 3, n).astype(np.int32), reward=np.zeros(n, np.float32),
                         done=np.zeros(n, bool), lengths=np.full(n // length, length), episodes=0)
  return fd


def test_each_arm_warms_up_and_decays_over_its_own_budget():
  """Two arms with budgets 20 and 10 (the config's num_updates 20, warmup 4, end fraction 0.1): the
  20-update arm sees lr/4 at its first update, the peak at update 4 and lr/10 at update 20; the 10-update
  arm lr/2, the peak at update 2, and lr/10 at its last update, 10."""
  cfg = learner_lib.default_config()
  cfg.update(dict(seq_len=8, batch_size=2, num_updates=20, updates_per_segment=10, lr=1e-3, warmup_updates=4,
                  end_lr_fraction=0.1))
  model = learner_lib.make_model(dict_model(), 3, (5, 5))
  fd = tiny_data()
  data = datasets.to_device(fd)
  starts, n_starts = windows.pad_starts([windows.legal_starts(fd.lengths, 8)] * 2)
  learner = learner_lib.make_learner(cfg, model, budgets=[20, 10])
  tokens = learner_lib.example_tokens(data, 8, 3)
  state = jax.vmap(learner.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 2), tokens)
  seg = jax.jit(learner.segment)
  group = jnp.arange(2, dtype=jnp.int32)
  state, m1 = seg(state, data, jnp.asarray(starts), jnp.asarray(n_starts), group)
  state, m2 = seg(state, data, jnp.asarray(starts), jnp.asarray(n_starts), group)
  lr = np.concatenate([np.asarray(m1.lr), np.asarray(m2.lr)], 1)        # [2 models, 20 updates]
  np.testing.assert_allclose(lr[0, [0, 3, 19]], [2.5e-4, 1e-3, 1e-4], rtol=1e-5)
  np.testing.assert_allclose(lr[1, [0, 1, 9]], [5e-4, 1e-3, 1e-4], rtol=1e-5)
  assert (np.diff(lr[0, 3:20]) <= 1e-9).all() and (np.diff(lr[1, 1:10]) <= 1e-9).all()   # monotone decay
  np.testing.assert_allclose(lr[1, 10:], 1e-4, rtol=1e-5)                  # held at the end value past it
  # The schedule function agrees with what the program applied.
  u = np.arange(1, 21)
  np.testing.assert_allclose(learner_lib.learning_rate(cfg, u, np.int32(20), np.int32(4)), lr[0], rtol=1e-5)


def dict_model():
  m = learner_lib.default_model_config()
  m.update(dict(context_len=8, layers=1, width=8, heads=2))
  return m


def test_models_one_at_a_time_train_as_one_vmapped_batch():
  """models_at_once 1 and 2 (lax.map over groups of models, the second leaving a remainder of 1) train
  three models with different budgets to the same losses, learning rates and weights as 0 (all three
  vmapped), to float rounding; a negative value is refused naming the field."""
  cfg = learner_lib.default_config()
  cfg.update(dict(seq_len=8, batch_size=2, num_updates=6, updates_per_segment=6, lr=1e-3, warmup_updates=2))
  model = learner_lib.make_model(dict_model(), 3, (5, 5))
  fd = tiny_data()
  data = datasets.to_device(fd)
  starts, n_starts = windows.pad_starts([windows.legal_starts(fd.lengths, 8)] * 3)
  tokens = learner_lib.example_tokens(data, 8, 3)
  group = jnp.arange(3, dtype=jnp.int32)
  out = {}
  for at_once in (0, 1, 2):
    cfg.models_at_once = at_once
    learner = learner_lib.make_learner(cfg, model, budgets=[6, 4, 2])
    state = jax.vmap(learner.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 3), tokens)
    out[at_once] = jax.jit(learner.segment)(state, data, jnp.asarray(starts), jnp.asarray(n_starts), group)
  state0, m0 = out[0]
  assert np.asarray(m0.loss).shape == (3, 6) and len(set(np.asarray(m0.loss)[:, 0].round(6))) > 1
  for at_once in (1, 2):
    state, m = out[at_once]
    np.testing.assert_allclose(np.asarray(m.loss), np.asarray(m0.loss), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(m.lr), np.asarray(m0.lr))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(state0.params)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  cfg.models_at_once = -1
  with pytest.raises(ValueError, match="train.models_at_once"):
    learner_lib.validate(cfg, dict_model())
