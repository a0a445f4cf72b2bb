"""The Breakout study (experiments/configs/breakout.py): its :smoke run end to end, the report's rows, the
:gpu preset's config checks and memory arithmetic, and the pieces MinAtar needed (episode caps, the patch
convolution, the positive control on the training game)."""
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

from cl_limits import envs
from cl_limits.stages import artifacts, common, layout, pipeline
from cl_limits.teachers.networks import PatchConv
from conftest import finished_pipeline
from experiments import budget
from experiments.configs import breakout


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  return finished_pipeline(tmp_path_factory, breakout.get_config("smoke"), "breakout_smoke")


def _table(report):
  text = open(report).read()
  return text, text.split("## Verdicts")[1].split("\n\n")[1].splitlines()


def test_report_has_p1_each_p2_cut_the_power_control_statement_and_p3_rows(finished):
  workdir, report, _ = finished
  text, table = _table(report)
  starts = lambda p: [r for r in table if r.startswith("| " + p)]
  assert len(starts("P1 snapshot: prompted")) == 1
  assert len(starts("P1 snapshot, unprompted")) == 1
  cuts = starts("P2 beyond the ceiling")
  assert [c.split("data cut at ")[1].split("%")[0] for c in cuts] == ["25"]       # ad_early (smoke)
  # The power control: AD-epsilon data of each replicate's own final DQN, scored by the P2 rule.
  control = starts("P2 power control")
  assert len(control) == 1 and "ad_eps_half" in control[0] and "headroom:" in control[0]
  transfer = starts("P3 transplant to spaceinvaders (MinAtar-SpaceInvaders")
  positive = starts("P3 positive control")
  assert len(transfer) == 1 and len(positive) == 1
  # The positive control is the power control's imitator in its own game, not the P2 arm's.
  assert "its training game itself" in positive[0] and "ad_eps_half: final return" in positive[0]
  assert "ad_p15: final return" in transfer[0]
  verdict_words = ("**supported**", "**refuted**", "**inconclusive", "**none applies**", "**not counted")
  for row in starts("P1") + cuts + transfer + positive:
    cells = [c.strip() for c in row.split("|")]
    per_rep = cells[4].split(", ")
    assert len(per_rep) == 2 and all(np.isfinite(float(v)) for v in per_rep), row     # 2 replicates
    assert any(v in row for v in verdict_words), row
  for c in cuts + control:
    assert "headroom:" in c and "competence at the end of its data" in c
  # The teachers' greedy return at each cut and at the end, per replicate.
  g = text.split("Teachers' greedy return per replicate")[1].split("\n\n")[1].splitlines()
  assert g[0].count("greedy at the") == 2 and len(g) == 2 + 2
  assert "Hybrid: does test-time SGD recover learning?" in text
  # The hybrid's row names the actions it played (the evaluation section's), not P2's argmax protocol.
  assert "| hybrid (full), P2's test, sampled: SGD on its own experience" in text
  # P2 plays its own protocol (the learners' argmax with their epsilon schedule in one stream's steps, 1500 / 2
  # at :smoke), so its headroom is the teachers' greedy rise; the other rows keep the evaluation protocol.
  p2 = layout.summary(workdir, "p2")
  assert p2["protocol"]["actions"] == "greedy, epsilon from 1 to 0 over 750 steps around it"
  assert p2["arms"]["ad_early"]["headroom"]["basis"] == "greedy"
  assert layout.summary(workdir, "p1")["actions"] == "sampled"
  assert ("(P2's rows and their competence gate: actions greedy, epsilon from 1 to 0 over 750 steps around it, "
          "experiments.p2.protocol)") in text
  assert os.path.getsize(os.path.join(workdir, "p2", "curves.png")) > 5000


