"""The DQN teacher: probe environments with known Q-values, seeds, DarkRoom learning, config checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cl_limits import envs
from cl_limits.histories.history import learner_curve
from cl_limits.teachers import dqn, population
from conftest import tiny_dqn

GAMMA = 0.5


def train_probe(name, **env_kw):
  env = envs.make(name, **env_kw)
  teacher = dqn.make_teacher(tiny_dqn(gamma=GAMMA), env)
  state, history, _ = jax.jit(teacher.train)(jax.random.key(0), env.default_params)
  q = lambda o: np.asarray(teacher.q_fn(state.params, jnp.array([[o]], jnp.float32))[0])
  return q, history


def test_one_step_reward_probe():
  q, _ = train_probe("Probe-OneStepReward")
  np.testing.assert_allclose(q(0.0), [0.0, 1.0], atol=0.05)


def test_two_step_discounted_chain_probe():
  q, _ = train_probe("Probe-TwoStepChain")
  np.testing.assert_allclose(q(0.0), [GAMMA, GAMMA], atol=0.05)
  np.testing.assert_allclose(q(1.0), [1.0, 1.0], atol=0.05)


def test_truncation_bootstraps_termination_does_not():
  q_trunc, h = train_probe("Probe-ConstantReward", length=2, terminate=False)
  assert bool(np.asarray(h.truncated).any()) and not bool(np.asarray(h.terminated).any())
  np.testing.assert_allclose(q_trunc(0.0), [1 / (1 - GAMMA)] * 2, atol=0.08)  # 2.0
  # Terminating every second step without the time in the obs: Q = 1 + 0.25 Q  =>  Q = 4/3.
  q_term, h = train_probe("Probe-ConstantReward", length=2, terminate=True)
  assert bool(np.asarray(h.terminated).any())
  np.testing.assert_allclose(q_term(0.0), [4 / 3] * 2, atol=0.08)


def test_history_records_time_order_episodes_and_updates():
  env = envs.make("Probe-ConstantReward", length=3)
  cfg = tiny_dqn(num_envs=2, total_steps=600, segment_steps=200, learning_starts=100, train_every=2)
  _, h, _ = jax.jit(dqn.make_train(cfg, env))(jax.random.key(0), env.default_params)
  assert h.action.shape == (2, 300)
  ep = np.asarray(h.episode[0])
  np.testing.assert_array_equal(ep, np.arange(300) // 3)
  np.testing.assert_array_equal(np.asarray(h.truncated[0]), (np.arange(300) % 3) == 2)
  upd = np.asarray(h.update[0])
  # One update per train_every=2 learner steps = one per env iteration, starting at 100 learner steps.
  assert upd[0] == 0 and np.all(np.diff(upd) >= 0) and upd[-1] == 300 - 50


def test_history_records_the_behaviour_policy():
  """Every step records the greedy action and the epsilon it was taken under (the schedule at that learner
  step), and the recorded action equals the greedy one at the rate epsilon-greedy implies."""
  env = envs.make("DarkRoom", size=5)
  cfg = tiny_dqn(num_envs=2, total_steps=4_000, segment_steps=2_000, eps_start=1.0, eps_end=0.2,
                 eps_anneal_steps=2_000)
  teacher = dqn.make_teacher(cfg, env)
  _, h, _ = jax.jit(teacher.train)(jax.random.key(1), env.default_params)
  eps, greedy, action = np.asarray(h.epsilon), np.asarray(h.greedy), np.asarray(h.action)
  steps = np.arange(eps.shape[1]) * 2                      # learner steps before each stream step
  np.testing.assert_allclose(eps[0], np.asarray(teacher.epsilon(steps)), rtol=1e-6)
  late = np.isclose(eps, 0.2)
  agree = (action == greedy)[late].mean()
  assert abs(agree - (0.8 + 0.2 / 5)) < 0.03, agree       # 1 - eps + eps / A
  assert ((greedy >= 0) & (greedy < 5)).all()


def test_seeds_are_independent():
  env = envs.make("DarkRoom", size=5)
  teacher = dqn.make_teacher(tiny_dqn(total_steps=2_000, segment_steps=2_000, eps_end=0.1), env)
  keys = jax.random.split(jax.random.key(0), 3)
  state, h, _ = jax.jit(jax.vmap(teacher.train, in_axes=(0, None)))(keys, env.default_params)
  init = jax.jit(jax.vmap(teacher.init, in_axes=(0, None)))(keys, env.default_params)
  k0 = jax.tree.leaves(init.params)[1]
  for a, b in [(0, 1), (0, 2), (1, 2)]:
    assert not np.allclose(k0[a], k0[b]), "initial weights must differ between seeds"
    assert not np.array_equal(h.action[a], h.action[b]), "exploration must differ between seeds"
    assert not np.array_equal(h.reward[a], h.reward[b]), "curves must differ between seeds"


def check_darkroom_teachers(d):
  env, tasks, teacher = d["env"], d["tasks"], d["teacher"]
  ev = jax.jit(jax.vmap(lambda p, ep, k: population.greedy_returns(env, teacher.q_fn, p, ep, k, 1, 20)))
  greedy = np.asarray(ev(d["state"].params, tasks, d["keys"]))[:, 0]
  optimal = np.asarray(jax.vmap(env.optimal_return)(tasks))
  frac = greedy / optimal
  goals = np.asarray(tasks.goal).tolist()
  assert frac.min() >= 0.9, f"goals below 90% of optimal: {[goals[i] for i in np.flatnonzero(frac < 0.9)]}"
  n = len(goals)
  curves = [learner_curve(jax.tree.map(lambda a: a[i], d["history"]))[1] for i in range(n)]
  first = np.mean([c[:20].mean() for c in curves])
  last = np.mean([c[-20:].mean() for c in curves])
  # A random policy earns about 0.2 a 20-step episode here (test_envs); the oracle 16.5.
  assert first < 1.0, f"teachers start at {first:.2f}, not near random"
  assert last > 0.85 * optimal.mean(), f"teachers end at {last:.2f} of optimal {optimal.mean():.2f}"


def test_darkroom_teachers_solve_a_lattice_of_goals_and_start_near_random(darkroom_lattice_goals):
  # corners, edge middles and the centre (the farthest goals and the nearest): the default suite's check
  assert len(darkroom_lattice_goals["keys"]) == 9
  check_darkroom_teachers(darkroom_lattice_goals)


@pytest.mark.slow
def test_darkroom_teachers_solve_every_goal_and_start_near_random(darkroom_all_goals):
  assert len(darkroom_all_goals["keys"]) == 81
  check_darkroom_teachers(darkroom_all_goals)


@pytest.mark.parametrize("field,value,msg", [
    ("total_steps", -5, "dqn.total_steps: must be a positive integer"),
    ("train_every", 3, "dqn.train_every: must be a multiple of num_envs"),
    ("segment_steps", 3000, "dqn.total_steps: must be a multiple of segment_steps"),
    ("torso", "resnet", "dqn.torso"),
    ("buffer_size", 2, "dqn.buffer_size"),
])
def test_bad_dqn_config_names_the_field(field, value, msg):
  cfg = tiny_dqn()
  cfg[field] = value
  with pytest.raises(ValueError, match=msg.replace(".", r"\.")):
    dqn.make_teacher(cfg, envs.make("DarkRoom"))


def test_conv_torso_on_vector_obs_is_refused():
  with pytest.raises(ValueError, match="dqn.torso.*image observations"):
    dqn.make_teacher(tiny_dqn(torso="conv"), envs.make("DarkRoom"))


def test_learner_curve_orders_streams_by_env_step():
  from cl_limits.histories.history import History
  r = np.array([[1, 1, 0, 2], [0, 3, 3, 0]], np.float32)
  trunc = np.array([[0, 1, 0, 1], [1, 0, 1, 0]], bool)
  z = np.zeros_like(r)
  h = History(obs=z, action=z, reward=r, terminated=np.zeros_like(trunc), truncated=trunc, episode=z, update=z)
  x, y = learner_curve(h)
  np.testing.assert_array_equal(x, [2, 4, 6, 8])
  np.testing.assert_array_equal(y, [0, 2, 6, 2])


def test_conv_torso_on_minatar_records_boolean_history():
  env = envs.make("MinAtar-Breakout")
  cfg = tiny_dqn(torso="conv", hidden=(32,), total_steps=400, segment_steps=200, learning_starts=100,
                 buffer_size=200, gamma=0.99, loss="huber")
  teacher = dqn.make_teacher(cfg, env)
  state, h, m = jax.jit(teacher.train)(jax.random.key(0), env.default_params)
  assert h.obs.shape == (4, 100, 10, 10, 7) and h.obs.dtype == jnp.bool_
  assert state.replay.obs.dtype == jnp.bool_  # replay stays compact too
  assert np.isfinite(np.asarray(m["loss"])[-1])
  assert int(state.updates) == (400 - 100) // 4 + 1


def _next_obs_darkroom(h, size):
  """The real next observation of every recorded DarkRoom step [E, T]: the move's result (the grid is
  deterministic; at an episode's end this is the last cell, not the reset's)."""
  from cl_limits.envs.grid import _move  # noqa: PLC0415
  move = jax.vmap(jax.vmap(lambda o, a: _move(o.astype(jnp.int32), a, size).astype(o.dtype)))
  return np.asarray(move(jnp.asarray(h.obs), jnp.asarray(h.action)))


def test_a_dqn_following_its_own_history_makes_its_own_choices_again():
  """`follow`: a fresh DQN with the teacher's key, fed the teacher's own recorded transitions instead of
  acting, learns as the teacher did, so its greedy action equals the recorded one at every step; with
  another key (other initial weights and replay draws) it learns its own way and its choices differ."""
  env = envs.make("DarkRoom", size=5)
  cfg = tiny_dqn(num_envs=2, total_steps=4_000, segment_steps=2_000, eps_end=0.1, eps_anneal_steps=2_000,
                 gamma=0.9)
  teacher = dqn.make_teacher(cfg, env)
  _, h, _ = jax.jit(teacher.train)(jax.random.key(3), env.default_params)
  stream = dqn.Transitions(obs=h.obs, action=h.action, reward=h.reward, terminated=h.terminated,
                           next_obs=_next_obs_darkroom(h, 5))
  follow = jax.jit(teacher.follow)
  again = np.asarray(follow(jax.random.key(3), env.default_params, stream))
  assert again.shape == np.asarray(h.greedy).shape
  np.testing.assert_array_equal(again, np.asarray(h.greedy))
  other = np.asarray(follow(jax.random.key(4), env.default_params, stream))
  assert (other != np.asarray(h.greedy)).mean() > 0.05


def test_follow_learns_where_its_stream_was_rewarded():
  """A DQN following a random walk's stream on DarkRoom with the goal at a corner ends greedy toward the
  goal from the cells next to it (it learns from transitions it did not choose, as Q-learning can)."""
  env = envs.make("DarkRoom", size=5)
  params = env.default_params                    # goal at (4, 4)
  cfg = tiny_dqn(num_envs=2, total_steps=6_000, segment_steps=6_000, gamma=0.9)   # epsilon 1: random
  teacher = dqn.make_teacher(cfg, env)
  _, h, _ = jax.jit(teacher.train)(jax.random.key(5), params)
  stream = dqn.Transitions(obs=h.obs, action=h.action, reward=h.reward, terminated=h.terminated,
                           next_obs=_next_obs_darkroom(h, 5))
  greedy = np.asarray(jax.jit(teacher.follow)(jax.random.key(6), params, stream))
  obs = np.asarray(h.obs)
  late = np.zeros(greedy.shape, bool)
  late[:, -1_000:] = True
  from cl_limits.envs.grid import MOVES  # noqa: PLC0415
  beside = late & (obs[..., 0] == 3) & (obs[..., 1] == 4)      # the cell beside the goal, x one short
  assert beside.sum() > 5
  np.testing.assert_array_equal(MOVES[greedy[beside]], np.tile([1, 0], (int(beside.sum()), 1)))
