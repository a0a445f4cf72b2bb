"""Each arm's learning-rate schedule runs over its own update budget, in one vmapped program."""
import jax
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