def test_the_positive_control_is_scored_against_the_main_teachers(finished):
  workdir, _, _ = finished
  assert not os.path.exists(os.path.join(workdir, "p3", "breakout", "teachers"))
  assert os.path.exists(os.path.join(workdir, "p3", "spaceinvaders", "teachers", "summary.json"))
  e = layout.summary(workdir, "p3")["targets"]["breakout"]
  main = layout.teacher_curves(workdir)
  assert e["role"] == "positive_control" and e["horizon_steps"] == int(main["env_steps"][-1])
  z = np.load(os.path.join(workdir, "p3", "breakout", "returns.npz"))
  np.testing.assert_array_equal(z["dqn_curves"], main["returns"])


def test_gpu_preset_passes_every_config_check_and_fits_80_gb(tmp_path):
  config = breakout.get_config("gpu")
  steps = pipeline.plan(config, str(tmp_path))
  pipeline.validate(steps)            # every stage's checks, nothing compiled or run
  assert [s.id for s in steps] == ["teachers", "imitation", "evaluation", "p1", "p2", "p3/spaceinvaders/teachers",
                                   "p3", "hybrid", "report"]
  assert int(config.teacher.num_seeds) >= 8 and int(config.teacher.dqn.total_steps) == 5_000_000
  assert int(config.imitation.model.context_len) >= 1000
  name, total = budget.peak(budget.memory(config))
  assert total <= 80e9, (name, total)
  # The arithmetic is not vacuous: the same model at batch 32 would not fit.
  big = breakout.get_config("gpu")
  big.unlock()
  big.imitation.train.batch_size = 32
  assert budget.peak(budget.memory(big))[1] > 80e9


def test_minatar_episode_cap_sizes_episode_counted_rollouts():
  env = envs.make("MinAtar-Breakout")
  assert common.episode_length(env) is None and common.episode_cap(env) == 1000
  assert common.episode_cap(envs.make("DarkRoom", size=9, episode_len=20)) == 20


def test_patch_conv_is_nn_conv():
  x = jax.random.normal(jax.random.key(1), (3, 10, 10, 7))
  m = PatchConv(16)
  p = m.init(jax.random.key(0), x)
  p = {"params": {"kernel": p["params"]["kernel"], "bias": jax.random.normal(jax.random.key(2), (16,))}}
  np.testing.assert_allclose(m.apply(p, x), nn.Conv(16, (3, 3), padding="VALID").apply(p, x), atol=1e-5)
  g = jax.grad(lambda q: (m.apply(q, x) ** 2).sum())(p)
  g_ref = jax.grad(lambda q: (nn.Conv(16, (3, 3), padding="VALID").apply(q, x) ** 2).sum())(p)
  np.testing.assert_allclose(g["params"]["kernel"], g_ref["params"]["kernel"], rtol=1e-4, atol=1e-4)


def test_reproduces_the_pinned_numbers(finished):
  """tests/pinned/breakout_smoke.json, as for the main job (tests/test_pipeline.py)."""
  from pinned.collect import compare  # noqa: PLC0415
  compare(finished[0], "breakout_smoke.json")


def test_the_power_controls_data_follow_each_replicates_final_dqn(finished):
  """AD-epsilon streams on a game without an oracle: the recorded demonstrator action at every step is the
  greedy action of that replicate's own final DQN, and epsilon falls from 1 to the teachers' floor."""
  from cl_limits.histories import store  # noqa: PLC0415
  from cl_limits.stages import artifacts  # noqa: PLC0415
  workdir, _, _ = finished
  config = breakout.get_config("smoke")
  history, manifest = store.load(os.path.join(workdir, "histories", "ad_eps"))
  assert manifest["demonstrator"] == "teacher"
  _, _, _, teacher = artifacts.teacher_setup(config)
  params = artifacts.final_state(config, workdir).params
  obs, greedy = np.asarray(history.obs), np.asarray(history.greedy)               # [R, K, S, T, ...]
  for r in range(obs.shape[0]):
    p = jax.tree.map(lambda x: x[r, 0], params)
    want = np.asarray(jax.vmap(lambda o: teacher.greedy_action(p, o))(obs[r, 0, 0]))
    np.testing.assert_array_equal(greedy[r, 0, 0], want)
  other = np.asarray(jax.vmap(lambda o: teacher.greedy_action(jax.tree.map(lambda x: x[1, 0], params), o))(obs[0, 0, 0]))
  assert (other != greedy[0, 0, 0]).any()             # the replicates' DQNs differ: each stream follows its own
  eps = np.asarray(history.epsilon)[0, 0, 0]
  assert eps[0] == pytest.approx(1.0) and eps[-1] == pytest.approx(float(config.imitation.ad_eps.eps_floor), abs=0.01)


