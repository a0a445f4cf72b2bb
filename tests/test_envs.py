import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cl_limits import envs
from cl_limits.envs import minatar


def oracle_return(env, params, key, steps):
  """Return of the oracle's first episode, and the done flags of every step."""
  def step(carry, k):
    obs, state, ret, alive = carry
    a = env.optimal_action(state, params)
    obs, state, r, term, trunc, _ = env.step(k, state, a, params)
    done = jnp.logical_or(term, trunc)
    return (obs, state, ret + r * alive, alive & ~done), done
  obs, state = env.reset(key, params)
  (_, _, ret, _), dones = jax.lax.scan(step, (obs, state, 0.0, jnp.array(True)),
                                       jax.random.split(key, steps))
  return ret, dones


def random_return(env, params, key, steps):
  def step(carry, k):
    obs, state, ret = carry
    ka, ks = jax.random.split(k)
    a = jax.random.randint(ka, (), 0, env.num_actions)
    obs, state, r, term, trunc, _ = env.step(ks, state, a, params)
    return (obs, state, ret + r), None
  obs, state = env.reset(key, params)
  (_, _, ret), _ = jax.lax.scan(step, (obs, state, 0.0), jax.random.split(key, steps))
  return ret


def test_darkroom_oracle_attains_optimal_return_on_every_goal():
  env = envs.make("DarkRoom")
  tasks = env.all_tasks()
  rets, dones = jax.vmap(lambda p: oracle_return(env, p, jax.random.key(0), 20))(tasks)
  opt = jax.vmap(env.optimal_return)(tasks)
  np.testing.assert_allclose(rets, opt)
  assert float(opt.max()) == 20.0 and float(opt.min()) == 13.0  # center goal, corner goals
  assert bool(dones[:, -1].all()) and not bool(dones[:, :-1].any())  # fixed length 20, truncated


def test_darkroom_step_semantics():
  env = envs.make("DarkRoom", size=5, episode_len=4)
  params = env.default_params.replace(goal=jnp.array([3, 2]))
  obs, s = env.reset(jax.random.key(0), params)
  np.testing.assert_array_equal(obs, [2, 2])
  seq = [(3, [3, 2], 1.0), (0, [3, 2], 1.0), (3, [4, 2], 0.0)]
  for a, pos, r in seq:
    obs, s, rew, term, trunc, _ = env.step(jax.random.key(1), s, a, params)
    np.testing.assert_array_equal(obs, pos)
    assert float(rew) == r and not bool(term) and not bool(trunc)
  obs, s, rew, term, trunc, info = env.step(jax.random.key(1), s, 3, params)  # wall: stays at x=4
  np.testing.assert_array_equal(info["final_observation"], [4, 2])
  assert bool(trunc) and not bool(term)
  np.testing.assert_array_equal(obs, [2, 2])  # auto-reset to the start cell


def test_darkroom_hard_pays_once():
  env = envs.make("DarkRoomHard")
  assert env.size == 17
  params = env.default_params.replace(goal=jnp.array([8, 10]))
  ret, _ = oracle_return(env, params, jax.random.key(0), 20)
  assert float(ret) == 1.0 == float(env.optimal_return(params))


def test_key_to_door_oracle_and_termination():
  env = envs.make("DarkKeyToDoor")
  tasks = envs.select_tasks(env.all_tasks(), np.arange(0, 6480, 97))
  rets, dones = jax.vmap(lambda p: oracle_return(env, p, jax.random.key(0), 50))(tasks)
  np.testing.assert_allclose(rets, 2.0)
  np.testing.assert_allclose(jax.vmap(env.optimal_return)(tasks), 2.0)
  assert bool(dones.any(axis=1).all())  # opening the door ends the episode before the time limit


