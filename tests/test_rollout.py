"""Frozen rollouts: the cached scan computes what training computes, and equals the naive rollout."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cl_limits import envs
from cl_limits.histories import datasets
from cl_limits.imitation import learner
from cl_limits.models.transformer import Tokens, TransitionTransformer
from cl_limits.rollouts import chunked
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import common

HORIZON = 50     # 5 episodes of 10 steps: the context of 12 slides many times, across episodes


def make(layers, ctx=12):
  env = envs.make("DarkRoom", size=5, episode_len=10)
  model = TransitionTransformer(num_actions=5, context_len=ctx, layers=layers, width=16, heads=2,
                                obs_nvec=env.obs_nvec)
  tok = Tokens(obs=jnp.zeros((4, 2), jnp.int8), prev_action=jnp.zeros(4, jnp.int32),
               prev_reward=jnp.zeros(4), prev_done=jnp.zeros(4, bool))
  params = model.init(jax.random.key(3), tok)
  # Scale the weights up so the policy is far from uniform and its actions depend on the context.
  params = jax.tree.map(lambda x: 3.0 * x, params)
  return env, model, params, envs.select_tasks(env.all_tasks(), [0, 7, 24])


@pytest.fixture(scope="module")
def two_layer():
  return make(layers=2)


def test_rollout_actions_are_the_training_forward_pass_argmax(two_layer):
  """Recorded transitions, read back as one history by the training gather, give logits whose argmax is
  the action the rollout took at every step: rollout and training see the same tokens and mask."""
  env, model, params, tasks = two_layer
  fn = jax.jit(rollout_lib.make_rollout(model, env, HORIZON, 10, record=True))
  res = fn(params, jax.tree.map(lambda x: x[1], tasks), jax.random.key(0))
  rec = jax.device_get(res.transitions)
  lead = lambda x: np.asarray(x)[None, None, None]
  fd = datasets.select(jax.tree.map(lead, rec))
  data = datasets.to_device(fd)
  tokens, _ = learner.gather(data, jnp.arange(HORIZON), model.num_actions)
  logits = model.apply(params, tokens)
  np.testing.assert_array_equal(np.argmax(np.asarray(logits), -1), np.asarray(rec.action))
  assert len(set(np.asarray(rec.action).tolist())) > 1
  # Episode bookkeeping: 5 episodes of 10 steps, returns = rewards summed per episode.
  assert int(res.num_episodes) == 5
  np.testing.assert_array_equal(np.asarray(res.episode_end)[:5], [10, 20, 30, 40, 50])
  np.testing.assert_allclose(np.asarray(res.episode_return)[:5],
                             np.asarray(rec.reward).reshape(5, 10).sum(-1))
  # The real next observation: the next step's within an episode, the move's result at its end (where
  # the next step's observation is the reset's start cell).
  from cl_limits.envs.grid import _move  # noqa: PLC0415
  obs, nxt = np.asarray(rec.obs), np.asarray(res.next_obs)
  moved = np.asarray(jax.vmap(lambda o, a: _move(o.astype(jnp.int32), a, 5))(jnp.asarray(obs), rec.action))
  np.testing.assert_array_equal(nxt, moved)
  ends = np.asarray(rec.truncated)
  np.testing.assert_array_equal(nxt[:-1][~ends[:-1]], obs[1:][~ends[:-1]])
  assert (nxt[:-1][ends[:-1]] != obs[1:][ends[:-1]]).any()


def test_sampled_rollout_marks_its_own_exploration_as_training_marks_the_teachers():
  """A `mark_explore` model sampling at temperature 1: read back by the training gather (which marks a
  step whose action is not its recorded greedy action), its recorded transitions give logits whose argmax
  is the greedy action the rollout recorded at every step, so the rollout fed its own marks exactly as
  training would; and the marks matter (zeroed, some argmax moves)."""
  env, _, _, tasks = make(layers=2)
  model = TransitionTransformer(num_actions=5, context_len=12, layers=2, width=16, heads=2,
                                obs_nvec=env.obs_nvec, mark_explore=True)
  tok = Tokens(obs=jnp.zeros((4, 2), jnp.int8), prev_action=jnp.zeros(4, jnp.int32), prev_reward=jnp.zeros(4),
               prev_done=jnp.zeros(4, bool), prev_explore=jnp.zeros(4, bool))
  params = jax.tree.map(lambda x: 3.0 * x, model.init(jax.random.key(3), tok))
  fn = jax.jit(rollout_lib.make_rollout(model, env, HORIZON, 10, greedy=False, record=True))
  rec = jax.device_get(fn(params, jax.tree.map(lambda x: x[1], tasks), jax.random.key(2)).transitions)
  explored = np.asarray(rec.action) != np.asarray(rec.greedy)
  assert 3 <= explored.sum() < HORIZON - 3
  data = datasets.to_device(datasets.select(jax.tree.map(lambda x: np.asarray(x)[None, None, None], rec)))
  tokens, _ = learner.gather(data, jnp.arange(HORIZON), model.num_actions)
  np.testing.assert_array_equal(np.asarray(tokens.prev_explore)[1:], explored[:-1])
  assert not bool(tokens.prev_explore[0])
  np.testing.assert_array_equal(np.argmax(np.asarray(model.apply(params, tokens)), -1), np.asarray(rec.greedy))
  unmarked = tokens.replace(prev_explore=jnp.zeros_like(tokens.prev_explore))
  assert (np.argmax(np.asarray(model.apply(params, unmarked)), -1) != np.asarray(rec.greedy)).any()


def test_cached_equals_naive_with_one_layer():
  """With one layer the sliding cache is exactly a fresh pass over the last context_len steps."""
  env, model, params, tasks = make(layers=1)
  outs = {}
  for mode in ("cached", "naive"):
    fn = jax.jit(jax.vmap(rollout_lib.make_rollout(model, env, HORIZON, 10, mode=mode, record=True),
                          in_axes=(None, 0, 0)))
    outs[mode] = jax.device_get(fn(params, tasks, jax.random.split(jax.random.key(1), 3)))
  np.testing.assert_array_equal(outs["cached"].transitions.action, outs["naive"].transitions.action)
  np.testing.assert_array_equal(outs["cached"].episode_return, outs["naive"].episode_return)


def test_sampled_actions_vary_with_the_key(two_layer):
  env, model, params, tasks = two_layer
  fn = jax.jit(jax.vmap(rollout_lib.make_rollout(model, env, HORIZON, 10, greedy=False, record=True),
                        in_axes=(None, None, 0)))
  res = jax.device_get(fn(params, jax.tree.map(lambda x: x[0], tasks), jax.random.split(jax.random.key(2), 2)))
  assert (np.asarray(res.transitions.action[0]) != np.asarray(res.transitions.action[1])).any()


def scan_carry(fn, *args):
  """The avals of the carry of the outermost lax.scan in fn's jaxpr (the rollout's per-step state)."""
  jaxpr = jax.make_jaxpr(fn)(*args)
  (eqn,) = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
  n_consts, n_carry = eqn.params["num_consts"], eqn.params["num_carry"]
  return [v.aval for v in eqn.invars[n_consts:n_consts + n_carry]]


def test_rollout_carry_does_not_grow_with_horizon(two_layer):
  """What the scan carries from step to step (KV cache, token, env state, per-episode result buffers) has
  the same shapes and bytes at 100 and at 10,000 steps; only the per-episode buffers scale, with
  max_episodes, and the KV cache holds context_len steps."""
  env, model, params, tasks = two_layer
  task = jax.tree.map(lambda x: x[0], tasks)
  carry = {h: scan_carry(rollout_lib.make_rollout(model, env, h, 10), params, task, jax.random.key(0))
           for h in (100, 10_000)}
  shapes = {h: [(a.shape, str(a.dtype)) for a in c] for h, c in carry.items()}
  assert shapes[100] == shapes[10_000]
  nbytes = lambda c: sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in c)
  assert nbytes(carry[100]) == nbytes(carry[10_000])
  cache = model.init_cache()
  assert cache.k.shape == (2, 12, 2, 8)          # layers, context_len, heads, head width
  assert any(a.shape == cache.k.shape for a in carry[100])
  more = scan_carry(rollout_lib.make_rollout(model, env, 100, 1_000), params, task, jax.random.key(0))
  grew = [(a.shape, b.shape) for a, b in zip(carry[100], more) if a.shape != b.shape]
  assert sorted(grew) == [((10,), (1_000,))] * 2       # episode returns and episode ends only


def test_bad_rollout_settings():
  env, model, params, _ = make(layers=1)
  with pytest.raises(ValueError, match="mode"):
    rollout_lib.make_rollout(model, env, 10, 1, mode="fast")
  with pytest.raises(ValueError, match="horizon"):
    rollout_lib.make_rollout(model, env, 0, 1)


def test_temperature_sharpens_sampled_actions_and_is_named_in_the_protocol():
  logits = jnp.asarray([0.0, 1.0])
  keys = jax.random.split(jax.random.key(0), 4000)
  freq = {}
  for t in (1.0, 0.5):
    act = jax.jit(jax.vmap(rollout_lib.action_fn(False, t), in_axes=(None, 0, None)))
    freq[t] = float(np.mean(np.asarray(act(logits, keys, 0)[0]) == 1))
  assert freq[1.0] == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.03)      # softmax of the logits
  assert freq[0.5] == pytest.approx(1 / (1 + np.exp(-2.0)), abs=0.03)      # softmax of logits / 0.5
  ev = ml_collections.ConfigDict(dict(greedy=False, temperature=0.5))
  assert common.protocol_of(ev) == dict(greedy=False, temperature=0.5, epsilon=0.0, epsilon_decay=0)
  assert common.describe_actions(ev) == "sampled at temperature 0.5"
  assert common.describe_actions(ml_collections.ConfigDict(dict(greedy=False))) == "sampled"
  assert common.describe_actions(ml_collections.ConfigDict(dict(greedy=True, temperature=0.5))) == "greedy"
  assert [common.actions_phrase(d) for d in ("greedy", "sampled", "sampled at temperature 0.5")] == [
      "greedy actions", "sampled actions", "actions sampled at temperature 0.5"]
  with pytest.raises(ValueError, match="^temperature: must be > 0"):
    rollout_lib.action_protocol(False, 0.0)


def test_epsilon_explores_around_the_actors_own_choice():
  """With epsilon > 0 the choice is the sample (or the argmax) and the action a uniform one with
  probability epsilon, else the choice; with epsilon 0 the action is the sample and the choice the argmax
  (what a marking model measures its exploration against). The protocol names it, and refuses epsilon
  outside [0, 1]."""
  logits = jnp.asarray([0.0, 2.0, 0.0, 0.0])
  keys = jax.random.split(jax.random.key(1), 8000)
  for greedy in (False, True):
    action, choice = (np.asarray(x) for x in jax.jit(jax.vmap(rollout_lib.action_fn(greedy, 1.0, 0.2),
                                                              in_axes=(None, 0, None)))(logits, keys, 0))
    p = np.exp(2.0) / (np.exp(2.0) + 3) if not greedy else 1.0
    assert np.mean(choice == 1) == pytest.approx(p, abs=0.02)
    assert np.mean(action != choice) == pytest.approx(0.2 * 0.75, abs=0.015)   # a uniform pick can equal it
    assert np.mean(action == 1) == pytest.approx(0.8 * p + 0.05, abs=0.02)
  action, choice = (np.asarray(x) for x in jax.vmap(rollout_lib.action_fn(False, 1.0), in_axes=(None, 0, None))(
      logits, keys, 0))
  assert (choice == 1).all() and 0.2 < np.mean(action != 1) < 0.4
  ev = ml_collections.ConfigDict(dict(greedy=False, temperature=1.0, epsilon=0.05))
  assert common.describe_actions(ev) == "sampled, epsilon 0.05 around it"
  with pytest.raises(ValueError, match=r"^epsilon: must be in \[0, 1\]"):
    rollout_lib.action_protocol(False, 1.0, 1.5)


def test_a_decaying_epsilon_falls_from_one_to_its_floor_as_the_dqns_schedule_does(two_layer):
  """epsilon_decay > 0: the exploration rate at rollout step t falls linearly from 1 (t = 0) to `epsilon`
  (t = epsilon_decay) and stays; a rollout reads it at its own step index, so at its argmax it explores
  early and, with a floor of 0, never after the decay. Named in the protocol; a negative or fractional
  decay is refused."""
  np.testing.assert_allclose([float(rollout_lib.epsilon_at(t, 0.1, 100)) for t in (0, 50, 100, 400)],
                             [1.0, 0.55, 0.1, 0.1], rtol=1e-6)
  assert float(rollout_lib.epsilon_at(7, 0.3, 0)) == pytest.approx(0.3)
  logits = jnp.asarray([0.0, 2.0, 0.0, 0.0])
  keys = jax.random.split(jax.random.key(2), 8000)
  act = jax.jit(jax.vmap(rollout_lib.action_fn(True, 1.0, 0.1, 100), in_axes=(None, 0, None)))
  for t, eps in ((0, 1.0), (50, 0.55), (300, 0.1)):
    action, choice = (np.asarray(x) for x in act(logits, keys, t))
    assert (choice == 1).all()
    assert np.mean(action != choice) == pytest.approx(eps * 0.75, abs=0.02)
  env, model, params, tasks = two_layer
  task = jax.tree.map(lambda x: x[0], tasks)
  fn = jax.jit(rollout_lib.make_rollout(model, env, HORIZON, 10, greedy=True, record=True, epsilon=0.0,
                                        epsilon_decay=HORIZON // 2))
  rec = jax.device_get(fn(params, task, jax.random.key(3)).transitions)
  off = np.asarray(rec.action) != np.asarray(rec.greedy)
  assert off[:HORIZON // 4].mean() > 0.3 and not off[HORIZON // 2:].any()
  ev = ml_collections.ConfigDict(dict(greedy=True, temperature=1.0, epsilon=0.05, epsilon_decay=1000))
  assert common.describe_actions(ev) == "greedy, epsilon from 1 to 0.05 over 1,000 steps around it"
  for bad in (-1, 2.5):
    with pytest.raises(ValueError, match="^epsilon_decay: must be a whole number"):
      rollout_lib.action_protocol(True, 1.0, 0.05, bad)


def test_prompted_rollout_acts_as_if_it_had_lived_through_the_prompt(two_layer):
  """A rollout prompted with a recorded episode: its greedy actions are the argmax of the training forward
  pass over the prompt and the rollout's own transitions as one history, and differ from an empty start."""
  env, model, params, tasks = two_layer
  task = jax.tree.map(lambda x: x[2], tasks)
  first = jax.device_get(jax.jit(rollout_lib.make_rollout(model, env, 10, 2, record=True))(
      params, task, jax.random.key(5)).transitions)
  prompt = rollout_lib.Prompt(obs=first.obs, action=first.action, reward=first.reward,
                              done=first.terminated | first.truncated)
  fn = jax.jit(rollout_lib.make_rollout(model, env, HORIZON, 10, record=True, prompted=True))
  rec = jax.device_get(fn(params, task, jax.random.key(0), prompt).transitions)
  both = jax.tree.map(lambda a, b: np.concatenate([np.asarray(a), np.asarray(b)]), first, rec)
  fd = datasets.select(jax.tree.map(lambda x: np.asarray(x)[None, None, None], both))
  tokens, _ = learner.gather(datasets.to_device(fd), jnp.arange(10 + HORIZON), model.num_actions)
  logits = np.asarray(model.apply(params, tokens))[10:]
  np.testing.assert_array_equal(np.argmax(logits, -1), np.asarray(rec.action))
  empty = jax.device_get(jax.jit(rollout_lib.make_rollout(model, env, HORIZON, 10, record=True))(
      params, task, jax.random.key(0)).transitions)
  assert (np.asarray(empty.action) != np.asarray(rec.action)).any()


