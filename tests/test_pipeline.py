"""The main job on the :smoke config: pinned numbers, report with verdicts, figures, TensorBoard, fingerprints,
skip and resume."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import ml_collections
import numpy as np
import pytest

from cl_limits.stages import outputs, pipeline
from cl_limits.stages.base import ConfigError, changed_fields, field, read_fields
from cl_limits.stages.pipeline import run as run_pipeline
from experiments.configs import darkroom
from pinned.collect import compare
from test_stages import smoke_with


class Killed(Exception):
  pass


@pytest.fixture(scope="module")
def finished(smoke_pipeline):
  return smoke_pipeline


def _table_rows(text, start, end):
  part = text[text.index(start):text.index(end)]
  return [line for line in part.splitlines() if line.startswith("| ") and not line.startswith("| prediction")]


def test_report_opens_with_verdicts_per_replicate_with_gates(finished):
  workdir, report, logs = finished
  text = open(report).read()
  assert text.startswith("# cl_limits report: DarkRoom")
  rows = _table_rows(text, "## Verdicts", "### Hybrid")
  heads = [r.split("|")[1].strip() for r in rows]
  # P1 prompted, goal identification, P2 per source (cut order), power control, trends, P3 transfer and its
  # positive control (hard9's DQN beats random at :smoke size, the held-out DarkRoom's too).
  assert [h.split(":")[0].split(",")[0] for h in heads] == [
      "P1 snapshot", "goal identification", "P2 beyond the ceiling", "P2 beyond the ceiling",
      "P2 power control", "P2 known positive", "trend", "trend", "trend",
      "P3 transplant to hard9 (DarkRoomHard {'episode_len'", "P3 positive control"], heads
  assert "cut at 20% of training, ad_early" in heads[2] and "cut at 50% of training, ad_p50" in heads[3]
  for r in rows:
    cells = [c.strip() for c in r.split("|")[1:-1]]
    assert len(cells) == 8, r
    assert len(cells[3].split(", ")) == 2, r          # one value per replicate (2 at :smoke size)
    assert any(cells[6] == f"**{v}**" for v in ("supported", "refuted", "inconclusive", "inconclusive: no headroom",
                                                 "inconclusive: imitator below its data",
                                                 "inconclusive: imitator did not reproduce its data",
                                                 "inconclusive: no learning in its data", "inconclusive: imitator collapsed",
                                                 "inconclusive: the competence gate cannot pass here",
                                                 "reported, no prediction")) \
        or cells[6].startswith("**not counted: the P"), r
    # Every row that uses an imitator shows its held-out fidelity, per replicate, in nats.
    known_positive = cells[0].startswith("P2 known positive")
    assert known_positive == (cells[4] == ""), r
    if not known_positive:
      assert " nats (" in cells[4] and "vs behaviour H" in cells[4], r
      assert len(cells[4].split("nats (")[1].split(")")[0].split(", ")) == 2, r
  # P1's fidelity gate (the :smoke imitator is far from its behaviour policy) and goal identification, which
  # is no prediction.
  assert "**inconclusive: imitator did not reproduce its data**" in rows[0] and "(ungated: " in rows[0]
  assert "**reported, no prediction**" in rows[1]
  for r in rows[2:6]:
    # The :smoke protocol samples at temperature 1 from imitators of the recorded actions: the headroom gate
    # reads the teachers' behaviour after the cut, not their greedy policy.
    assert "headroom: behaviour rise past the ceiling" in r and "competence at the end of its data" in r
    assert "learning in data: its rise " in r and "of (top - random) (needs 0.1)" in r
  assert "the power control came out" in rows[4] or "the P2 test can say refuted" in rows[4]
  assert "**refuted**" in rows[5] and "the P2 scoring says refuted when it should" in rows[5]
  assert "the positive control came out" in rows[-1] or "the P3 scoring can say refuted" in rows[-1]
  # (test_launch may have added its sweep rows to this run's report: the capacity table follows the hybrid's)
  hybrid = [r for r in _table_rows(text, "### Hybrid", "Protocol, fixed before the run") if r.startswith("| hybrid")]
  # The hybrids on P2's test, then the P3 target with hybrid=True (hard9; the positive control has none).
  assert [r.split("|")[1].strip()[:34] for r in hybrid] == [
      "hybrid (full), P2's test, sampled:", "hybrid (lora), P2's test, sampled:",
      "hybrid (full) in the P3 target har", "hybrid (lora) in the P3 target har"]
  assert "t-interval on r - 1 degrees of freedom" in text and "(2 replicates)" in text
  fid = _table_rows(text, "Fidelity (held-out", "![imitator curves]")
  seq_len = json.load(open(os.path.join(workdir, "config.json")))["imitation"]["train"]["seq_len"]
  assert f"Scored on windows of {seq_len} steps, as in training" in text     # the KL depends on it
  assert [r.split("|")[1].strip() for r in fid if not r.startswith("| arm")] == ["ad_early", "ad_p50", "bc", "search_early"]
  for rel in ("p2/curves.png", "p1/curves.png", "eval/curves.png", "teachers/teacher_curves.png",
              "hybrid/curves.png", "p3/hard9/curves.png", "p3/heldout/curves.png"):
    assert f"({rel})" in text and os.path.getsize(os.path.join(workdir, rel)) > 1000
  assert "## P2: beyond the ceiling, per replicate" in text and "| optimal return (oracle), mean over tasks |" in text
  s = json.load(open(os.path.join(workdir, "p2", "summary.json")))
  p2 = s["arms"]["ad_p50"]
  # The competence gate: 2 rollouts (own keys) of each of the 2 competence tasks, and the report says so.
  comp_rets = np.load(os.path.join(workdir, "p2", "returns.npz"))["ad_p50/competence_return"]
  assert p2["competence"]["rollouts"] == 2 and comp_rets.shape[:2] == (2, 4) and "2 rollouts per task" in text
  # 2 streams x 600 steps per learner, cut at 50%: 300 stream steps = 600 learner steps; horizon 2x that.
  assert p2["cut_learner_steps"] == 600 and p2["horizon_steps"] == 1200 and p2["episodes"] == 60
  pr = p2["per_replicate"]
  # The ceiling of each replicate is the larger of its behaviour ceiling and its teachers' greedy return at
  # the cut (after their segment ending at 600 learner steps), both as fractions of each task's optimum.
  curves = np.load(os.path.join(workdir, "teachers", "curves.npz"))
  opt = np.asarray(json.load(open(os.path.join(workdir, "teachers", "summary.json")))["optimal_return"])
  seg = list(curves["greedy_env_steps"]).index(600)
  greedy = (curves["greedy_returns"][..., seg] / opt[None]).mean(-1)
  np.testing.assert_allclose(pr["greedy_at_cut"], greedy, rtol=1e-6)
  np.testing.assert_allclose(pr["ceiling"], np.maximum(pr["behaviour_ceiling"], greedy), rtol=1e-6)
  np.testing.assert_allclose(p2["late_minus_ceiling"]["per_replicate"], np.subtract(pr["late"], pr["ceiling"]))
  assert p2["late_minus_ceiling"]["n"] == 2 and "t-interval over 2 replicates" in p2["late_minus_ceiling"]["method"]
  assert s["arms"]["search_early"]["kind"] == "power_control" and s["arms"]["search_early"]["per_replicate"]["greedy_at_cut"] == [None, None]
  assert os.listdir(os.path.join(workdir, "tb", "p2", "all"))
  for sub in ("hybrid", os.path.join("p3", "hard9")):
    assert os.listdir(os.path.join(workdir, "tb", sub, "all")) and os.listdir(os.path.join(workdir, "tb", sub, "seed_0"))
  p3 = json.load(open(os.path.join(workdir, "p3", "summary.json")))
  assert p3["targets"]["hard9"]["horizon_steps"] == 1200 and p3["targets"]["hard9"]["task_ids"] == json.load(
      open(os.path.join(workdir, "p3", "hard9", "teachers", "summary.json")))["task_ids"]
  assert p3["targets"]["heldout"]["role"] == "positive_control"
  # The positive control scores the same held-out goals P2 rolls out on.
  assert p3["targets"]["heldout"]["task_ids"] == s["task_ids"]


def test_p3_hybrids_and_the_frozen_imitator_see_the_same_tasks_and_keys(finished):
  """Until its first SGD step a hybrid is the frozen imitator: on the same tasks with the same keys its
  first act_steps of episodes are the frozen run's, episode for episode (P3 targets and the hybrid stage)."""
  workdir = finished[0]
  config = darkroom.get_config("smoke")
  act, ep = int(config.experiments.hybrid.learner.act_steps), 20
  n_h = int(config.experiments.p3.hybrid_tasks)
  p3 = json.load(open(os.path.join(workdir, "p3", "summary.json")))
  assert "heldout" not in p3["hybrid"]          # experiments.p3.targets.heldout.hybrid=False
  for name in ("hard9",):
    z = np.load(os.path.join(workdir, "p3", name, "returns.npz"))
    frozen = z["frozen/episode_return"]
    assert frozen.shape[1] == int(config.experiments.p3.num_tasks)
    assert p3["hybrid"][name]["task_ids"] == p3["targets"][name]["task_ids"][:n_h]
    for v in ("full", "lora"):
      hy = z[f"hybrid_{v}/episode_return"]
      assert hy.shape[:2] == (2, n_h)
      np.testing.assert_array_equal(hy[..., :act // ep], frozen[:, :n_h, :act // ep])
  z = np.load(os.path.join(workdir, "hybrid", "returns.npz"))
  for v in ("full", "lora"):
    np.testing.assert_array_equal(z[f"{v}/episode_return"][..., :act // ep], z["frozen/episode_return"][..., :act // ep])


def test_p1_prompt_is_the_end_of_each_replicates_own_teacher_history(finished):
  """The prompted P1 rollout's context holds the last whole episodes of stream 0 of that replicate's teacher
  on that task (not another replicate's)."""
  from cl_limits.histories import store  # noqa: PLC0415
  from cl_limits.stages import p1  # noqa: PLC0415
  workdir = finished[0]
  history, _ = store.load(os.path.join(workdir, "teachers", "histories"))
  prompt = p1.prompts(history, 2, 20)
  obs = np.asarray(history.obs)
  for r in range(2):
    for k in range(2):
      np.testing.assert_array_equal(prompt.obs[r, k], obs[r, k, 0, -20:])
  assert np.asarray(prompt.done)[..., -1].all()          # ends at an episode end
  assert not np.array_equal(prompt.obs[0], prompt.obs[1])


def test_a_kept_prompt_is_the_end_of_the_arms_own_kept_data(finished):
  """`p1.kept_prompts`: the last L kept steps of stream 0, in time order, for the smoke run's ad_early arm
  (every episode of the first 20%): here the steps just before that arm's cut, ending at an episode end;
  a prompt longer than the kept data is a one-line error."""
  from cl_limits.histories import datasets, store  # noqa: PLC0415
  from cl_limits.stages import p1  # noqa: PLC0415
  from cl_limits.stages.base import ConfigError  # noqa: PLC0415
  workdir = finished[0]
  history, _ = store.load(os.path.join(workdir, "teachers", "histories"))
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  arm = datasets.resolve_arm(darkroom.get_config("smoke").imitation.arms.ad_early)
  keep = datasets.arm_keep(done, np.asarray(history.episode), arm)
  prompt = p1.kept_prompts(history, keep, 2, 20)
  obs = np.asarray(history.obs)
  for r in range(2):
    for k in range(2):
      last = int(np.flatnonzero(keep[r, k, 0])[-1])
      assert keep[r, k, 0, last - 19:last + 1].all()          # every episode kept: one contiguous stretch
      np.testing.assert_array_equal(prompt.obs[r, k], obs[r, k, 0, last - 19:last + 1])
      assert last + 1 < obs.shape[3]                          # the cut, not the end of the history
  assert np.asarray(prompt.done)[..., -1].all()
  with pytest.raises(ConfigError, match="fewer than the"):
    p1.kept_prompts(history, keep, 2, int(keep[0, 0, 0].sum()) + 1)


def test_finished_run_only_prints_its_report(finished):
  workdir, report, _ = finished
  logs = []
  assert run_pipeline(darkroom.get_config("smoke"), workdir, log=logs.append) == report
  assert logs == [f"[pipeline] finished run; report: {report}"]


def test_killed_during_imitation_resumes_without_redoing_teachers(tmp_path):
  config = darkroom.get_config("smoke")
  with config.unlocked():                 # the stages after evaluation are not what this test is about
    config.experiments.p3.arm = ""
    config.experiments.hybrid.arm = ""
  workdir = str(tmp_path)

  def die_in_imitation(line):
    if line.startswith("[imitation] segment 2/"):
      raise Killed()
  with pytest.raises(Killed):
    run_pipeline(config, workdir, log=die_in_imitation)
  hist = os.path.join(workdir, "teachers", "histories")
  stamps = {f: os.stat(os.path.join(hist, f)).st_mtime_ns for f in os.listdir(hist)}
  logs = []
  report = run_pipeline(config, workdir, log=logs.append)
  assert "[pipeline] teachers: reused" in logs
  assert not any(line.startswith("[teachers] segment") for line in logs)
  assert any("resuming from segment 1/2" in line for line in logs)
  assert {f: os.stat(os.path.join(hist, f)).st_mtime_ns for f in os.listdir(hist)} == stamps
  assert "| P2 beyond the ceiling" in open(report).read()


def test_record_time_gap_keeps_every_kth_episode_and_the_full_learning_curve(finished, tmp_path):
  """A teacher run with teacher.record_gap=3 stores only every 3rd episode (about a third of the bytes)
  but the same learning curves as the full run, which equal the curves recomputed from the full store."""
  import jax  # noqa: PLC0415
  import ml_collections  # noqa: PLC0415
  from cl_limits.histories import history as history_lib, store  # noqa: PLC0415
  from cl_limits.stages.pipeline import run_stage  # noqa: PLC0415
  workdir, _, _ = finished
  full_dir = os.path.join(workdir, "teachers")
  cfg = ml_collections.ConfigDict(darkroom.get_config("smoke").to_dict())
  cfg.teacher.record_gap = 3
  run_stage(cfg, str(tmp_path), "teachers", log=lambda *_: None)
  gapped_dir = os.path.join(str(tmp_path), "teachers")
  full, _ = store.load(os.path.join(full_dir, "histories"))
  gapped, manifest = store.load(os.path.join(gapped_dir, "histories"))
  assert manifest["record_gap"] == 3
  want = history_lib.keep_every(full, 3)
  for f in history_lib.FIELDS:     # chunk by chunk vs all at once: same kept steps, per-chunk padding
    a, b = np.asarray(getattr(gapped, f)), np.asarray(getattr(want, f))
    ka, kb = np.asarray(gapped.episode) >= 0, np.asarray(want.episode) >= 0
    assert [a[i, j, e][ka[i, j, e]].tolist() for i, j, e in np.ndindex(ka.shape[:3])] == \
           [b[i, j, e][kb[i, j, e]].tolist() for i, j, e in np.ndindex(kb.shape[:3])], f
  assert 0.2 < gapped.action.shape[-1] / full.action.shape[-1] < 0.5
  c_full, c_gap = np.load(os.path.join(full_dir, "curves.npz")), np.load(os.path.join(gapped_dir, "curves.npz"))
  np.testing.assert_allclose(c_gap["returns"], c_full["returns"])
  log_every = int(cfg.teacher.log_every)
  for s, k in np.ndindex(c_full["returns"].shape[:2]):    # the curves the store itself gives
    x, y = history_lib.learner_curve(jax.tree.map(lambda a: a[s, k], full))
    b = (x - 1) // log_every
    for j in np.unique(b):
      np.testing.assert_allclose(c_full["returns"][s, k, j], y[b == j].mean(), rtol=1e-6)


_LOAD_ON_ONE_DEVICE = """
import json, sys
import jax
jax.config.update("jax_num_cpu_devices", 1)
import numpy as np
from cl_limits.stages.artifacts import final_imitators as load_final
from cl_limits.stages.artifacts import final_state as load_final_state
from experiments.configs import darkroom
config = darkroom.get_config("smoke")
_, params, _, _ = load_final(config, sys.argv[1])
teachers = load_final_state(config, sys.argv[1])
total = lambda t: float(sum(np.abs(np.asarray(x, np.float64)).sum() for x in jax.tree.leaves(t)))
print(json.dumps([jax.device_count(), total(params), total(teachers.params)]))
"""


def test_checkpoints_restore_on_a_different_device_count(finished):
  """A run trained with its seeds sharded over 4 devices loads, with the same values, in a process that
  has one (train on a GPU box, evaluate elsewhere)."""
  import subprocess  # noqa: PLC0415
  import sys  # noqa: PLC0415

  import jax  # noqa: PLC0415

  from cl_limits.stages.artifacts import final_imitators as load_final  # noqa: PLC0415
  from cl_limits.stages.artifacts import final_state as load_final_state  # noqa: PLC0415
  workdir = finished[0]
  config = darkroom.get_config("smoke")
  _, params, _, _ = load_final(config, workdir)
  assert len(params["params"]["head"]["kernel"].sharding.device_set) > 1     # saved and loaded sharded here
  total = lambda t: float(sum(np.abs(np.asarray(x, np.float64)).sum() for x in jax.tree.leaves(t)))
  out = subprocess.run([sys.executable, "-c", _LOAD_ON_ONE_DEVICE, workdir], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert out.returncode == 0, out.stderr[-2000:]
  devices, im_total, teacher_total = json.loads(out.stdout.strip().splitlines()[-1])
  assert devices == 1
  assert im_total == pytest.approx(total(params), rel=1e-6)
  assert teacher_total == pytest.approx(total(load_final_state(config, workdir).params), rel=1e-6)


def test_reproduces_the_pinned_numbers(finished):
  """tests/pinned/darkroom_smoke.json: every summary number the :smoke job writes (tests/pinned/collect.py,
  re-pinned when the verdict protocol changed them on purpose: replicates, per-replicate ceilings); same
  files, keys, arm order and values."""
  compare(finished[0], "darkroom_smoke.json")


def file_stamps(directory):
  return {os.path.join(r, f): os.stat(os.path.join(r, f)).st_mtime_ns
          for r, _, fs in os.walk(directory) for f in fs}


def test_killed_p2_resumes_mid_rollout_with_the_uninterrupted_result(smoke_pipeline, tmp_path, monkeypatch):
  """P2 killed between two chunks of a held-out rollout, then run again: it resumes that rollout from the
  checkpoint written between the chunks, its returns equal the uninterrupted run's (one scan per rollout,
  in the finished smoke run), and its checkpoints are gone once its summary is written. The chunking is
  not part of the stage's fingerprint (it changes how the rollout runs, not what it computes)."""
  from cl_limits.rollouts import chunked  # noqa: PLC0415
  src = smoke_pipeline[0]
  workdir = str(tmp_path / "run")
  shutil.copytree(src, workdir)
  os.remove(os.path.join(workdir, "p2", "summary.json"))      # P2 killed before it finished
  config = smoke_with("experiments.rollout", ml_collections.ConfigDict(
      dict(chunks=4, progress_seconds=0.0, checkpoint_seconds=0.0)))
  partial = os.path.join(workdir, "p2", "partial")
  seen = []

  def kill(label, t, horizon):
    if os.path.isdir(partial) and os.listdir(partial) and t < horizon:
      seen.append((label, t, horizon))
      if len(seen) == 2:
        raise Killed
  monkeypatch.setattr(chunked, "after_chunk", kill)
  with pytest.raises(Killed):
    pipeline.run_stage(config, workdir, "p2", log=lambda line: None)
  monkeypatch.undo()
  label, t, horizon = seen[-1]
  assert 0 < t < horizon
  logs = []
  pipeline.run_stage(config, workdir, "p2", log=logs.append)
  assert "[pipeline] p2: resuming" in logs
  assert f"{label}: resuming from its checkpoint at step {t:,} of {horizon:,}" in logs
  assert any(line.startswith(f"{label}: step ") and "ETA" in line for line in logs)
  assert not os.path.exists(partial)
  with np.load(os.path.join(src, "p2", "returns.npz")) as a, np.load(os.path.join(workdir, "p2", "returns.npz")) as b:
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_killed_hybrid_stage_resumes_mid_run_with_the_uninterrupted_result(smoke_pipeline, tmp_path, monkeypatch):
  """The hybrid stage killed between two chunks of a learner (its weights, optimiser and buffer saved
  there), then run again: it resumes that learner from the checkpoint, its returns equal an uninterrupted
  run with the same chunking, and its checkpoints are gone once its summary is written."""
  from cl_limits.rollouts import chunked  # noqa: PLC0415
  src = smoke_pipeline[0]
  config = smoke_with("experiments.rollout", ml_collections.ConfigDict(
      dict(chunks=4, progress_seconds=0.0, checkpoint_seconds=0.0)))
  dirs = {}
  for name in ("whole", "killed"):
    dirs[name] = str(tmp_path / name)
    shutil.copytree(src, dirs[name])
    os.remove(os.path.join(dirs[name], "hybrid", "summary.json"))
  pipeline.run_stage(config, dirs["whole"], "hybrid", log=lambda line: None)
  partial = os.path.join(dirs["killed"], "hybrid", "partial")
  seen = []

  def kill(label, t, horizon):
    if "hybrid" in label.split("]")[-1] and t < horizon:
      seen.append((label, t, horizon))
      if len(seen) == 2:
        raise Killed
  monkeypatch.setattr(chunked, "after_chunk", kill)
  with pytest.raises(Killed):
    pipeline.run_stage(config, dirs["killed"], "hybrid", log=lambda line: None)
  monkeypatch.undo()
  label, t, horizon = seen[-1]
  assert 0 < t < horizon and os.listdir(partial)
  logs = []
  pipeline.run_stage(config, dirs["killed"], "hybrid", log=logs.append)
  assert f"{label}: resuming from its checkpoint at step {t:,} of {horizon:,}" in logs
  assert not os.path.exists(partial)
  with np.load(os.path.join(dirs["whole"], "hybrid", "returns.npz")) as a, \
       np.load(os.path.join(dirs["killed"], "hybrid", "returns.npz")) as b, \
       np.load(os.path.join(src, "hybrid", "returns.npz")) as c:
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for k in ("frozen/episode_return", "frozen/episode_end"):      # a frozen run does not depend on chunks
      np.testing.assert_array_equal(a[k], c[k], err_msg=k)


def test_a_changed_field_reruns_its_stage_and_what_reads_it(smoke_pipeline, tmp_path):
  src = smoke_pipeline[0]
  workdir = str(tmp_path / "run")
  shutil.copytree(src, workdir)
  kept = {d: file_stamps(os.path.join(workdir, d)) for d in ("teachers", "imitators", "eval", "p1", "hybrid")}
  config = smoke_with("experiments.p2.horizon_factor", 3.0)
  logs = []
  pipeline.run(config, workdir, log=logs.append)
  steps = [line for line in logs if line.startswith("[pipeline] ")]
  assert "[pipeline] p2: re-run (experiments.p2.horizon_factor changed)" in steps
  assert "[pipeline] report: re-run (its input p2 changed)" in steps
  for name in ("teachers", "imitation", "evaluation", "p1", "p3", "hybrid"):
    assert f"[pipeline] {name}: reused" in steps
  assert not any(line.startswith(("[teachers] segment", "[imitation] segment")) for line in logs)
  for d, stamps in kept.items():
    assert file_stamps(os.path.join(workdir, d)) == stamps, f"{d} was touched"
  p2 = json.load(open(os.path.join(workdir, "p2", "summary.json")))["arms"]["ad_p50"]
  assert p2["horizon_steps"] == 3 * p2["cut_learner_steps"] == 1800
  assert "3 x the environment steps of one truncated history" in open(os.path.join(workdir, "report.md")).read()
  logs.clear()
  pipeline.run(config, workdir, log=logs.append)
  assert logs == [f"[pipeline] finished run; report: {os.path.join(workdir, 'report.md')}"]
  # The old horizon again: P2 is re-run (not silently taken from the 3x run).
  logs.clear()
  pipeline.run(darkroom.get_config("smoke"), workdir, log=logs.append)
  assert "[pipeline] p2: re-run (experiments.p2.horizon_factor changed)" in logs
  p2 = json.load(open(os.path.join(workdir, "p2", "summary.json")))["arms"]["ad_p50"]
  assert p2["horizon_steps"] == 1200


def test_reused_teachers_of_another_config_are_refused(smoke_pipeline, tmp_path):
  config = smoke_with("teacher.dqn.lr", 5e-4)
  with config.unlocked():
    config.teachers_from = smoke_pipeline[0]
  with pytest.raises(ConfigError, match=r"teachers_from: .*teacher.dqn.lr changed"):
    pipeline.run(config, str(tmp_path), log=lambda *_: None)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _get(port, path, **query):
  url = f"http://127.0.0.1:{port}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
  with urllib.request.urlopen(url, timeout=10) as r:
    return json.loads(r.read())


def test_tensorboard_serves_every_stages_curves_on_the_step_axis(smoke_pipeline):
  """`tensorboard --logdir <run>` (installed by the README's install command) serves the teacher,
  imitator, P2 and ceiling curves; every tag's steps are environment steps, none repeated."""
  workdir = smoke_pipeline[0]
  want = {"teacher/return": "teachers/tb/all", "p2/ad_p50/teacher": "tb/p2/teacher/all",
          "p2/ad_p50/imitator": "tb/p2/all", "p2/ad_p50/ceiling": "tb/p2/all",
          "hybrid/frozen": "tb/hybrid/all", "imitator/loss": "imitators/tb/ad_p50/all"}
  # On disk first (what the server will read), so a failure says whether the curves were never written or
  # the server was slow to load them on a busy machine.
  from tensorboard.backend.event_processing import event_multiplexer  # noqa: PLC0415
  mux = event_multiplexer.EventMultiplexer().AddRunsFromDirectory(workdir)
  mux.Reload()
  on_disk = {run: set(v.get("scalars", [])) | set(v.get("tensors", [])) for run, v in mux.Runs().items()}
  unwritten = [(t, r) for t, r in want.items() if t not in on_disk.get(r, ())]
  assert not unwritten, ("not written", unwritten, sorted(on_disk))
  exe = shutil.which("tensorboard", path=os.path.dirname(sys.executable)) or shutil.which("tensorboard")
  assert exe, "tensorboard is not installed"
  port = _free_port()
  proc = subprocess.Popen([exe, "--logdir", workdir, "--port", str(port), "--host", "127.0.0.1",
                           "--load_fast=false", "--reload_interval=1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline, tags = time.time() + 240, {}       # a loaded 2-core machine can take minutes
    while time.time() < deadline:
      try:
        tags = _get(port, "/data/plugin/scalars/tags")
        if all(run in tags and tag in tags[run] for tag, run in want.items()):
          break
      except OSError:
        pass
      time.sleep(1)
    missing = [(t, r) for t, r in want.items() if r not in tags or t not in tags[r]]
    assert not missing, (missing, sorted(tags))
    for tag, run in want.items():
      points = _get(port, "/data/plugin/scalars/scalars", run=run, tag=tag)
      steps = [p[1] for p in points]
      assert len(steps) == len(set(steps)), (tag, run, steps)
      assert len(steps) >= 2
    teacher = [p[1] for p in _get(port, "/data/plugin/scalars/scalars", run="teachers/tb/all", tag="teacher/return")]
    assert teacher == list(range(200, 1201, 200))           # one point per logging window of env steps
    p2 = json.load(open(os.path.join(workdir, "p2", "summary.json")))["arms"]["ad_p50"]
    imitator = [p[1] for p in _get(port, "/data/plugin/scalars/scalars", run="tb/p2/all", tag="p2/ad_p50/imitator")]
    # The rollout's last step on its data's learner-step axis (beside the teachers' curve there): an
    # imitator's step is gap x streams learner steps from its data's first kept step.
    with np.load(os.path.join(workdir, "p2", "returns.npz")) as z:
      x0, scale = float(z["ad_p50/axis_x0"].max()), float(z["ad_p50/axis_scale"])
    assert scale == p2["gap"] * 2 and max(imitator) == int(np.ceil(x0 + scale * p2["horizon_steps"]))
  finally:
    proc.terminate()
    proc.wait(timeout=20)


def test_sensitivity_reruns_the_verdicts_at_another_temperature_on_the_same_imitators(smoke_pipeline, tmp_path):
  """experiments.sensitivity.temperatures=argmax: P1, P2 and P3 again with argmax actions on the finished
  run's imitators (linked, not retrained), as steps of their own, every other stage reused, and a report section with one column
  per temperature (the run's own first) and the temperature the data-driven rule would choose."""
  workdir = str(tmp_path / "run")
  shutil.copytree(smoke_pipeline[0], workdir, symlinks=True)
  logs = []
  pipeline.run(smoke_with("experiments.sensitivity.temperatures", "argmax"), workdir, log=logs.append)
  steps = [line for line in logs if line.startswith("[pipeline] ")]
  for name in ("teachers", "imitation", "evaluation", "p1", "p2", "p3", "hybrid"):
    assert f"[pipeline] {name}: reused" in steps
  assert not any(line.startswith(("[teachers] segment", "[imitation] segment")) for line in logs)
  s = json.load(open(os.path.join(workdir, "sensitivity", "summary.json")))
  assert s["order"] == ["sampled", "greedy"] and s["rule_choice"] in s["columns"]
  assert os.path.islink(os.path.join(workdir, "sensitivity", "argmax", "imitators"))
  main_rows = [r["prediction"] for r in s["columns"]["sampled"]["rows"]]
  greedy_rows = [r["prediction"] for r in s["columns"]["greedy"]["rows"]]
  assert set(greedy_rows) <= set(main_rows) and any(p.startswith("P3 positive control") for p in greedy_rows)
  for col in ("sampled", "greedy"):      # a row without headroom reads the same at every temperature
    for r in s["columns"][col]["rows"]:
      if r["prediction"].startswith("P2 beyond the ceiling") and any(a in r["prediction"] for a in s["skipped_p2_rows"]):
        assert r["verdict"].startswith("inconclusive"), r
  for name in ("p1", "p2", "p3"):           # each column's stages are steps with their own fingerprints
    record = json.load(open(os.path.join(workdir, "sensitivity", "argmax", name, "stage.json")))
    assert record["step"] == f"sensitivity/argmax/{name}" and record["reads"]["evaluation"]["greedy"] is True
  assert not any("env steps in" in line and any(a in line for a in s["skipped_p2_rows"])
                 for line in logs if line.startswith("[p2]"))
  text = open(os.path.join(workdir, "report.md")).read()
  assert "## Sensitivity to the action temperature" in text and "| row | sampled | greedy |" in text
  for col, sub in (("sampled", workdir), ("greedy", os.path.join(workdir, "sensitivity", "argmax"))):
    p2s = json.load(open(os.path.join(sub, "p2", "summary.json")))   # each column's own competence gates
    want = {a: (e["competence"]["interval"], e["competence"]["ok"]) for a, e in p2s["arms"].items()
            if "interval" in e.get("competence", {})}
    got = {a: (g["interval"], g["ok"]) for a, g in s["columns"][col]["gates"].items()}
    assert got == want and want, (col, got, want)
    for a in want:
      assert f"| competence gate, {a}: gain over random" in text
  assert os.path.getsize(os.path.join(workdir, "sensitivity", "sensitivity.png")) > 1000


def test_a_p2_row_without_headroom_reads_inconclusive_and_skips_its_rollout(smoke_pipeline, tmp_path):
  """With headroom_fraction=1 no teacher rise can pass the gate: every P2 row (and its trend) reads
  "inconclusive: no headroom" with the numbers, the long held-out rollout is not run, and the competence
  gate plays one rollout per task."""
  workdir = str(tmp_path / "run")
  shutil.copytree(smoke_pipeline[0], workdir, symlinks=True)
  logs = []
  pipeline.run(smoke_with("experiments.p2.headroom_fraction", 1.0), workdir, log=logs.append)
  assert "[pipeline] p2: re-run (experiments.p2.headroom_fraction changed)" in logs
  assert not any("env steps in" in line for line in logs if line.startswith("[p2]"))
  s = json.load(open(os.path.join(workdir, "p2", "summary.json")))
  comp_rets = np.load(os.path.join(workdir, "p2", "returns.npz"))
  for name, e in s["arms"].items():
    assert "skipped" in e and not e["headroom"]["ok"] and "late" not in e
    # its competence gate plays one rollout per task (the preset's 2 only where a verdict can read it)
    assert e["competence"]["rollouts"] == 1 and comp_rets[f"{name}/competence_return"].shape[1] == 2
  # competence_protocol replays each row's gate with the rollouts it played, not the config's 2
  res = subprocess.run([sys.executable, "-m", "experiments.competence_protocol",
                        "--config=experiments/configs/darkroom.py:smoke", f"--workdir={workdir}",
                        "--config.experiments.p2.headroom_fraction=1.0"], capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  assert "ad_early: the competence gate on 2 training tasks, " in res.stdout      # one rollout each (2: "x 2 rollouts")
  assert json.loads(res.stdout.splitlines()[-1])["rollouts"] == 1
  assert "  equals the P2 stage's competence gate: yes" in res.stdout.splitlines()
  text = open(os.path.join(workdir, "report.md")).read()
  rows = _table_rows(text, "## Verdicts", "### Hybrid")
  p2_rows = [r for r in rows if r.startswith(("| P2", "| trend"))]
  assert len(p2_rows) == 4 and all("**inconclusive: no headroom**" in r for r in p2_rows)   # no trend rows
  assert all("was not run" in r for r in p2_rows)


def _leaves(node, prefix=""):
  if isinstance(node, dict):
    for k, v in node.items():
      yield from _leaves(v, f"{prefix}.{k}" if prefix else k)
  else:
    yield prefix, node


def _perturbed(value):
  if isinstance(value, bool):
    return not value
  if isinstance(value, int):
    return value + 1
  if isinstance(value, float):
    return value * 1.5 + 0.25
  if isinstance(value, str):
    return value + "_x"
  return None                                   # lists and absent fields: not perturbed here


def spec_fields_rerun_exactly_their_stages(config, workdir):
  """For every leaf field of every step's spec (a finished run in `workdir`): with that one field changed,
  the steps that re-run are exactly those whose spec holds the field (and see it change) and everything
  downstream of them, each stale step's reason naming the field or its changed input. Returns the number
  of fields tried."""
  base_steps = pipeline.plan(config, workdir)
  assert all(a[0] == "reuse" for a in pipeline.decide(base_steps).values())
  fields = sorted({p for s in base_steps for p, _ in _leaves(read_fields(s.config, s.stage.reads, s.stage.ignores))})
  tried = 0
  for path in fields:
    value = field(config, path)
    new = _perturbed(value)
    if new is None:
      continue
    cfg = ml_collections.ConfigDict(config.to_dict())
    node = cfg
    *parents, last = path.split(".")
    for p in parents:
      node = node[p]
    node[last] = new
    steps = pipeline.plan(cfg, workdir)
    if [s.id for s in steps] != [s.id for s in base_steps]:
      continue                                  # a field that changes the plan itself (which steps exist)
    tried += 1
    old_by_id = {s.id: s for s in base_steps}
    # The steps whose spec sees a change: the field itself, or (a P3 target's DQN, whose config is derived
    # from the main one) the derived field it becomes.
    seen = {s.id: changed_fields(read_fields(old_by_id[s.id].config, s.stage.reads, s.stage.ignores),
                                 read_fields(s.config, s.stage.reads, s.stage.ignores)) for s in steps}
    direct = {i for i, c in seen.items() if c}
    assert all(seen[s.id] == [path] for s in steps if s.id in direct and s.config is cfg), (path, seen)
    expected, changed = set(), True
    while changed:
      changed = False
      for s in steps:
        if s.id not in expected and (s.id in direct or expected & set(s.inputs)):
          expected.add(s.id)
          changed = True
    try:
      decisions = pipeline.decide(steps)
    except ConfigError as e:                    # changed teachers shared with another run are refused
      assert "teachers_from" in str(e)
      continue
    rerun = {i for i, d in decisions.items() if d[0] == "rerun"}
    assert rerun == expected, (path, sorted(rerun ^ expected))
    for i in direct:
      assert all(f"{f} changed" in decisions[i][1] for f in seen[i]), (path, i, decisions[i][1])
  return tried


def test_each_spec_field_reruns_exactly_the_stages_that_read_it_and_their_downstream(smoke_pipeline):
  tried = spec_fields_rerun_exactly_their_stages(darkroom.get_config("smoke"), smoke_pipeline[0])
  assert tried > 100


def test_a_run_directory_says_which_config_commit_versions_and_device_made_it(finished):
  """`config.json` (the full resolved config), `provenance.json` (commit, versions, device; per step) and
  `log.txt` (every line, timestamped) after the :smoke job, and the report's provenance section."""
  workdir, report, logs = finished
  assert json.load(open(os.path.join(workdir, "config.json"))) == json.loads(json.dumps(darkroom.get_config("smoke").to_dict()))
  p = json.load(open(os.path.join(workdir, "provenance.json")))
  import jax  # noqa: PLC0415
  assert p["latest"]["versions"]["jax"] == jax.__version__ and p["latest"]["device"]["count"] == jax.device_count()
  assert len(p["latest"]["commit"]) == 40 or p["latest"]["commit"].startswith("unknown")
  assert {"teachers", "imitation", "p2", "report"} <= set(p["steps"])
  # Every step's wall time, recorded when it finished (the report's own after the report was written).
  assert all(q["wall_s"] >= 0 for q in p["steps"].values()) and p["steps"]["teachers"]["wall_s"] > 0.5
  text = open(report).read()
  assert "## Provenance" in text and p["latest"]["commit"][:12] in text
  timed = next(ln for ln in text.splitlines() if ln.startswith("Wall time of each step"))
  # (the report's own entry shows where the report was written again after a finished report step)
  assert f"teachers {outputs.minutes(p['steps']['teachers']['wall_s'])}; " in timed and timed.endswith(" in all.")
  log = open(os.path.join(workdir, "log.txt")).read().splitlines()
  assert any(line.split(" ", 1)[1] == logs[0] for line in log)            # the same lines, timestamped
  assert any("[pipeline] commit " in line for line in log)
  done = [ln.split(" ", 1)[1] for ln in log if "[pipeline] " in ln and ": done in " in ln]
  assert re.fullmatch(r"\[pipeline\] teachers: done in (\d+ min )?\d+ s \(step 1 of \d+ to run; .* since the first\)",
                      done[0]), done[0]
  assert any(ln.startswith("[pipeline] report: done in ") for ln in done)


def test_minutes_reads_as_a_person_writes_a_duration():
  assert [outputs.minutes(x) for x in (0, 41.4, 65, 725, 3600, 4113.4)] == [
      "0 s", "41 s", "1 min 5 s", "12 min 5 s", "1 h 0 min 0 s", "1 h 8 min 33 s"]


def test_the_main_job_ends_with_its_verdicts(finished):
  from cl_limits.report import document  # noqa: PLC0415
  lines = document.verdict_lines(finished[1])
  # and the forest plot of every verdict row, linked under the table
  assert os.path.getsize(os.path.join(finished[0], "verdicts.png")) > 5000
  assert "](verdicts.png)" in open(finished[1]).read().split("### Hybrid")[0]
  assert "inconclusive: imitator did not reproduce its data  <-  P1 snapshot" in lines[0] and lines[0].startswith("0.")
  # 11 verdict rows, 4 hybrid rows (and test_launch's sweep rows where its sweep ran on this run first)
  assert len(lines) >= 15 and all("[" in line for line in lines[:4])
