"""Finding versus keeping the goal (`curves.search_and_keep`, `experiments/search_and_keep.py`)."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cl_limits.analysis import ceiling, curves, replicates
from cl_limits.histories import datasets
from cl_limits.histories.history import History
from cl_limits.stages import artifacts, layout
from experiments.configs import darkroom


def test_hit_rates_after_a_hit_and_after_a_miss_count_consecutive_episodes():
  # rollout 0: hit, miss, hit, hit, miss; rollout 1: miss, miss, miss, miss, hit
  r = np.array([[2.0, 0.0, 4.0, 6.0, 0.0], [0.0, 0.0, 0.0, 0.0, 3.0]])
  s = curves.search_and_keep(r)
  np.testing.assert_allclose(s["found"], [0.5, 0.0, 0.5, 0.5, 0.5])
  assert s["after_hit"] == pytest.approx(1 / 3)     # hit->miss, hit->hit, hit->miss
  assert s["after_miss"] == pytest.approx(2 / 5)    # miss->hit (rollout 0); miss x3 -> miss, miss->hit (1)
  assert s["return_if_found"] == pytest.approx((2 + 4 + 6 + 3) / 4)
  assert curves.search_and_keep(np.zeros((3, 4)))["after_hit"] is None
  # NaN pads a shorter row: its pairs with a NaN are not counted, nor its padded episodes
  p = curves.search_and_keep(np.array([[2.0, 0.0, np.nan], [0.0, 3.0, 3.0]]))
  np.testing.assert_allclose(p["found"], [0.5, 0.5, 1.0])
  assert p["after_hit"] == pytest.approx(1 / 2) and p["after_miss"] == pytest.approx(1.0)
  with pytest.raises(ValueError, match="at least 2 consecutive episodes"):
    curves.search_and_keep(np.ones((3, 1)))


def test_after_a_miss_splits_by_whether_the_last_hit_is_still_in_the_context():
  """Two episodes of context. Row 0: H M M M H M M; row 1: M M H M H M and a NaN pad. Pairs after a miss,
  by the next episode's two predecessors: row 0's 1->2 (hit at 0 in them: in context, misses), 2->3 and
  3->4 (the hit at 0 is further back; the second hits), 5->6 (hit at 4 in context, misses); row 1's 0->1
  and 1->2 (no hit yet; the second hits), 3->4 (hit at 2 in context, hits); 5->6 touches the pad."""
  r = np.array([[2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0, 3.0, 0.0, np.nan]])
  got = curves.after_miss_by_recency(r, 2)
  assert got["never"] == (pytest.approx(1 / 2), 2)
  assert got["in_context"] == (pytest.approx(1 / 3), 3)
  assert got["further_back"] == (pytest.approx(1 / 2), 2)
  # a context of one episode holds only the miss itself: every pair after an earlier hit is further back
  one = curves.after_miss_by_recency(r, 1)
  assert one["in_context"] == (None, 0) and one["further_back"] == (pytest.approx(2 / 5), 5)
  assert one["never"] == got["never"]
  with pytest.raises(ValueError, match="context_episodes"):
    curves.after_miss_by_recency(r, 0)


def test_path_stats_count_cells_and_retraced_steps_after_a_hit_and_after_a_miss():
  a, b, c = [0, 0], [0, 1], [1, 1]
  # one rollout of three 3-step episodes: a-b-c (hit), a-b-b (miss), a-a-a (miss)
  pos = np.array([[[a, b, c], [a, b, b], [a, a, a]]])
  s = curves.path_stats(pos, np.array([[True, False, False]]))
  assert s["cells"] == pytest.approx((3 + 2 + 1) / 3)
  assert s["repeat_after_hit"] == pytest.approx(2 / 3)       # episode 2 retraces a, b of episode 1
  assert s["repeat_after_miss"] == pytest.approx(1 / 3)      # episode 3 retraces only a of episode 2
  assert curves.path_stats(pos, np.zeros((1, 3), bool))["repeat_after_hit"] is None
  with pytest.raises(ValueError, match="hit: shape"):
    curves.path_stats(pos, np.zeros((1, 2), bool))
  with pytest.raises(ValueError, match="episodes >= 2"):
    curves.path_stats(pos[:, :1], np.zeros((1, 1), bool))


def test_kept_informed_marks_episodes_begun_after_any_stream_of_the_learner_reached_the_goal():
  # one learner, two streams of four 2-step episodes; stream 1's second episode (steps 3-4) is rewarded
  reward = np.zeros((1, 1, 2, 8), np.float32)
  reward[0, 0, 1, 3] = 1.0
  done = np.zeros((1, 1, 2, 8), bool)
  done[..., 1::2] = True
  episode = np.broadcast_to(np.arange(8) // 2, (1, 1, 2, 8)).astype(np.int32)
  z = np.zeros((1, 1, 2, 8), np.int32)
  h = History(obs=z[..., None], action=z, reward=reward, terminated=np.zeros_like(done), truncated=done,
              episode=episode, update=z)
  arm = datasets.resolve_arm({})
  np.testing.assert_array_equal(ceiling.kept_informed(h, arm), [[0, 0, 1, 1], [0, 0, 1, 1]])
  np.testing.assert_array_equal(ceiling.kept_returns(h, arm), [[0, 0, 0, 0], [0, 1, 0, 0]])
  gapped = datasets.resolve_arm({"gap": 2})                  # episodes 0 and 2 of each stream
  np.testing.assert_array_equal(ceiling.kept_informed(h, gapped), [[0, 1], [0, 1]])
  # after a miss, split by what the agent knew: stream 0's third episode misses though informed
  s = curves.after_miss_by_knowledge(np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]),
                                     np.array([[0, 0, 1], [0, 0, 1]], bool))
  assert s == {"informed": (0.5, 2), "uninformed": (0.0, 2)}
  # paired per replicate: replicate 0's imitator keeps 1/2 after a hit where its data keeps 1/1
  imit = np.array([[[1.0, 1.0, 0.0, 0.0, 1.0]], [[1.0, 1.0, 1.0, 0.0, 0.0]]])
  data = np.array([[[0.0, 1.0, 1.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0, 0.0]]])
  known = np.array([[[0, 0, 1, 1, 1]], [[0, 1, 1, 1, 1]]], bool)
  p = curves.paired_with_data(imit, data, known)
  np.testing.assert_allclose(p["after_hit"], [1 / 2 - 1.0, 2 / 3 - 1 / 2])
  assert p["uninformed"] is None        # replicate 1's imitator never misses before its first hit
  with pytest.raises(ValueError, match="same replicates"):
    curves.paired_with_data(imit[:1], data, known)
  np.testing.assert_array_equal(curves.reached_before(np.array([[0.0, 1.0, 0.0, np.nan], [0.0, 0.0, 0.0, 2.0]])),
                                [[0, 0, 1, 1], [0, 0, 0, 0]])


def _f(x):
  return "n/a" if x is None else f"{x:.3f}"


def _script(*args):
  return subprocess.run([sys.executable, "-m", "experiments.search_and_keep",
                         "--config=experiments/configs/darkroom.py:smoke", *args],
                        capture_output=True, text=True, timeout=600)


def test_the_script_reads_every_p2_row_of_a_finished_run_beside_the_random_policy(smoke_pipeline, tmp_path):
  workdir, config = smoke_pipeline[0], darkroom.get_config("smoke")
  teachers = artifacts.load_teacher_histories(config, workdir)[0]
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
    own = curves.after_miss_by_knowledge(z[f"{row}/competence_return"],
                                         curves.reached_before(z[f"{row}/competence_return"]))
    assert lines[lines.index(line) + 1] == (
        f"  after a miss, by what it knew from its own earlier episodes: {_f(own['uninformed'][0])} of "
        f"{own['uninformed'][1]:,} before it had reached the goal, {_f(own['informed'][0])} of "
        f"{own['informed'][1]:,} after")
    line = lines[lines.index(line) + 1]
    data_line = lines[lines.index(line) + 1] if lines.index(line) + 1 < len(lines) else ""
    if row.endswith("_known_positive"):
      assert not data_line.startswith("  its data (")
      continue
    # the row's own data: the episodes its arm keeps, every replicate and stream, on the same tasks
    arm = datasets.resolve_arm(config.imitation.arms[row])
    hist = (layout.load_histories(os.path.join(workdir, "histories", "ad_eps"))[0] if arm["data"] == "ad_eps"
            else teachers)
    n_t, n_e = z[f"{row}/competence_return"].shape[1:]
    n_t //= int(config.experiments.p2.competence_rollouts)     # [R, rollouts x tasks, E]: the data's tasks
    d_r = [ceiling.kept_returns(replicates.replicate(hist, i, n_t), arm) for i in range(hist.action.shape[0])]
    d = curves.search_and_keep(np.concatenate([x[:, :n_e] for x in d_r]))
    assert data_line.startswith("  its data (")
    assert f"after a hit {d['after_hit']:.2f}, after a miss {d['after_miss']:.2f}" in data_line
    split = curves.after_miss_by_knowledge(
        np.concatenate([x[:, :n_e] for x in d_r]),
        np.concatenate([ceiling.kept_informed(replicates.replicate(hist, i, n_t), arm)[:, :n_e]
                        for i in range(hist.action.shape[0])]))
    assert lines[lines.index(line) + 2] == (
        "  its data after a miss, by what its learner knew outside this stream's kept episodes: "
        f"{_f(split['uninformed'][0])} of {split['uninformed'][1]:,} where it had not yet reached the goal "
        f"in any stream, {_f(split['informed'][0])} of {split['informed'][1]:,} where it had")
    rec = lambda x: curves.after_miss_by_recency(x, config.imitation.model.context_len // 20)  # noqa: E731
    im_rec, d_rec = rec(z[f"{row}/competence_return"]), rec(np.concatenate([x[:, :n_e] for x in d_r]))
    assert lines[lines.index(line) + 3] == (
        "  after a miss, by where its row's last hit lies (never / within the 1 episodes a context of 20 steps "
        "holds / further back): imitator "
        + " / ".join(f"{_f(im_rec[k][0])} of {im_rec[k][1]:,}" for k in ("never", "in_context", "further_back"))
        + " | its data (its own kept episodes) "
        + " / ".join(f"{_f(d_rec[k][0])} of {d_rec[k][1]:,}" for k in ("never", "in_context", "further_back")))
    pair = curves.paired_with_data(
        z[f"{row}/competence_return"],
        np.stack([x[:, :n_e] for x in d_r]),
        np.stack([ceiling.kept_informed(replicates.replicate(hist, i, n_t), arm)[:, :n_e]
                  for i in range(hist.action.shape[0])]))
    paired_line = lines[lines.index(line) + 4]
    assert paired_line.startswith("  imitator - its data, per replicate")
    if pair["after_hit"] is not None:
      assert ", ".join(f"{v:+.2f}" for v in pair["after_hit"]) in paired_line
    paths = lines[lines.index(line) + 5]              # the script checked they are the gate's own rollouts
    assert paths.startswith("  paths (") and " | its data " in paths and " | random " in paths
  # --heldout: each row's held-out P2 rollouts instead, figures of the saved returns, nothing re-run
  held = _script(f"--workdir={workdir}", "--heldout")
  assert held.returncode == 0, held.stderr[-2000:]
  keys = [k for k in z.files if k.endswith("/episode_return")]
  assert keys and len(held.stdout.splitlines()) == len(keys)
  for key, line in zip(keys, held.stdout.splitlines()):
    r = z[key]
    s, rec = curves.search_and_keep(r), curves.after_miss_by_recency(r, config.imitation.model.context_len // 20)
    assert line.startswith(f"{key.split('/')[0]} held out ({r.shape[0]} replicates x {r.shape[1]} tasks x ")
    assert f"after a hit {_f(s['after_hit'])}, after a miss {_f(s['after_miss'])}; " in line
    assert line.endswith(" / ".join(f"{_f(rec[k][0])} of {rec[k][1]:,}" for k in ("never", "in_context", "further_back")))
  # another temperature than the run's: the re-run rollouts are not the gate's, and the script says so
  other = _script(f"--workdir={workdir}", "--random_episodes=50", "--config.evaluation.temperature=0.3")
  assert other.returncode != 0 and "did not give the saved returns" in other.stderr
  bad = _script(f"--workdir={tmp_path}")
  assert bad.returncode != 0 and "no finished P2 stage" in bad.stderr
  # a run read without its teachers (made with --config.teachers_from, read without it): one line, no traceback
  os.makedirs(tmp_path / "p2")
  shutil.copy(os.path.join(workdir, "p2", "returns.npz"), tmp_path / "p2" / "returns.npz")
  lost = _script(f"--workdir={tmp_path}", "--random_episodes=50")
  assert lost.returncode != 0 and "history store" in lost.stderr and "Traceback" not in lost.stderr


def test_rollout_modes_reproduces_the_gate_and_one_layer_makes_both_modes_one_function(smoke_pipeline):
  # experiments/rollout_modes.py: its cached leg must be the P2 stage's competence rollouts (same tasks,
  # keys, protocol), and with the smoke model's single layer the naive window is the same function, so
  # the difference must be exactly zero; with more layers it need not be.
  res = subprocess.run([sys.executable, "-m", "experiments.rollout_modes", "--config=experiments/configs/darkroom.py:smoke",
                        f"--workdir={smoke_pipeline[0]}", "--last=2"], capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  lines = res.stdout.splitlines()
  assert "  cached rollouts equal the P2 stage's saved competence rollouts: yes" in lines
  cached = next(ln for ln in lines if ln.startswith("  cached first"))
  naive = next(ln for ln in lines if ln.startswith("  naive  first"))
  assert cached.split("(")[0].split("first")[1] == naive.split("(")[0].split("first")[1]
  assert "cached - naive, last 2 episodes: +0.000 [+0.000, +0.000]" in res.stdout


def test_competence_protocol_reproduces_the_gate_and_plays_it_under_another_protocol(smoke_pipeline):
  # experiments/competence_protocol.py: under the run's own protocol its gate must be the P2 stage's, replicate
  # for replicate; under another it names that protocol (and makes no such claim); a bad protocol field is a
  # one-line error before anything runs.
  base = [sys.executable, "-m", "experiments.competence_protocol", "--config=experiments/configs/darkroom.py:smoke",
          f"--workdir={smoke_pipeline[0]}"]
  own = subprocess.run(base + ["--actions=5"], capture_output=True, text=True, timeout=600)
  assert own.returncode == 0, own.stderr[-2000:]
  assert "  equals the P2 stage's competence gate: yes" in own.stdout.splitlines()
  # --actions: per replicate the imitator's choices and its data's greedy choices, each a distribution.
  shares = [ln for ln in own.stdout.splitlines() if ln.startswith("  replicate ")]
  assert len(shares) == 2 * 3 and sum("its data's greedy choices actions" in ln for ln in shares) == 2
  assert sum("its data's first steps' greedy choices actions" in ln for ln in shares) == 2
  for ln in shares:
    raw, eff = ln.split("actions ")[1].split(" | effects ")
    assert abs(sum(map(float, raw.split())) - 1) < 0.02 and abs(sum(map(float, eff.split())) - 1) < 0.02
  seed = subprocess.run(base + ["--config.seed=3"], capture_output=True, text=True, timeout=600)
  assert seed.returncode != 0 and "--config.seed=3" in seed.stderr and "Traceback" not in seed.stderr
  other = subprocess.run(base + ["--config.evaluation.greedy=true", "--config.evaluation.epsilon_decay=20"],
                         capture_output=True, text=True, timeout=600)
  assert other.returncode == 0, other.stderr[-2000:]
  assert "greedy, epsilon from 1 to 0 over 20 steps around it (the run's own: sampled)" in other.stdout
  assert "equals the P2 stage" not in other.stdout
  bad = subprocess.run(base + ["--config.evaluation.epsilon_decay=-3"], capture_output=True, text=True, timeout=600)
  assert bad.returncode != 0 and "epsilon_decay" in bad.stderr and "Traceback" not in bad.stderr


def test_prompted_competence_plays_each_epsilon_and_at_one_the_prompt_cannot_matter(smoke_pipeline, tmp_path):
  # experiments/prompted_competence.py with --epsilons: one pair of rollouts (empty context, prompted) per
  # exploration rate, from the same keys. At epsilon 1 every action is the uniform draw of its step's key,
  # whatever the model's context holds, so the prompted rollout plays exactly as the empty one; at 0 the
  # prompt is what the imitator acts on. The figure is written; a bad rate is a one-line error.
  fig = tmp_path / "prompted.png"
  base = [sys.executable, "-m", "experiments.prompted_competence", "--config=experiments/configs/darkroom.py:smoke",
          f"--workdir={smoke_pipeline[0]}", "--tasks=3"]
  res = subprocess.run(base + ["--epsilons=0,1", f"--plot={fig}"], capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  rows = {ln.split(" first")[0].strip(): ln.split("first 2 episodes")[1] for ln in res.stdout.splitlines()
          if "first 2 episodes" in ln}
  assert set(rows) == {f"epsilon {e}: {m}" for e in (0, 1) for m in ("empty context", "prompted with its data's end")}
  assert rows["epsilon 1: empty context"] == rows["epsilon 1: prompted with its data's end"]
  assert fig.stat().st_size > 0
  bad = subprocess.run(base + ["--epsilons=0,1.5"], capture_output=True, text=True, timeout=600)
  assert bad.returncode != 0 and "--epsilons=0,1.5" in bad.stderr and "Traceback" not in bad.stderr


def test_dagger_rounds_start_from_the_gate_resume_and_refuse_what_they_cannot_label(smoke_pipeline, tmp_path):
  # experiments/dagger.py: round 0 is the run's imitator on the competence gate under the flags' protocol,
  # replicate for replicate what competence_protocol reads; each round adds labelled rollouts (a growing
  # share of the dagger model's data) and writes its figures; a rerun resumes (nothing redone), other flags
  # are refused, and so is a protocol without exploration or an arm not trained on greedy labels.
  proto = ["--config=experiments/configs/darkroom.py:smoke", f"--workdir={smoke_pipeline[0]}",
           "--config.evaluation.greedy=true", "--config.evaluation.epsilon=0.1", "--config.evaluation.epsilon_decay=40"]
  out = tmp_path / "dagger"
  base = [sys.executable, "-m", "experiments.dagger", *proto, "--config.imitation.arms.ad_early.labels=greedy",
          f"--out={out}", "--rollouts=2", "--updates=10", "--p2_every=2"]
  res = subprocess.run(base + ["--rounds=2"], capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  rounds = json.loads((out / "rounds.json").read_text())
  assert [row["round"] for row in rounds] == [0, 1, 2]
  ref = subprocess.run([sys.executable, "-m", "experiments.competence_protocol", *proto], capture_output=True,
                       text=True, timeout=600)
  assert ref.returncode == 0, ref.stderr[-2000:]
  np.testing.assert_allclose(rounds[0]["start"]["per_replicate"],
                             json.loads(ref.stdout.splitlines()[-1])["per_replicate"], equal_nan=True)
  share = [row["labelled_share"] for row in rounds[1:]]
  assert all(0 < a < b < 1 for a, b in zip(*share))
  assert all(0 <= a <= 1 for row in rounds[1:] for a in row["agreement"])
  assert (out / "competence.png").stat().st_size > 0
  table = (out / "rounds.md").read_text().splitlines()
  assert len(table) == 5 and table[-1].startswith("| 2 |") and rounds[-1]["p2"]["dagger"]["verdict"] in table[-1]
  again = subprocess.run(base + ["--rounds=2"], capture_output=True, text=True, timeout=600)
  assert again.returncode == 0 and "resuming after round 2 of 2" in again.stdout
  assert "round 1:" not in again.stdout and json.loads((out / "rounds.json").read_text()) == rounds
  longer = subprocess.run(base + ["--rounds=2", "--p2_horizon_factor=2"], capture_output=True, text=True, timeout=600)
  assert longer.returncode == 0 and "round 1:" not in longer.stdout, longer.stderr[-2000:]
  x2, x1 = json.loads((out / "p2_x2.json").read_text()), json.loads((out / "p2.json").read_text())
  ep_len = x1["dagger"]["horizon_steps"] // x1["dagger"]["episodes"]
  assert x2["horizon_steps"] == x2["dagger"]["horizon_steps"] == x2["dagger"]["episodes"] * ep_len
  assert 0 <= 2 * x1["dagger"]["cut_learner_steps"] - x2["horizon_steps"] < ep_len     # whole episodes of 2 x the cut
  assert x2["dagger"]["competence"]["per_replicate"] == x1["dagger"]["competence"]["per_replicate"]
  other = subprocess.run(base + ["--rounds=3"], capture_output=True, text=True, timeout=600)
  assert other.returncode != 0 and "made with other flags" in other.stderr and "Traceback" not in other.stderr
  p2 = json.loads((out / "p2.json").read_text())
  assert p2["round"] == 2 and set(p2) >= {"control", "dagger"}
  for arm_name in ("control", "dagger"):     # each model's own competence gate, as the last round read it
    assert p2[arm_name]["competence"]["per_replicate"] == rounds[-1][arm_name]["per_replicate"]
    assert len(p2[arm_name]["late_minus_ceiling"]["per_replicate"]) == len(rounds[0]["start"]["per_replicate"])
    assert rounds[-1]["p2"][arm_name]["verdict"] == p2[arm_name]["verdict"]
    assert p2[arm_name]["late_minus_ceiling"] == rounds[-1]["p2"][arm_name]["late_minus_ceiling"]
  assert "p2" not in rounds[1] and res.stdout.count("P2 row: late") == 2 and "P2 row" not in again.stdout
  for flags_, field in ((["--config.evaluation.epsilon=0", "--config.evaluation.epsilon_decay=0"], "evaluation.epsilon"),
                        (["--config.imitation.arms.ad_early.labels=action"], "labels='greedy'"),
                        (["--p2_every=-1"], "--p2_every=-1"), (["--p2_horizon_factor=-2"], "--p2_horizon_factor=-2")):
    bad = subprocess.run(base + flags_ + [f"--out={tmp_path / 'bad'}"], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and field in bad.stderr and "Traceback" not in bad.stderr


def test_a_p2_row_played_again_by_the_runs_own_imitators_is_the_stages_row(smoke_pipeline):
  # arm_rollouts.p2_row plays the P2 stage's test for any weights; with the run's own imitators and the
  # stage's competence gate it must give the stage's rollouts episode for episode, its row number for
  # number and the same verdict; other weights or another protocol play other episodes.
  from cl_limits.report import gates  # noqa: PLC0415
  from experiments import arm_rollouts  # noqa: PLC0415
  config, workdir = darkroom.get_config("smoke"), smoke_pipeline[0]
  entry = layout.summary(workdir, "p2")["arms"]["ad_early"]
  r = arm_rollouts.load(config, workdir, "ad_early", 0)
  e, rets = arm_rollouts.p2_row(config, r, r.params, arm_rollouts.protocol(config), entry, entry["competence"])
  with np.load(os.path.join(workdir, "p2", "returns.npz")) as z:
    np.testing.assert_array_equal(rets, z["ad_early/episode_return"])
  for key in ("late_minus_ceiling", "late", "trend", "held"):
    np.testing.assert_allclose(e[key]["per_replicate"], entry[key]["per_replicate"], err_msg=key)
  assert gates.p2_verdict(e) == gates.p2_verdict(entry)
  uniform = dict(arm_rollouts.protocol(config), epsilon=1.0)
  _, other = arm_rollouts.p2_row(config, r, r.params, uniform, entry, entry["competence"])
  assert other.shape == rets.shape and np.nansum(other) > 0 and not np.array_equal(other, rets)


def test_choice_shares_count_a_move_into_a_wall_as_the_no_op():
  # experiments/arm_rollouts.shares: raw actions as taken, effects by the env's classes at each observation.
  # Breakout's paddle at the left wall: "left" (1) leaves it there, so it is the no-op's class; "right" (3)
  # moves it; 0 and 4 (not in the game's own set) are the no-op.
  from cl_limits import envs
  from experiments import arm_rollouts
  env = envs.make("MinAtar-Breakout")
  obs = np.zeros((4, 10, 10, env.observation_space(env.default_params).shape[-1]), bool)
  obs[:, 9, 0, 0] = True
  sh = arm_rollouts.shares(env, obs, np.array([1, 3, 0, 4]))
  assert sh["action"] == [0.25, 0.25, 0.0, 0.25, 0.25, 0.0]
  assert sh["effect"] == [0.75, 0.0, 0.25]
  obs[:, 9, 0, 0], obs[:, 9, 5, 0] = False, True      # mid-court: "left" moves it
  assert arm_rollouts.shares(env, obs, np.array([1, 3, 0, 4]))["effect"] == [0.5, 0.25, 0.25]