def _batched_inputs(two_layer):
  env, model, params, tasks = two_layer
  params2 = jax.tree.map(lambda x: jnp.stack([x, 0.5 * x]), params)          # two "seeds"
  keys = jax.random.split(jax.random.key(5), 6).reshape(2, 3)
  return env, model, params2, tasks, keys


@pytest.mark.parametrize("chunks", [4, 3])       # 50 = 4 x 13 (last masked) and 3 x 17 (last masked)
def test_chunked_rollout_equals_one_scan(two_layer, chunks):
  """Run from the host in chunks (the last one shorter than the others), the rollout is the same, step
  for step, as one scan over the whole horizon: same returns, same episode ends."""
  env, model, params, tasks, keys = _batched_inputs(two_layer)
  one = jax.device_get(rollout_lib.make_batched_rollout(model, env, HORIZON, 10, greedy=False)(params, tasks, keys))
  roll = chunked.make_chunked_rollout(model, env, HORIZON, 10, chunks=chunks, greedy=False)
  assert HORIZON % roll.chunk != 0
  got = jax.device_get(chunked.run_chunked(roll, params, tasks, keys))
  assert np.nansum(np.asarray(one.episode_return)) > 0        # some goals found: the comparison has content
  np.testing.assert_array_equal(np.asarray(got.episode_return), np.asarray(one.episode_return))
  np.testing.assert_array_equal(np.asarray(got.episode_end), np.asarray(one.episode_end))
  np.testing.assert_array_equal(np.asarray(got.num_episodes), np.asarray(one.num_episodes))


