"""Sweeps: the capacity sweep through launch/local.py and submitit's debug executor, then aggregation."""
import json
import os
import shutil
import time

import numpy as np
import pytest

from cl_limits.analysis import curves
from cl_limits.stages.base import ConfigError
from experiments.configs import darkroom
from launch import local, slurm, sweep

HERE = os.path.dirname(os.path.abspath(__file__))
BROKEN = os.path.join(HERE, "sweep_with_broken_job.py")
BAD_CONFIG = os.path.join(HERE, "sweep_with_bad_config.py")
CAPACITY = "experiments/configs/capacity.py:smoke"


def test_sweep_needs_a_finished_main_job(tmp_path):
  with pytest.raises(FileNotFoundError, match="run the main job there first"):
    local.run_local(CAPACITY, str(tmp_path))
  with pytest.raises(ValueError, match="not a sweep file"):
    sweep.jobs("experiments/configs/darkroom.py", str(tmp_path))


def test_a_sweep_with_a_bad_job_config_is_refused_before_any_job_starts(smoke_pipeline):
  root = smoke_pipeline[0]
  with pytest.raises(ConfigError, match=r"sweep job broken \(.*ctx2-huge\)"):
    local.run_local(BAD_CONFIG, root)
  assert not os.path.exists(os.path.join(root, "capacity_bad"))


def test_local_sweep_runs_skips_lists_failures_and_aggregates(smoke_pipeline):
  root, report, _ = smoke_pipeline
  logs = []
  # The third job fails at run time: its run directory holds a corrupt stage record.
  os.makedirs(os.path.join(root, "capacity", "broken", "imitators"))
  with open(os.path.join(root, "capacity", "broken", "imitators", "stage.json"), "w") as f:
    f.write("{not json")
  assert local.run_local(BROKEN, root, processes=2, log=logs.append) == 1
  assert any("1 of 3 jobs failed" in line for line in logs)
  assert any(line.startswith("[sweep]   broken: job broken exited with") for line in logs)
  cap = os.path.join(root, "capacity")
  summary = json.load(open(os.path.join(cap, "summary.json")))
  runs = {r["name"]: r for r in summary["runs"]}
  assert runs["broken"]["error"].startswith("not finished")
  assert (runs["ctx1-small"]["context_episodes"], runs["ctx2-small"]["context_episodes"]) == (1, 2)
  for name in ("ctx1-small", "ctx2-small"):   # late = the mean over replicates of the last-episodes mean
    z = np.load(os.path.join(cap, name, "eval", "returns.npz"))["episode_return"][0]
    late = z[..., -int(darkroom.get_config("smoke").evaluation.late_episodes):].mean(-1)
    assert runs[name]["late"][0] == pytest.approx(late.mean())
    # Every run also went through P2 (the AD recipe of the main job's ad_p50): late - ceiling and trend.
    p2 = json.load(open(os.path.join(cap, name, "p2", "summary.json")))["arms"]["ad"]
    assert runs[name]["late_minus_ceiling_per_replicate"] == p2["late_minus_ceiling"]["per_replicate"]
    assert runs[name]["trend"][0] == pytest.approx(p2["trend"]["estimate"])
  (c,) = summary["comparisons"]
  assert (c["larger"], c["smaller"]) == ("ctx2-small", "ctx1-small") and len(c["gain"]) == 3
  diff = np.subtract(runs["ctx2-small"]["late_minus_ceiling_per_replicate"],
                     runs["ctx1-small"]["late_minus_ceiling_per_replicate"])      # paired by replicate
  assert c["gain"][0] == pytest.approx(diff.mean()) and "late - ceiling" in c["measure"]
  assert os.path.getsize(os.path.join(cap, "capacity.png")) > 1000
  assert os.listdir(os.path.join(root, "tb", "capacity", "ctx2-small"))
  # The capacity rows reach the main job's report, verdict table included.
  text = open(report).read()
  verdicts = text[text.index("### Capacity and the gap"):text.index("Protocol, fixed before the run")]
  assert "| capacity (context, small model): in-context learning plateaus" in verdicts
  assert "## Capacity sweep" in text and "(capacity/capacity.png)" in text
  assert "| broken |" in text and "not finished" in text
  # Both runs reused the main job's teachers instead of training their own.
  for name in ("ctx1-small", "ctx2-small"):
    assert not os.path.exists(os.path.join(cap, name, "teachers"))
    assert "[pipeline] teachers: reused" in open(os.path.join(cap, name, "log.txt")).read()
  # A second launch skips the finished jobs (and fails the broken one again).
  logs.clear()
  assert local.run_local(BROKEN, root, log=logs.append) == 1
  assert "[sweep] ctx1-small: skipped" in logs and "[sweep] ctx2-small: skipped" in logs


def test_slurm_path_with_submitit_debug_executor(smoke_pipeline, tmp_path):
  src, _, _ = smoke_pipeline
  root = str(tmp_path / "root")
  shutil.copytree(os.path.join(src, "teachers"), os.path.join(root, "teachers"))
  jobs = sweep.jobs(CAPACITY, root)
  assert [j.name for j in jobs] == ["ctx1-small", "ctx2-small"]
  logs = []
  assert slurm.run_slurm(CAPACITY, root, cluster="debug", log=logs.append) == 0
  assert any(line.startswith("[sweep] submitted 2 jobs (debug)") for line in logs)
  assert all(j.done() for j in jobs)
  summary = json.load(open(os.path.join(root, "capacity", "summary.json")))
  assert [r["name"] for r in summary["runs"]] == ["ctx1-small", "ctx2-small"]
  assert os.path.getsize(os.path.join(root, "capacity", "capacity.png")) > 1000
  # The root has no finished main job here: aggregation says so instead of writing a partial report.
  assert any("has not finished" in line for line in logs)
  # Resubmitting submits nothing: both are finished.
  logs.clear()
  assert slurm.run_slurm(CAPACITY, root, cluster="debug", log=logs.append) == 0
  assert not any("submitted" in line for line in logs)