def test_the_power_control_at_argmax_reads_its_demonstrators_greedy_return_and_has_no_headroom(finished):
  """Under the study's argmax P2 protocol the control's greedy return at the cut is its demonstrator's,
  each replicate's final DQN: the teachers' last greedy evaluation. The ceiling holds it, so dropping the
  noise cannot read as improvement: the row has no headroom, and its held-out rollout is skipped."""
  workdir = finished[0]
  e = layout.summary(workdir, "p2")["arms"]["ad_eps_half"]
  curves = layout.teacher_curves(workdir)
  last = np.asarray(curves["greedy_returns"])[..., -1].mean(-1)
  np.testing.assert_allclose(e["per_replicate"]["greedy_at_cut"], last)
  assert all(c >= g for c, g in zip(e["per_replicate"]["ceiling"], last))
  assert all(r <= 0 for r in e["per_replicate"]["rise"])
  assert e["headroom"]["basis"] == "greedy" and not e["headroom"]["ok"] and "skipped" in e
  row = [r for r in _table(finished[1])[1] if r.startswith("| P2 power control")][0]
  assert "inconclusive: no headroom" in row and "its demonstrator's greedy policy left no room above it" in row
  assert "and its demonstrator's greedy return at the cut" not in row      # skipped: the ceiling alone is shown


def test_the_competence_gate_replays_the_p2_stages_on_a_game_whose_episodes_end_early(finished):
  # arm_rollouts.competence (the gate the DAgger rounds read) with the run's imitators and protocol is the
  # P2 stage's gate replicate for replicate, on Breakout's variable-length episodes.
  from experiments import arm_rollouts  # noqa: PLC0415
  config, workdir = breakout.get_config("smoke"), finished[0]
  stage = layout.summary(workdir, "p2")["arms"]["ad_early"]
  r = arm_rollouts.load(config, workdir, "ad_early", 0, fixed_episodes=False)
  comp = arm_rollouts.competence(config, r, r.params, artifacts.p2_protocol(config), stage["competence"]["random"],
                                 stage["competence"]["needed"])
  np.testing.assert_allclose(comp["per_replicate"], stage["competence"]["per_replicate"])
  np.testing.assert_allclose(comp["imitator_end"], stage["competence"]["imitator_end"])