def test_a_rollout_that_counts_episodes_stops_once_every_rollout_has_them(two_layer):
  """until_episodes=2 (of the horizon's 5): the run stops after the chunk in which the last rollout ends
  its 2nd episode, and those episodes are the whole horizon's, bit for bit; later ones are not played."""
  env, model, params, tasks, keys = _batched_inputs(two_layer)
  roll = chunked.make_chunked_rollout(model, env, HORIZON, 10, chunks=10, greedy=False)      # chunks of 5 steps
  full = jax.device_get(chunked.run_chunked(roll, params, tasks, keys))
  logs = []
  got = jax.device_get(chunked.run_chunked(roll, params, tasks, keys, until_episodes=2, log=logs.append))
  assert logs == ["rollout: every rollout has finished 2 episodes by step 20 of 50"]      # 10-step episodes
  assert np.asarray(full.num_episodes).min() == 5 and (np.asarray(got.num_episodes) == 2).all()
  for field in ("episode_return", "episode_end"):
    np.testing.assert_array_equal(np.asarray(getattr(got, field))[..., :2], np.asarray(getattr(full, field))[..., :2])
  assert np.isnan(np.asarray(got.episode_return)[..., 2:]).all() and np.isfinite(np.asarray(full.episode_return)[..., :5]).all()
  # Not yet there at the horizon's end: the whole horizon, as without it.
  again = jax.device_get(chunked.run_chunked(roll, params, tasks, keys, until_episodes=6))
  np.testing.assert_array_equal(np.asarray(again.episode_return), np.asarray(full.episode_return))


