"""The main job on the :smoke config: pinned numbers, report with verdicts, figures, TensorBoard, fingerprints,
skip and resume."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from cl_limits.stages import pipeline
from cl_limits.stages.base import ConfigError
from cl_limits.stages.pipeline import run as run_pipeline
from experiments.configs import darkroom
from pinned.collect import compare
from test_stages import smoke_with


class Killed(Exception):
  pass


@pytest.fixture(scope="module")
def finished(smoke_pipeline):
  return smoke_pipeline


def test_report_opens_with_verdicts_and_figures(finished):
  workdir, report, logs = finished
  text = open(report).read()
  assert text.startswith("# cl_limits report: DarkRoom")
  verdicts = text[text.index("## Verdicts"):text.index("Evaluation protocol")]
  rows = [line for line in verdicts.splitlines() if line.startswith("| P")]
  # P1, P2 (one arm), and P3 for keytodoor (frozen, both hybrids); room13's DQN never beat the random policy
  # there, so it has nothing to normalise by and no row (its detail table says so).
  assert [r.split("|")[1].strip()[:2] for r in rows] == ["P1", "P2", "P3", "P3", "P3"]
  p3_rows = rows[2:]
  assert ["frozen imitator" in p3_rows[0], "hybrid_full" in p3_rows[1], "hybrid_lora" in p3_rows[2]] == [True] * 3
  assert all("transplant to keytodoor" in r for r in p3_rows)
  assert "| room13 | | | | | the DQN did not beat the random policy on any task" in text
  hybrid_rows = [line for line in verdicts.splitlines() if line.startswith("| hybrid")]
  assert len(hybrid_rows) == 2 and "P2 protocol" in hybrid_rows[0]
  for r in rows:
    assert any(f"**{v}**" in r for v in ("supported", "refuted", "inconclusive")), r
  assert "data cut at 50% of training" in rows[1]
  assert "sampled actions; every rollout starts from an empty context" in text
  for rel in ("p2/curves.png", "eval/curves.png", "teachers/teacher_curves.png", "hybrid/curves.png",
              "p3/keytodoor/curves.png", "p3/room13/curves.png"):
    assert f"({rel})" in text and os.path.getsize(os.path.join(workdir, rel)) > 1000
  assert "## P2: beyond the ceiling" in text and "| optimal return (oracle), mean over tasks |" in text
  p2 = json.load(open(os.path.join(workdir, "p2", "summary.json")))["arms"]["ad_p50"]
  # 2 streams x 600 steps per learner, cut at 50%: 300 stream steps = 600 learner steps; horizon 2x that.
  assert p2["cut_learner_steps"] == 600 and p2["horizon_steps"] == 1200 and p2["episodes"] == 60
  # DarkRoom goals differ in their optimal return: P2 also compares fractions of each task's optimum, and
  # its verdict row uses them.
  n = p2["normalised"]
  assert 0 < n["ceiling"] <= 1 and n["optimal_mean_data"] > 0 and n["optimal_mean_eval"] > 0
  assert n["ceiling"] * n["optimal_mean_data"] == pytest.approx(p2["ceiling"], rel=0.5)
  assert "as a fraction of each task's optimal return" in rows[1]
  # The teachers' greedy policy at the cut (after their last segment ending at or before it: 400 of 600).
  assert p2["teacher_greedy_at_cut"]["env_steps"] == 400 and 0 <= n["teacher_greedy_at_cut"] <= 1
  assert len(n["late_minus_teacher_greedy_at_cut"]) == 3 and "teachers' greedy policy at the cut" in text
  assert f"| {n['late_minus_ceiling'][0]:.3f} [" in rows[1]
  hybrid = json.load(open(os.path.join(workdir, "hybrid", "summary.json")))
  assert "normalised" in hybrid and all("normalised" in e for e in hybrid["learners"].values())
  assert os.listdir(os.path.join(workdir, "tb", "p2", "all"))
  for sub in ("hybrid", os.path.join("p3", "keytodoor")):
    assert os.listdir(os.path.join(workdir, "tb", sub, "all")) and os.listdir(os.path.join(workdir, "tb", sub, "seed_0"))
  p3 = json.load(open(os.path.join(workdir, "p3", "summary.json")))["targets"]["keytodoor"]
  assert p3["horizon_steps"] == 1200 and p3["task_ids"] == json.load(
      open(os.path.join(workdir, "p3", "keytodoor", "teachers", "summary.json")))["task_ids"]


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
from cl_limits.stages.imitation import final_imitators as load_final
from cl_limits.stages.teachers import final_state as load_final_state
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

  from cl_limits.stages.imitation import final_imitators as load_final  # noqa: PLC0415
  from cl_limits.stages.teachers import final_state as load_final_state  # noqa: PLC0415
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


def test_reproduces_the_numbers_pinned_before_the_stages_redesign(finished):
  """tests/pinned/darkroom_smoke.json: every summary number the :smoke job wrote before the stages layer
  existed (tests/pinned/collect.py on a run of that code); same files, keys, arm order and values."""
  compare(finished[0], "darkroom_smoke.json")


def file_stamps(directory):
  return {os.path.join(r, f): os.stat(os.path.join(r, f)).st_mtime_ns
          for r, _, fs in os.walk(directory) for f in fs}


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
  assert "[pipeline] report: re-run (experiments.p2.horizon_factor changed, its input p2 changed)" in steps
  for name in ("teachers", "imitation", "evaluation", "p1", "p3", "hybrid"):
    assert f"[pipeline] {name}: reused" in steps
  assert not any(line.startswith(("[teachers] segment", "[imitation] segment")) for line in logs)
  for d, stamps in kept.items():
    assert file_stamps(os.path.join(workdir, d)) == stamps, f"{d} was touched"
  p2 = json.load(open(os.path.join(workdir, "p2", "summary.json")))["arms"]["ad_p50"]
  assert p2["horizon_steps"] == 3 * p2["cut_learner_steps"] == 1800
  assert "3x the environment steps of one truncated history" in open(os.path.join(workdir, "report.md")).read()
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
  exe = shutil.which("tensorboard", path=os.path.dirname(sys.executable)) or shutil.which("tensorboard")
  assert exe, "tensorboard is not installed"
  port = _free_port()
  proc = subprocess.Popen([exe, "--logdir", workdir, "--port", str(port), "--host", "127.0.0.1",
                           "--load_fast=false", "--reload_interval=1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    want = {"teacher/return": "teachers/tb/all", "p2/ad_p50/teacher": "tb/p2/teacher/all",
            "p2/ad_p50/imitator": "tb/p2/all", "p2/ad_p50/ceiling": "tb/p2/all",
            "hybrid/frozen": "tb/hybrid/all", "imitator/loss": "imitators/tb/ad_p50/all"}
    deadline, tags = time.time() + 90, {}
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
    assert max(imitator) == p2["horizon_steps"]              # the rollout's environment steps
  finally:
    proc.terminate()
    proc.wait(timeout=20)