def test_dagger_plays_a_game_whose_episodes_end_early(finished, tmp_path):
  # experiments/dagger.py on Breakout, whose episodes end when the ball is lost: the labelled rollouts hold
  # episodes that ended early, each step labelled, and each model's P2 row is the stage's test (its
  # horizon) read by the P2 rule.
  workdir = finished[0]
  out = tmp_path / "dagger"
  cmd = [sys.executable, "-m", "experiments.dagger", "--config=experiments/configs/breakout.py:smoke",
         f"--workdir={workdir}", "--config.imitation.arms.ad_early.labels=greedy", "--config.evaluation.epsilon=0.1",
         f"--out={out}", "--rounds=1", "--rollouts=2", "--updates=10", "--p2_epsilon=0"]
  res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
  assert res.returncode == 0, res.stderr[-2000:]
  rounds = json.loads((out / "rounds.json").read_text())
  assert [row["round"] for row in rounds] == [0, 1]
  stage = layout.summary(workdir, "p2")["arms"]["ad_early"]
  with np.load(out / "rollouts_1.npz") as z:
    done = np.asarray(z["terminated"]) | np.asarray(z["truncated"])       # [S, tasks, rollouts, T]
    assert done[..., :-1].any()                   # episodes that ended before their rollout did
    assert np.asarray(z["labels"]).min() >= 0      # every step labelled by its learner's greedy action
  p2 = json.loads((out / "p2.json").read_text())
  for arm_name in ("control", "dagger"):
    assert p2[arm_name]["horizon_steps"] == stage["horizon_steps"]
    assert np.isfinite(p2[arm_name]["late_minus_ceiling"]["per_replicate"]).all()
    assert p2[arm_name]["verdict"] == rounds[1]["p2"][arm_name]["verdict"]
  # Epsilon 0.1 is the :smoke teachers' floor, so the headroom reads their behaviour; the same models played
  # without epsilon (--p2_epsilon=0; sampled from an imitator of greedy labels) read their greedy policy.
  at0 = json.loads((out / "p2_eps0.json").read_text())
  assert at0["protocol"]["epsilon"] == 0.0
  for arm_name in ("control", "dagger"):
    assert p2[arm_name]["headroom"]["basis"] == "behaviour" and at0[arm_name]["headroom"]["basis"] == "greedy"
    assert at0[arm_name]["horizon_steps"] == stage["horizon_steps"]
    assert at0[arm_name]["per_replicate"]["rise"] == at0[arm_name]["per_replicate"]["greedy_rise"]
    assert at0[arm_name]["verdict"] and "competence" in at0[arm_name]


