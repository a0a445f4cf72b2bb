"""MinAtar teachers: the :smoke preset runs through the teacher stage; a CPU Breakout DQN learns (slow)."""
import os

import jax
import numpy as np
import pytest

from cl_limits import envs
from cl_limits.histories import store
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.teachers import dqn
from cl_limits.stages.pipeline import run_stage
from experiments.configs import minatar as minatar_config


def test_smoke_preset_records_bit_packed_compressed_histories(tmp_path):
  config = minatar_config.get_config("smoke-SpaceInvaders")
  run_stage(config, str(tmp_path), "teachers", log=lambda _: None)
  paths = {"histories": os.path.join(str(tmp_path), "teachers", "histories")}
  history, manifest = store.load(paths["histories"])
  assert manifest["env"] == "MinAtar-SpaceInvaders"
  assert history.obs.shape == (2, 1, 2, 1_000, 10, 10, 7) and history.obs.dtype == np.bool_
  assert history.obs.any()
  on_disk = sum(os.path.getsize(os.path.join(paths["histories"], f)) for f in os.listdir(paths["histories"]))
  steps = 2 * 2_000                      # seeds x env steps per learner
  assert on_disk / steps < 700 / 4       # far below one byte per observation cell


def last_episodes(episode_return, n):
  """Mean of the last n finished episodes of a learner, ordered by the step they ended at
  (episode_return [streams, T], nan where no episode ended)."""
  t = np.broadcast_to(np.arange(episode_return.shape[-1]), episode_return.shape)
  done = np.isfinite(episode_return)
  order = np.argsort(t[done], kind="stable")
  return float(episode_return[done][order][-n:].mean())


@pytest.mark.slow
def test_cpu_breakout_dqn_beats_random_threefold():
  """The CPU preset's DQN (100k steps, about 2 minutes on 2 cores): mean return over its last 50 training
  episodes at least 3x a random policy's mean over 200 episodes."""
  env = envs.make("MinAtar-Breakout")
  cfg = minatar_config.get_config("").teacher.dqn
  teacher = dqn.make_teacher(cfg, env)
  _, _, metrics = jax.jit(teacher.train)(jax.random.key(0), env.default_params)
  learned = last_episodes(np.asarray(metrics["episode_return"]), 50)
  rnd = jax.device_get(rollout_lib.make_random_rollout(env, 20_000, 2_000)(
      jax.tree.map(lambda x: np.asarray(x)[None], env.default_params), jax.random.split(jax.random.key(1), 4)[:, None]))
  r = np.asarray(rnd.episode_return)
  random_mean = float(np.nanmean(r[np.isfinite(r)][:200]))
  print(f"Breakout DQN last-50 {learned:.2f}, random {random_mean:.2f}")
  assert random_mean > 0
  assert learned >= 3 * random_mean, (learned, random_mean)


def test_scripted_ball_tracking_spans_breakouts_returns():
  """experiments.breakout_policies' ladder (BUILD_NOTES): tracking the ball from row 2 on misses nothing and
  plays one episode to gymnax's 1,000-step cut (84 bricks); from row 3 it misses after 180 steps (16);
  from row 9 it scores under 1 an episode, as the uniform random policy does."""
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from experiments import breakout_policies as bp  # noqa: PLC0415
  env = bp.SharedMinAtar("Breakout")
  key = jax.random.PRNGKey(0)
  full, len_full = (np.asarray(x) for x in bp.episodes(env, bp.from_row(2), key, 1100, 4))
  assert full[0] == 84.0 and len_full[0] == 1000
  three, len_three = (np.asarray(x) for x in bp.episodes(env, bp.from_row(3), key, 1100, 8))
  assert three[0] == 16.0 and len_three[0] == 180
  late, _ = bp.episodes(env, bp.from_row(9), key, 1100, 200)
  assert np.nanmean(np.asarray(late)) < 1.0


def test_breakouts_scripted_learner_climbs_its_ladder_in_its_own_stream():
  """`imitation.ad_eps.demonstrator='searcher'` in Breakout: a stream of the ladder (one row higher up after
  every episode) finishes episodes 2-7 with returns 1, 1, 1, 1, 3, 16, then keeps every ball until gymnax's
  cut (84 in 1,000 steps); its recorded greedy action is the action it took (no noise); its continuation past
  a cut is the same stream's steps; the other games have no searcher."""
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from cl_limits.envs.minatar import SharedMinAtar  # noqa: PLC0415
  from cl_limits.histories import adeps  # noqa: PLC0415
  env = SharedMinAtar("Breakout")
  gen = adeps.make_generate(env, 1600, 1, 0.0, 0.0, demonstrator="searcher")
  h = jax.tree.map(lambda x: np.asarray(x[0]), jax.jit(gen)(jax.random.PRNGKey(3), env.default_params))
  ends = np.flatnonzero(h.terminated | h.truncated)
  rets = [h.reward[a + 1:b + 1].sum() for a, b in zip(np.r_[-1, ends[:-1]], ends)]
  assert rets[1:7] == [1, 1, 1, 1, 3, 16] and rets[7] == 84 and ends[7] - ends[6] == 1000
  np.testing.assert_array_equal(h.greedy, h.action)
  cont = adeps.make_generate(env, 600, 1, 0.0, 0.0, start=1000, schedule_steps=1600, demonstrator="searcher")
  c = jax.tree.map(lambda x: np.asarray(x[0]), jax.jit(cont)(jax.random.PRNGKey(3), env.default_params))
  np.testing.assert_array_equal(c.action, h.action[1000:])
  assert not hasattr(SharedMinAtar("SpaceInvaders"), "search_start")
