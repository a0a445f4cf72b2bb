"""The hybrid learner: frozen when it takes no SGD steps, weights move when it does, LoRA leaves the base."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cl_limits import envs
from cl_limits.models.transformer import Tokens, TransitionTransformer
from cl_limits.rollouts import chunked
from cl_limits.rollouts import hybrid as hybrid_lib
from cl_limits.rollouts import rollout as rollout_lib

SEGMENTS, ACT = 3, 20          # 3 segments of 2 episodes of 10 steps


@pytest.fixture(scope="module")
def setup():
  env = envs.make("DarkRoom", size=5, episode_len=10)
  model = TransitionTransformer(num_actions=5, context_len=12, layers=2, width=16, heads=2,
                                obs_nvec=env.obs_nvec)
  tok = Tokens(obs=jnp.zeros((4, 2), jnp.int8), prev_action=jnp.zeros(4, jnp.int32),
               prev_reward=jnp.zeros(4), prev_done=jnp.zeros(4, bool))
  params = jax.tree.map(lambda x: 3.0 * x, model.init(jax.random.key(3), tok))
  task = jax.tree.map(lambda x: x[7], env.all_tasks())
  return env, model, params, task


def cfg(**kw):
  c = hybrid_lib.default_config()
  c.update(dict(act_steps=ACT, sgd_steps=3, batch_size=2, seq_len=12, buffer_steps=40, lr=1e-2,
                weighting="all"))
  c.update(kw)
  return c


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def runs(setup):
  env, model, params, task = setup
  before = leaves(params)
  out = {}
  for name, c in {"frozen": cfg(sgd_steps=0), "full": cfg(), "lora": cfg(adapter="lora")}.items():
    fn = jax.jit(hybrid_lib.make_hybrid(model, env, c, SEGMENTS, 10))
    out[name] = jax.device_get(fn(params, task, jax.random.key(5)))
  return out, before


def test_without_sgd_the_hybrid_is_the_frozen_rollout(setup, runs):
  env, model, params, task = setup
  out, _ = runs
  frozen = jax.device_get(jax.jit(rollout_lib.make_rollout(model, env, SEGMENTS * ACT, 10, greedy=False))(
      params, task, jax.random.key(5)))
  np.testing.assert_array_equal(out["frozen"].episode_return, frozen.episode_return)
  np.testing.assert_array_equal(out["frozen"].episode_end, frozen.episode_end)
  for a, b in zip(leaves(out["frozen"].params), leaves(params)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("epsilon,decay", [(0.5, 0), (0.0, SEGMENTS * ACT)])
def test_with_epsilon_the_hybrid_acts_as_the_rollout_and_fits_the_choice_it_explored_around(setup, epsilon, decay):
  """A marking model acting epsilon-greedily around its sampled choice (a constant epsilon, or one falling
  from 1 to 0 over the run, read at each step's index): without SGD the hybrid takes the frozen rollout's
  actions (marks included), and what its buffer keeps for SGD to fit is the choice, not the uniform action
  taken instead (a greedy-label model's target)."""
  env, _, _, task = setup
  model = TransitionTransformer(num_actions=5, context_len=12, layers=2, width=16, heads=2,
                                obs_nvec=env.obs_nvec, mark_explore=True)
  tok = Tokens(obs=jnp.zeros((4, 2), jnp.int8), prev_action=jnp.zeros(4, jnp.int32), prev_reward=jnp.zeros(4),
               prev_done=jnp.zeros(4, bool), prev_explore=jnp.zeros(4, bool))
  params = jax.tree.map(lambda x: 3.0 * x, model.init(jax.random.key(3), tok))
  key = jax.random.key(5)
  init, advance, _ = hybrid_lib.make_hybrid_parts(model, env, cfg(sgd_steps=0), SEGMENTS, 10, epsilon=epsilon,
                                                  epsilon_decay=decay)
  carry = jax.device_get(jax.jit(lambda p, e, k: advance(p, e, k, init(p, e, k), 0, SEGMENTS, False))(
      params, task, key))
  rec = jax.device_get(jax.jit(rollout_lib.make_rollout(model, env, SEGMENTS * ACT, 10, greedy=False, record=True,
                                                        epsilon=epsilon, epsilon_decay=decay))(params, task, key).transitions)
  buf = carry[10]
  np.testing.assert_array_equal(np.asarray(buf.action), np.asarray(rec.greedy)[-40:])      # the choices
  np.testing.assert_array_equal(np.asarray(buf.tokens.prev_action)[1:], np.asarray(rec.action)[-40:-1])
  assert (np.asarray(rec.action) != np.asarray(rec.greedy)).any()


def test_full_hybrid_changes_every_weight_matrix_and_leaves_the_input_alone(setup, runs):
  _, _, params, _ = setup
  out, before = runs
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
  still = [p for p, a, b in zip(paths, leaves(out["full"].params), before) if np.array_equal(a, b)]
  # Only the reward projection's kernel may stay: its input is 0 unless a reward was seen in a window.
  assert set(still) <= {"['params']['reward_proj']['kernel']"}, still
  for a, b in zip(leaves(params), before):          # the caller's frozen imitator is untouched
    np.testing.assert_array_equal(a, b)
  assert np.isfinite(out["full"].loss).all()


def test_full_hybrid_acts_as_frozen_until_its_first_update_then_with_the_updated_weights(setup, runs):
  """Same keys: the episodes of the first segment (before any SGD) are the frozen run's; the final weights
  give other action probabilities than the frozen ones on the same tokens."""
  _, model, params, _ = setup
  out, _ = runs
  ends = np.asarray(out["full"].episode_end)
  first = (ends > 0) & (ends <= ACT)
  assert first.sum() == 2
  np.testing.assert_array_equal(ends, np.asarray(out["frozen"].episode_end))
  np.testing.assert_array_equal(np.asarray(out["full"].episode_return)[first],
                                np.asarray(out["frozen"].episode_return)[first])
  tok = Tokens(obs=jnp.asarray([[1, 2], [2, 2], [3, 1], [0, 4]], jnp.int8), prev_action=jnp.asarray([5, 0, 1, 2]),
               prev_reward=jnp.asarray([0.0, 0.0, 1.0, 0.0]), prev_done=jnp.asarray([True, False, False, False]))
  p_new = jax.nn.softmax(model.apply(out["full"].params, tok), -1)
  p_old = jax.nn.softmax(model.apply(params, tok), -1)
  assert float(jnp.abs(p_new - p_old).max()) > 1e-3


def test_lora_hybrid_trains_the_adapter_only(setup, runs):
  _, model, params, _ = setup
  out, before = runs
  lora = out["lora"]
  for a, b in zip(leaves(lora.params), before):
    np.testing.assert_array_equal(a, b)              # base weights bit-identical
  kernels = [x for x in jax.tree_util.tree_flatten_with_path(params)[0] if hybrid_lib._adapted(*x)]
  assert len(lora.adapter) == len(kernels) > 0
  still = [k for k, ab in lora.adapter.items() if not np.abs(np.asarray(ab["b"])).max() > 0]
  assert set(still) <= {"['params']['reward_proj']['kernel']"}, still   # as in the full-weights test
  merged = hybrid_lib.lora_merge(params, lora.adapter, 2.0)
  assert any(not np.array_equal(a, b) for a, b in zip(leaves(merged), before))


def test_lora_starts_as_the_base_model(setup):
  _, _, params, _ = setup
  adapter = hybrid_lib.lora_init(params, 4, jax.random.key(0))
  for a, b in zip(leaves(hybrid_lib.lora_merge(params, adapter, 2.0)), leaves(params)):
    np.testing.assert_array_equal(a, b)


def test_weighting_keeps_finished_episodes_and_filters_by_return():
  ring = jnp.full(11, jnp.nan).at[:3].set(jnp.array([1.0, 5.0, 3.0]))   # episodes 0-2 done, 3 running
  episode = jnp.array([-1, 0, 0, 1, 1, 2, 2, 3, 3, 3], jnp.int32)
  top = hybrid_lib.episode_weights(episode, ring, "top", 0.5)
  np.testing.assert_array_equal(np.asarray(top), [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])   # returns 5 and 3
  every = hybrid_lib.episode_weights(episode, ring, "all", 0.5)
  np.testing.assert_array_equal(np.asarray(every), [0, 1, 1, 1, 1, 1, 1, 0, 0, 0])


def test_bad_config_names_the_field(setup):
  env, model, _, _ = setup
  with pytest.raises(ValueError, match="^buffer_steps: must be >= seq_len"):
    hybrid_lib.make_hybrid(model, env, cfg(buffer_steps=5), 2, 10)
  with pytest.raises(ValueError, match="^adapter: must be one of"):
    hybrid_lib.make_hybrid(model, env, cfg(adapter="ia3"), 2, 10)


class _Killed(Exception):
  pass


def test_chunked_hybrid_equals_one_scan_and_a_killed_one_resumes(setup, tmp_path, monkeypatch):
  """Run from the host in chunks of whole segments (3 segments in chunks of 2, the last one masked), the
  hybrid acts as the one-scan hybrid: the same returns and episode ends, and the same losses (the first
  chunk, compiled with init, to the bit; a later chunk's SGD, its own program, to float rounding). Stopped
  after its first chunk, it resumes from the checkpoint there (weights, optimiser, buffer) and ends with
  the uninterrupted chunked result, bit for bit."""
  env, model, params, _ = setup
  params2 = jax.tree.map(lambda x: jnp.stack([x, 0.5 * x]), params)           # two "seeds"
  tasks = jax.tree.map(lambda x: x[jnp.asarray([7, 11])], env.all_tasks())
  keys = jax.random.split(jax.random.key(5), 4).reshape(2, 2)
  c = cfg()
  one = jax.device_get(hybrid_lib.make_batched_hybrid(model, env, c, SEGMENTS, 10)(params2, tasks, keys))
  roll = chunked.make_chunked_hybrid(model, env, c, SEGMENTS, 10, chunks=2)
  assert roll.chunk == 2 * ACT and roll.horizon == SEGMENTS * ACT
  got = jax.device_get(chunked.run_chunked(roll, params2, tasks, keys))
  assert np.nansum(np.asarray(one.episode_return)) > 0 and np.isfinite(np.asarray(one.loss)).all()
  for f in ("episode_return", "episode_end", "num_episodes"):
    np.testing.assert_array_equal(np.asarray(getattr(got, f)), np.asarray(getattr(one, f)), err_msg=f)
  np.testing.assert_array_equal(np.asarray(got.loss)[..., :2], np.asarray(one.loss)[..., :2])
  np.testing.assert_allclose(np.asarray(got.loss), np.asarray(one.loss), rtol=1e-5)
  # Asked for a group per model, a hybrid still runs in one (its SGD compiled for fewer models rounds
  # otherwise): the chunked result to the bit, losses included.
  assert not roll.groupable
  grouped = chunked.run_chunked(roll, params2, tasks, keys, groups=2)
  for f in ("episode_return", "episode_end", "num_episodes", "loss"):
    np.testing.assert_array_equal(np.asarray(getattr(grouped, f)), np.asarray(getattr(got, f)), err_msg=f)
  path = str(tmp_path / "hybrid.npz")

  def kill(label, t, horizon):
    if t == roll.chunk:
      raise _Killed
  monkeypatch.setattr(chunked, "after_chunk", kill)
  with pytest.raises(_Killed):
    chunked.run_chunked(roll, params2, tasks, keys, checkpoint=path, checkpoint_seconds=0)
  monkeypatch.undo()
  logs = []
  again = jax.device_get(chunked.run_chunked(roll, params2, tasks, keys, checkpoint=path, log=logs.append))
  assert any(f"resuming from its checkpoint at step {roll.chunk}" in line for line in logs), logs
  for f in ("episode_return", "episode_end", "loss"):
    np.testing.assert_array_equal(np.asarray(getattr(again, f)), np.asarray(getattr(got, f)), err_msg=f)