class _Killed(Exception):
  pass


def _kill_after(monkeypatch, roll, t_kill, *args, **kwargs):
  """run_chunked(roll, *args, **kwargs) stopped by an exception after the chunk that ends at step t_kill."""
  def kill(label, t, horizon):
    if t == t_kill:
      raise _Killed
  monkeypatch.setattr(chunked, "after_chunk", kill)
  with pytest.raises(_Killed):
    chunked.run_chunked(roll, *args, **kwargs)
  monkeypatch.undo()


def test_killed_chunked_rollout_resumes_from_its_checkpoint(two_layer, tmp_path, monkeypatch):
  """A rollout stopped after its second chunk resumes from the checkpoint written there (not from step
  0) and ends with the uninterrupted result; a checkpoint made from other keys is not used."""
  env, model, params, tasks, keys = _batched_inputs(two_layer)
  roll = chunked.make_chunked_rollout(model, env, HORIZON, 10, chunks=5, greedy=False)
  full = jax.device_get(chunked.run_chunked(roll, params, tasks, keys))
  path = str(tmp_path / "roll.npz")
  _kill_after(monkeypatch, roll, 2 * roll.chunk, params, tasks, keys, checkpoint=path, checkpoint_seconds=0)
  with np.load(path) as z:
    assert int(z["t"]) == 2 * roll.chunk
  logs = []
  got = jax.device_get(chunked.run_chunked(roll, params, tasks, keys, checkpoint=path, checkpoint_seconds=0,
                                               log=logs.append))
  assert any("resuming from its checkpoint at step 20" in line for line in logs), logs
  np.testing.assert_array_equal(np.asarray(got.episode_return), np.asarray(full.episode_return))
  np.testing.assert_array_equal(np.asarray(got.episode_end), np.asarray(full.episode_end))
  logs = []
  other = jax.random.split(jax.random.key(6), 6).reshape(2, 3)
  chunked.run_chunked(roll, params, tasks, other, checkpoint=path, log=logs.append)
  assert any("not used (made from other inputs)" in line for line in logs), logs


