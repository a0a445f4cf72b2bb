"""experiments/search_and_keep.py: finding versus keeping the goal, from consecutive episodes' returns."""
import numpy as np
import pytest

from experiments import search_and_keep as sk


def test_hit_rates_after_a_hit_and_after_a_miss_count_consecutive_episodes():
  # rollout 0: hit, miss, hit, hit, miss; rollout 1: miss, miss, miss, miss, hit
  r = np.array([[2.0, 0.0, 4.0, 6.0, 0.0], [0.0, 0.0, 0.0, 0.0, 3.0]])
  s = sk.search_and_keep(r)
  np.testing.assert_allclose(s["found"], [0.5, 0.0, 0.5, 0.5, 0.5])
  assert s["after_hit"] == pytest.approx(1 / 3)     # hit->miss, hit->hit, hit->miss
  assert s["after_miss"] == pytest.approx(2 / 5)    # miss->hit (rollout 0); miss x3 -> miss, miss->hit (1)
  assert s["return_if_found"] == pytest.approx((2 + 4 + 6 + 3) / 4)
  assert sk.search_and_keep(np.zeros((3, 4)))["after_hit"] is None
  with pytest.raises(ValueError, match="at least 2 consecutive episodes"):
    sk.search_and_keep(np.ones((3, 1)))


def test_random_policy_returns_have_one_row_per_task_and_sometimes_reach_the_goal():
  from cl_limits.stages import common  # noqa: PLC0415
  from experiments.configs import darkroom  # noqa: PLC0415
  config = darkroom.get_config("")
  env = common.env_of(config)
  tasks, _ = common.teacher_tasks(config, env)
  r = sk.random_returns(env, common.first(tasks, 3), 60)
  assert r.shape == (3, 60) and (r >= 0).all() and (r <= common.episode_length(env)).all()
  assert 0 < (r > 0).mean() < 0.5                   # uniform random play on a 9x9 room: sometimes, rarely
