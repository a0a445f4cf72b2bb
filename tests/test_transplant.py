"""MinAtar leave-one-game-out transplant (experiments/configs/transplant.py:smoke) end to end, and the
task augmentation it trains with."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cl_limits import envs
from cl_limits.stages import layout, transplant
from cl_limits.envs import wrappers
from cl_limits.imitation import learner
from cl_limits.models.transformer import Tokens
from pinned.collect import compare
from experiments.configs import transplant as transplant_config


@pytest.fixture(scope="module")
def finished(transplant_pipeline):
  return transplant_pipeline


def test_report_has_p3_rows_for_raw_augmented_and_hybrid_learners(finished):
  workdir, report, _ = finished
  text = open(report).read()
  table = text.split("## Verdicts")[1].split("\n\n")[1]
  rows = [line for line in table.splitlines() if line.startswith("| P3 transplant to Breakout")]
  assert len(rows) == 3, table
  assert any("frozen imitator (raw frames)" in r for r in rows)
  assert any("frozen imitator (augmented)" in r for r in rows)
  assert any("test-time SGD (full)" in r for r in rows)
  # The transplant has no P3 positive control, so a "supported" is not counted.
  assert all(any(v in r for v in ("**not counted: the P3 positive control did not refute (this study has none)**",
                                  "**refuted**", "**inconclusive**")) for r in rows)
  assert os.path.getsize(os.path.join(workdir, "holdout", "Breakout", "p3", "curves.png")) > 5000
  assert os.listdir(os.path.join(workdir, "tb", "transplant", "Breakout", "all"))
  s = layout.summary(workdir, "transplant")
  e = s["targets"]["Breakout"]
  assert e["trained_on"] == ["Asterix"] and e["horizon_steps"] == 8_000
  # The DQN beat the random policy, so every learner is normalised; the DQN's final is 1 by construction.
  assert e["tasks_used"] == 1
  assert e["learners"]["dqn"]["final"][0] == pytest.approx(1.0)
  # Each learner's normalised final, recomputed here from its saved rollouts: the mean return of the
  # episodes ending in each DQN logging window over the last 10% of the windows, scaled so that the random
  # policy is 0 and the DQN's final return is 1; per model seed (replicate) the mean over its rollouts,
  # then the mean over seeds.
  from cl_limits.analysis import curves  # noqa: PLC0415
  z = np.load(os.path.join(workdir, "holdout", "Breakout", "p3", "returns.npz"))
  lo, hi = e["random_return"][0], e["dqn_final_return"][0]
  bins, late = e["bins"], e["late_bins"]
  for k in ("raw", "aug", "aug+sgd_full"):
    c = curves.binned_curve(z[f"{k}/episode_return"], z[f"{k}/episode_end"], e["bin_steps"], bins)
    final = (np.nanmean(c[..., -late:], -1) - lo) / (hi - lo)                    # [seeds, rollouts]
    assert e["learners"][k]["final_per_replicate"] == pytest.approx(final.mean(-1).tolist())
    assert e["learners"][k]["final"][0] == pytest.approx(final.mean())


def test_the_held_out_game_is_never_in_the_imitation_data(finished):
  workdir, _, _ = finished
  data = json.load(open(os.path.join(workdir, "holdout", "Breakout", "imitators", "data.json")))
  assert data["teacher_histories"]["env"] == ["MinAtar-Asterix"]
  assert data["arms"]["aug"]["augment"] is True and data["arms"]["raw"]["augment"] is False
  assert all("Breakout" not in p for p in data["teacher_histories"]["sources"])


def test_finished_run_only_prints_its_report(finished):
  from cl_limits.stages.pipeline import run as run_pipeline  # noqa: PLC0415
  workdir, report, _ = finished
  logs = []
  assert run_pipeline(transplant_config.get_config("smoke"), workdir, log=logs.append) == report
  assert logs == [f"[pipeline] finished run; report: {report}"]


@pytest.mark.parametrize("field,value,msg", [
    ("games", "Breakout", "transplant.games"),
    ("games", "Breakout,Pong", "transplant.games"),
    ("heldout", "Freeway", "transplant.heldout"),
    ("arms", "raw,bc", "transplant.arms"),
    ("repeats", 0, "transplant.repeats"),
])
def test_bad_transplant_config_names_the_field(field, value, msg):
  cfg = ml_collections.ConfigDict(transplant_config.get_config("smoke").to_dict())
  cfg.transplant[field] = value
  with pytest.raises(ValueError, match=msg):
    transplant.validate(cfg)


def test_augmented_window_matches_the_wrapped_env():
  """A window augmented with (M, perm) is what an agent in RandomProjection(ActionPermutation(game)) with
  the same M and perm would have seen and done: projected frames, and actions a with perm[a] = recorded."""
  env = envs.make("MinAtar-Breakout")
  num_actions = 6
  rng = np.random.default_rng(0)
  t = 5
  obs = jnp.asarray(rng.random((t, 10, 10, 7)) < 0.1)
  prev = jnp.asarray([6, 0, 5, 3, 1], jnp.int32)               # 6 = "no previous action"
  labels = jnp.asarray([0, 5, 3, 1, 2], jnp.int32)
  tokens = Tokens(obs=obs, prev_action=prev, prev_reward=jnp.zeros(t), prev_done=jnp.zeros(t, bool))
  key = jax.random.key(3)
  out, lab = learner.augment_window(key, tokens, labels, num_actions, jnp.bool_(True))
  k_m, k_p = jax.random.split(key)
  perm = np.asarray(jax.random.permutation(k_p, num_actions))
  np.testing.assert_array_equal(perm[np.asarray(lab)], np.asarray(labels))
  np.testing.assert_array_equal(perm[np.asarray(out.prev_action)[1:]], np.asarray(prev)[1:])
  assert int(out.prev_action[0]) == num_actions
  aug_env = wrappers.augmented(env)
  matrix = jax.random.normal(k_m, (700, 700)) / jnp.sqrt(700.0)
  params = wrappers.ProjectionParams(wrappers.PermutationParams(env.default_params, jnp.asarray(perm)), matrix)
  np.testing.assert_allclose(np.asarray(out.obs[2]), np.asarray(aug_env._project(obs[2], params)), rtol=1e-5,
                             atol=1e-5)
  plain, lab0 = learner.augment_window(key, tokens, labels, num_actions, jnp.bool_(False))
  np.testing.assert_array_equal(np.asarray(plain.obs), np.asarray(obs).reshape(t, -1).astype(np.float32))
  np.testing.assert_array_equal(np.asarray(lab0), np.asarray(labels))


def test_reproduces_the_pinned_numbers(finished):
  """tests/pinned/transplant_smoke.json, as for the main job (tests/test_pipeline.py)."""
  compare(finished[0], "transplant_smoke.json")


def test_each_spec_field_reruns_exactly_the_steps_that_read_it_and_their_downstream(finished):
  from test_pipeline import spec_fields_rerun_exactly_their_stages  # noqa: PLC0415
  assert spec_fields_rerun_exactly_their_stages(transplant_config.get_config("smoke"), finished[0]) > 50