def test_competence_protocol_plays_breakout_and_shows_each_replicates_choices(finished, tmp_path):
  # experiments/competence_protocol.py on a game whose episodes end early, under the run's own P2 protocol
  # (experiments.p2.protocol, not the evaluation section it reads its flags from): its gate must be the P2
  # stage's, and --actions prints, per replicate, the imitator's choice shares and its data's greedy ones,
  # each a distribution over Breakout's six actions and three effects.
  p = breakout.get_config("smoke").experiments.p2.protocol
  cmd = [sys.executable, "-m", "experiments.competence_protocol", "--config=experiments/configs/breakout.py:smoke",
         f"--workdir={finished[0]}", f"--config.evaluation.greedy={p.greedy}",
         f"--config.evaluation.epsilon={p.epsilon}", f"--config.evaluation.epsilon_decay={p.epsilon_decay}",
         "--actions=50"]
  res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  assert "  equals the P2 stage's competence gate: yes" in res.stdout.splitlines()
  shares = [ln for ln in res.stdout.splitlines() if ln.startswith("  replicate ")]
  assert len(shares) == 2 * 3
  for ln in shares:
    raw, eff = ln.split("actions ")[1].split(" | effects ")
    assert len(raw.split()) == 6 and len(eff.split()) == 3
    assert abs(sum(map(float, raw.split())) - 1) < 0.02 and abs(sum(map(float, eff.split())) - 1) < 0.02
  # ad_p15 (the P3 and hybrid arm) has no P2 gate: it plays the same rollout, here for --horizon steps
  # instead of one of its kept histories, scored against the run's random level, and says both; it is not
  # compared with a stage's gate.
  # Its programs go to the compile cache its flag names, as every diagnostic's do (experiments/cli.py).
  cache = tmp_path / "cache"
  res = subprocess.run(cmd + ["--arm=ad_p15", "--horizon=800", f"--compile_cache={cache}"], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
  assert res.returncode == 0, res.stderr[-2000:]
  assert cache.is_dir() and len(os.listdir(cache)) > 5
  out = res.stdout.splitlines()
  assert out[0].startswith("ad_p15: the competence gate on 1 training tasks, 800 steps, ")
  assert "  ad_p15 has no P2 competence gate: --horizon steps, the run's random level and threshold" in out
  assert "  --horizon=800: not the gate (its horizon is one kept history)" in out
  assert not any("equals the P2 stage" in ln for ln in out)
  assert sum(ln.startswith("  replicate ") for ln in out) == 2 * 3
  assert len(json.loads(out[-1])["per_replicate"]) == 2 and out[1].startswith("  imitator's last episodes, per replicate: ")


def test_prompted_competence_plays_breakout_and_reads_each_rows_own_last_episodes(finished):
  # experiments/prompted_competence.py on a game whose episodes end early: both rollouts (empty context,
  # prompted with the data's end) print their first and last --episodes, the last read at each row's own end
  # (`arm_rollouts.last_episodes`: NaN past a row's end is not an episode). A bad window is a one-line error.
  from experiments import arm_rollouts  # noqa: PLC0415
  rets = np.array([[1.0, 2.0, 3.0, np.nan], [4.0, np.nan, np.nan, np.nan]])
  np.testing.assert_allclose(arm_rollouts.last_episodes(rets, 2), [2.5, 4.0])
  base = [sys.executable, "-m", "experiments.prompted_competence", "--config=experiments/configs/breakout.py:smoke",
          f"--workdir={finished[0]}", "--tasks=1"]
  res = subprocess.run(base + ["--episodes=3"], capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  assert "(episodes end early)" in res.stdout
  rows = [ln for ln in res.stdout.splitlines() if "first 3 episodes" in ln and "| last 3 " in ln]
  assert len(rows) == 2 and all(len(ln.split("| last 3 ")[1].split()) == 2 for ln in rows)    # 2 replicates
  bad = subprocess.run(base + ["--episodes=0"], capture_output=True, text=True, timeout=600)
  assert bad.returncode != 0 and "--episodes=0" in bad.stderr and "Traceback" not in bad.stderr


def test_a_p2_rows_head_names_its_arms_start(finished, tmp_path):
  """An arm trained without its streams' first steps (`arms.<arm>.start`: ad_early's is the teachers' first
  update, 200 of 3,000 steps at :smoke) says so in its P2 row and in the imitation table's data column; at
  start 0 neither does."""
  import shutil  # noqa: PLC0415

  from cl_limits.report import rows  # noqa: PLC0415
  workdir, report, _ = finished
  heads = lambda d: [r["prediction"] for r in rows.p2_rows(d) if r["prediction"].startswith("P2 beyond")]
  assert [h.split(", ad_early")[0] for h in heads(workdir)] == [
      "P2 beyond the ceiling, data cut at 25% of training (from 6.7% of each stream: the episodes before it dropped)"]
  assert "portion first 0.25 from 0.0666667 of each stream" in open(report).read()
  copy = tmp_path / "run"
  shutil.copytree(os.path.join(workdir, "p2"), copy / "p2")
  data = json.load(open(os.path.join(workdir, "imitators", "data.json")))
  assert data["arms"]["ad_early"]["start"] == 200 / 3000
  data["arms"]["ad_early"]["start"] = 0.0
  (copy / "imitators").mkdir()
  (copy / "imitators" / "data.json").write_text(json.dumps(data))
  assert heads(str(copy)) and all("of each stream" not in h for h in heads(str(copy)))
  data["arms"]["ad_early"]["start"] = 0.1
  (copy / "imitators" / "data.json").write_text(json.dumps(data))
  assert [h.split(", ad_early")[0] for h in heads(str(copy))] == [
      "P2 beyond the ceiling, data cut at 25% of training (from 10.0% of each stream: the episodes before it dropped)"]


def test_p2_figures_redraw_from_the_stored_returns(finished, tmp_path):
  """`experiments.redraw_p2` on a copy of the run whose returns.npz lost its axis arrays (a run made before
  they existed): it reads them back from the histories equal to what the stage wrote, with the smoke arm's
  start (200 of 3,000 steps) giving dropped episodes, and draws both figures again."""
  import shutil
  workdir = str(tmp_path / "run")
  shutil.copytree(finished[0], workdir)
  npz = os.path.join(workdir, "p2", "returns.npz")
  with np.load(npz) as f:
    stored = dict(f)
  axis = {k: v for k, v in stored.items() if "/axis_" in k}
  assert "ad_early/axis_x0" in axis and float(axis["ad_early/axis_dropped"].min()) > 0
  np.savez(npz, **{k: v for k, v in stored.items() if k not in axis})
  for rel in ("p2/curves.png", "p2/gap.png"):
    os.remove(os.path.join(workdir, rel))
  out = subprocess.run([sys.executable, "-m", "experiments.redraw_p2", workdir], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
  assert out.returncode == 0, out.stderr
  with np.load(npz) as f:
    again = dict(f)
  assert set(again) == set(stored)
  for k, v in axis.items():
    np.testing.assert_allclose(again[k], v, err_msg=k)
  for rel in ("p2/curves.png", "p2/gap.png"):
    assert os.path.getsize(os.path.join(workdir, rel)) > 5000
  bad = subprocess.run([sys.executable, "-m", "experiments.redraw_p2", str(tmp_path)], capture_output=True,
                       text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "no config.json" in bad.stderr


def test_hybrid_protocol_replays_the_stage_and_plays_p2s_actions(finished, tmp_path):
  # experiments/hybrid_protocol.py: with the evaluation section's actions it reproduces the hybrid stage's
  # summary replicate for replicate; with P2's (the smoke preset's argmax and epsilon schedule) it plays the
  # same learners on the same tasks with those actions and scores each variant by the hybrid rule.
  base = [sys.executable, "-m", "experiments.hybrid_protocol", "--config=experiments/configs/breakout.py:smoke",
          f"--workdir={finished[0]}"]
  own = subprocess.run(base + ["--actions=evaluation"], capture_output=True, text=True, timeout=600)
  assert own.returncode == 0, own.stderr[-2000:]
  assert "  equals the hybrid stage's summary: yes" in own.stdout.splitlines()
  out = str(tmp_path / "p2.json")
  res = subprocess.run(base + [f"--out={out}"], capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  assert "actions greedy, epsilon from 1 to 0 over 750 steps around it (the stage's: sampled)" in res.stdout
  s = json.load(open(out))
  assert s["protocol"]["actions"].startswith("greedy") and set(s["learners"]) == {"frozen", "full"}
  full = s["learners"]["full"]
  assert full["verdict"] in ("helps", "hurts", "inconclusive") and len(full["late"]["per_replicate"]) == 2
  bad = subprocess.run(base + ["--config.seed=7"], capture_output=True, text=True, timeout=600)
  assert bad.returncode != 0 and "the run was made with seed 0" in bad.stderr


def test_a_breakout_ladder_control_plays_at_epsilon_0_and_may_have_a_known_positive(tmp_path):
  """The scripted ladder as Breakout's power control (`imitation.ad_eps.demonstrator='searcher'`, no noise): the
  config passes every check with its known positive (the ladder continued needs no oracle), the control row
  plays the study's argmax with epsilon 0, as its data's learner acted, while the study's rows keep the
  learners' falling epsilon; with the teachers' AD-epsilon data the known positive is refused in one line."""
  config = breakout.get_config("smoke")
  config.unlock()
  config.imitation.ad_eps.update(dict(demonstrator="searcher", eps_floor=0.0, decay_fraction=0.0))
  config.experiments.p2.known_positive = True
  pipeline.validate(pipeline.plan(config, str(tmp_path)))
  study = artifacts.p2_protocol(config)
  assert study["greedy"] and study["epsilon_decay"] > 0
  assert artifacts.row_protocol(config, "power_control", study) == {**study, "epsilon": 0.0, "epsilon_decay": 0}
  assert artifacts.row_protocol(config, "p2", study) == study
  config.imitation.ad_eps.eps_floor = 0.1                          # noisy data: the study's protocol
  assert artifacts.row_protocol(config, "power_control", study) == study
  config.imitation.ad_eps.demonstrator = "teacher"
  with pytest.raises(pipeline.ConfigError, match="^experiments.p2.known_positive: continues the AD-epsilon "
                                                 "generator without its DQN.*'teacher'"):
    pipeline.validate(pipeline.plan(config, str(tmp_path)))
  assert not os.listdir(tmp_path)
