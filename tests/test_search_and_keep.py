"""Finding versus keeping the goal (`curves.search_and_keep`, `experiments/search_and_keep.py`)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from cl_limits.analysis import curves


def test_hit_rates_after_a_hit_and_after_a_miss_count_consecutive_episodes():
  # rollout 0: hit, miss, hit, hit, miss; rollout 1: miss, miss, miss, miss, hit
  r = np.array([[2.0, 0.0, 4.0, 6.0, 0.0], [0.0, 0.0, 0.0, 0.0, 3.0]])
  s = curves.search_and_keep(r)
  np.testing.assert_allclose(s["found"], [0.5, 0.0, 0.5, 0.5, 0.5])
  assert s["after_hit"] == pytest.approx(1 / 3)     # hit->miss, hit->hit, hit->miss
  assert s["after_miss"] == pytest.approx(2 / 5)    # miss->hit (rollout 0); miss x3 -> miss, miss->hit (1)
  assert s["return_if_found"] == pytest.approx((2 + 4 + 6 + 3) / 4)
  assert curves.search_and_keep(np.zeros((3, 4)))["after_hit"] is None
  with pytest.raises(ValueError, match="at least 2 consecutive episodes"):
    curves.search_and_keep(np.ones((3, 1)))


def _script(*args):
  return subprocess.run([sys.executable, "-m", "experiments.search_and_keep",
                         "--config=experiments/configs/darkroom.py:smoke", *args],
                        capture_output=True, text=True, timeout=600)


def test_the_script_reads_every_p2_row_of_a_finished_run_beside_the_random_policy(smoke_pipeline, tmp_path):
  workdir = smoke_pipeline[0]
  res = _script(f"--workdir={workdir}", "--random_episodes=50")
  assert res.returncode == 0, res.stderr[-2000:]
  lines = res.stdout.splitlines()
  rand = [ln for ln in lines if ln.startswith("uniform random policy, 50 episodes")]
  assert len(rand) == 1
  z = np.load(os.path.join(workdir, "p2", "returns.npz"))
  rows = [k.split("/")[0] for k in z.files if k.endswith("/competence_return")]
  assert rows
  for row in rows:                                    # each row's figures are those of its saved rollouts
    s = curves.search_and_keep(z[f"{row}/competence_return"])
    line = next(ln for ln in lines if ln.startswith(f"{row} ("))
    miss = "n/a" if s["after_miss"] is None else f"{s['after_miss']:.2f}"
    assert f"after a miss {miss} (random:" in line
  bad = _script(f"--workdir={tmp_path}")
  assert bad.returncode != 0 and "no finished P2 stage" in bad.stderr