def test_models_split_into_groups_of_one_size_the_last_padded():
  got = [i.tolist() for i in chunked.split_models(5, 2)]
  assert got == [[0, 1, 2], [3, 4, 4]]
  assert [i.tolist() for i in chunked.split_models(14, 2)] == [list(range(7)), list(range(7, 14))]
  assert [i.tolist() for i in chunked.split_models(3, 8)] == [[0], [1], [2]]
  assert [i.tolist() for i in chunked.split_models(4, 1)] == [[0, 1, 2, 3]]
  assert chunked.auto_groups(3) == 3
  assert chunked.auto_groups(0) == 1         # the tests' 4 virtual CPU devices: the models are sharded instead


def test_grouped_rollout_equals_one_group_and_resumes_across_group_counts(two_layer, tmp_path, monkeypatch):
  """Three models run in two threaded groups (2 + 1, padded to 2 + 2) give the one-group result to the bit,
  also when they stop at a count of episodes; a grouped run killed after its second chunk resumes, in one
  group, from the joined checkpoint to the same result."""
  env, model, params, tasks, keys = _batched_inputs(two_layer)
  params3 = jax.tree.map(lambda x: jnp.concatenate([x, 0.25 * x[:1]]), params)
  keys3 = jax.random.split(jax.random.key(7), 9).reshape(3, 3)
  roll = chunked.make_chunked_rollout(model, env, HORIZON, 10, chunks=5, greedy=False)
  one = jax.device_get(chunked.run_chunked(roll, params3, tasks, keys3))
  two = chunked.run_chunked(roll, params3, tasks, keys3, groups=2)
  assert np.nansum(np.asarray(one.episode_return)) > 0
  for f in ("episode_return", "episode_end", "num_episodes"):
    assert np.shape(getattr(two, f)) == np.shape(getattr(one, f))
    np.testing.assert_array_equal(np.asarray(getattr(two, f)), np.asarray(getattr(one, f)), err_msg=f)
  stop1 = jax.device_get(chunked.run_chunked(roll, params3, tasks, keys3, until_episodes=2))
  stop2 = chunked.run_chunked(roll, params3, tasks, keys3, until_episodes=2, groups=3)
  np.testing.assert_array_equal(np.asarray(stop2.episode_return), np.asarray(stop1.episode_return))
  path = str(tmp_path / "roll.npz")
  _kill_after(monkeypatch, roll, 2 * roll.chunk, params3, tasks, keys3, checkpoint=path, checkpoint_seconds=0,
              groups=2)
  logs = []
  got = jax.device_get(chunked.run_chunked(roll, params3, tasks, keys3, checkpoint=path, log=logs.append))
  assert any("resuming from its checkpoint at step 20" in line for line in logs), logs
  np.testing.assert_array_equal(np.asarray(got.episode_return), np.asarray(one.episode_return))