def test_random_policy_is_far_below_optimal():
  env = envs.make("DarkRoom")
  tasks = env.all_tasks()
  keys = jax.random.split(jax.random.key(3), 81)
  rets = jax.vmap(lambda p, k: random_return(env, p, k, 200))(tasks, keys) / 10  # per episode
  assert float(rets.mean()) < 0.15 * float(jax.vmap(env.optimal_return)(tasks).mean())


def test_task_split_is_reproducible_and_disjoint():
  env = envs.make("DarkRoom")
  tr1, he1 = envs.task_split(env, seed=3, heldout_fraction=0.25)
  tr2, he2 = envs.task_split(env, seed=3, heldout_fraction=0.25)
  chex.assert_trees_all_equal(tr1, tr2)
  chex.assert_trees_all_equal(he1, he2)
  g_tr = {tuple(g) for g in np.asarray(tr1.goal)}
  g_he = {tuple(g) for g in np.asarray(he1.goal)}
  assert len(g_he) == 20 and len(g_tr) == 61 and not g_tr & g_he
  _, he3 = envs.task_split(env, seed=4, heldout_fraction=0.25)
  assert {tuple(g) for g in np.asarray(he3.goal)} != g_he


@pytest.mark.parametrize("game", sorted(minatar.GAMES))
def test_minatar_shared_interface(game):
  env = envs.make(f"MinAtar-{game}")
  obs, state = env.reset(jax.random.key(0), env.default_params)
  assert obs.shape == (10, 10, minatar.NUM_CHANNELS) and obs.dtype == jnp.bool_
  assert env.num_actions == 6
  # Actions outside the game's minimal set act exactly as a no-op.
  noop = env.step(jax.random.key(1), state, 0, env.default_params)
  for a in range(6):
    if a not in env.minimal_actions:
      out = env.step(jax.random.key(1), state, a, env.default_params)
      chex.assert_trees_all_equal(out[:5], noop[:5])
  # Padded channels stay empty.
  assert not bool(obs[..., env.inner.obs_shape[-1]:].any())


def test_unknown_env_names_the_choices():
  with pytest.raises(ValueError, match="unknown env 'Darkroom'.*DarkRoom"):
    envs.make("Darkroom")
  with pytest.raises(ValueError, match="bad kwargs for env 'DarkRoom'"):
    envs.make("DarkRoom", colour="red")


def test_random_projection_is_fixed_per_key_and_vmaps_over_tasks():
  base = envs.make("DarkRoom")
  env = envs.RandomProjection(base, out_dim=8)
  p1 = env.sample_params(jax.random.key(1))
  p1b = env.sample_params(jax.random.key(1))
  p2 = env.sample_params(jax.random.key(2))
  chex.assert_trees_all_equal(p1, p1b)
  o1, _ = env.reset(jax.random.key(0), p1)
  o2, _ = env.reset(jax.random.key(0), p2)
  assert o1.shape == (8,) and not np.allclose(o1, o2)
  np.testing.assert_allclose(o1, base.features(jnp.array([4, 4])) @ p1.matrix, rtol=1e-6)
  batched = jax.vmap(env.sample_params)(jax.random.split(jax.random.key(0), 3))
  obs, _ = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 3), batched)
  assert obs.shape == (3, 8)


def test_action_permutation_keeps_the_task_solvable_by_its_oracle():
  base = envs.make("DarkRoom")
  env = envs.ActionPermutation(base)
  params = env.sample_params(jax.random.key(5), base.default_params.replace(goal=jnp.array([0, 7])))
  assert sorted(np.asarray(params.perm).tolist()) == list(range(5))
  assert not np.array_equal(params.perm, np.arange(5))
  ret, _ = oracle_return(env, params, jax.random.key(0), 20)
  assert float(ret) == float(env.optimal_return(params)) == 14.0  # 20 - (4 + 3) + 1
  _, s = env.reset(jax.random.key(0), params)
  a = int(np.argmax(np.asarray(params.perm) == 3))  # the wrapper action that moves right
  obs, *_ = env.step(jax.random.key(0), s, a, params)
  np.testing.assert_array_equal(obs, [5, 4])