def test_episodes_to_fraction_known_answers():
  curve = [0, 0, 0, 0, 0, 10, 10, 10, 10, 10]
  # 5-episode trailing mean reaches 5 (half of 0 -> 10) at the window ending on episode 8 (1-based).
  assert curves.episodes_to_fraction(curve, 0.0, 10.0, 0.5, 5) == 8
  assert curves.episodes_to_fraction(curve, 0.0, 10.0, 0.5, 1) == 6
  assert curves.episodes_to_fraction(curve, 5.0, 5.0) is None


def test_replay_slope_known_answers():
  """Episodes to half = 40 / (gap x streams) in every replicate: slope -1 (it replays its data); the same
  number of episodes whatever the gap: slope 0 (its own pace)."""
  from cl_limits.analysis import verdicts  # noqa: PLC0415
  from launch import gapsweep  # noqa: PLC0415
  ks = (1, 2, 4, 8)
  replay = [{"kept_equivalent": k, "episodes_to_half_per_replicate": [40 // k, 40 // k, None]} for k in ks]
  slopes = gapsweep.replay_slopes(replay)
  assert slopes[0] == pytest.approx(-1.0, abs=0.05) and slopes[1] == slopes[0] and np.isnan(slopes[2])
  own = [{"kept_equivalent": k, "episodes_to_half_per_replicate": [12, 13]} for k in ks]
  np.testing.assert_allclose(gapsweep.replay_slopes(own), [0.0, 0.0], atol=1e-12)
  assert verdicts.replay((-1.0, -1.2, -0.8))[0] == "replays its data"
  assert verdicts.replay((0.0, -0.2, 0.2))[0] == "its own pace"
  assert verdicts.replay((-0.4, -1.0, 0.2))[0] == "inconclusive"


def test_gap_sweep_runs_beside_the_main_job_and_reaches_its_report(smoke_pipeline, tmp_path):
  src, _, _ = smoke_pipeline
  root = str(tmp_path / "root")
  shutil.copytree(src, root)
  logs = []
  assert local.run_local("experiments/configs/gap.py:smoke", root, processes=2, log=logs.append) == 0
  s = json.load(open(os.path.join(root, "gap", "summary.json")))
  runs = {r["name"]: r for r in s["runs"]}
  assert (runs["g1-s1"]["kept_equivalent"], runs["g2-s2"]["kept_equivalent"]) == (1, 4)
  data = json.load(open(os.path.join(root, "gap", "g2-s2", "imitators", "data.json")))["arms"]["ad"]
  assert (data["gap"], data["streams"]) == (2, 2)
  for name, r in runs.items():      # episodes to half, per replicate, from the run's own evaluation curve
    z = np.load(os.path.join(root, "gap", name, "eval", "returns.npz"))["episode_return"][0]
    c = np.nanmean(z, axis=1)
    for i, h in enumerate(r["episodes_to_half_per_replicate"]):
      assert h == curves.episodes_to_fraction(c[i], c[i, :2].mean(), c[i, -2:].mean())
  assert os.path.getsize(os.path.join(root, "gap", "gap.png")) > 1000
  text = open(os.path.join(root, "report.md")).read()
  assert "## Gap x streams sweep" in text and "(gap/gap.png)" in text


def test_device_slots_give_each_job_its_own_devices_or_memory_share():
  """--devices groups go to the slots in turn as CUDA_VISIBLE_DEVICES; slots that share devices get a
  memory fraction that sums to at most 0.9 per device; bad groups are one-line errors."""
  from cl_limits.stages.base import ConfigError  # noqa: PLC0415
  assert local.slots(1) == [{}]
  assert local.slots(2, "0,1") == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
  assert local.slots(4, "0+1,2+3") == [
      {"CUDA_VISIBLE_DEVICES": "0,1", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.45"},
      {"CUDA_VISIBLE_DEVICES": "2,3", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.45"}] * 2
  assert local.slots(3) == [{"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.3"}] * 3
  assert local.slots(3, mem_fraction=0.2) == [{"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.2"}] * 3
  with pytest.raises(ConfigError, match="--devices: 'gpu0'"):
    local.slots(2, "gpu0,1")
  with pytest.raises(ConfigError, match="--mem_fraction"):
    local.slots(2, mem_fraction=1.5)


def test_jobs_run_in_free_slots_and_never_share_one(tmp_path):
  """Six jobs on two single-device slots: at most one job per slot at any time, every job run once with
  its slot's environment, and a failing job does not stop the others."""
  import threading  # noqa: PLC0415
  envs = local.slots(2, "0,1")
  busy, seen, lock, results = set(), [], threading.Lock(), {}

  def runner(job, env):
    dev = env["CUDA_VISIBLE_DEVICES"]
    with lock:
      assert dev not in busy, f"slot {dev} given to two jobs at once"
      busy.add(dev)
      seen.append((job, dev))
    time.sleep(0.05)
    with lock:
      busy.discard(dev)
    if job == 3:
      raise RuntimeError("job 3 failed")
    return "done"
  local.run_in_slots(range(6), envs, runner, lambda job, r: results.__setitem__(job, r))
  assert sorted(j for j, _ in seen) == list(range(6))
  assert {d for _, d in seen} == {"0", "1"}
  assert isinstance(results[3], RuntimeError) and all(results[j] == "done" for j in (0, 1, 2, 4, 5))