def test_grouped_prompted_rollout_equals_one_group(two_layer):
  """Prompts [models, tasks, ...] are split with their models: three prompted models in two groups play
  the one-group episodes to the bit."""
  env, model, params, tasks = two_layer
  first = jax.device_get(jax.jit(rollout_lib.make_rollout(model, env, 10, 2, record=True))(
      params, jax.tree.map(lambda x: x[2], tasks), jax.random.key(5)).transitions)
  prompt = rollout_lib.Prompt(obs=first.obs, action=first.action, reward=first.reward,
                              done=first.terminated | first.truncated)
  n_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  prompts = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (3, n_tasks) + np.shape(x)).copy(), prompt)
  params3 = jax.tree.map(lambda x: jnp.stack([x, 0.5 * x, 0.25 * x]), params)
  keys3 = jax.random.split(jax.random.key(8), 3 * n_tasks).reshape(3, n_tasks)
  roll = chunked.make_chunked_rollout(model, env, HORIZON, 10, chunks=5, greedy=False, prompted=True)
  one = jax.device_get(chunked.run_chunked(roll, params3, tasks, keys3, prompts))
  two = chunked.run_chunked(roll, params3, tasks, keys3, prompts, groups=2)
  assert np.isfinite(np.asarray(one.episode_return)).any()
  for f in ("episode_return", "episode_end", "num_episodes"):
    np.testing.assert_array_equal(np.asarray(getattr(two, f)), np.asarray(getattr(one, f)), err_msg=f)
