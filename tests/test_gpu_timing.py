"""benchmarks/gpu_timing.py at the Breakout :smoke shapes: every program (the P3 target's own DQN included)
compiles and runs, and the extrapolation is the arithmetic its docstring states."""
import json
import subprocess
import sys

from experiments.configs import breakout


def test_gpu_timing_times_every_program_and_extrapolates(tmp_path):
  out = tmp_path / "t.json"
  res = subprocess.run([sys.executable, "benchmarks/gpu_timing.py", "--config=experiments/configs/breakout.py:smoke",
                        f"--out={out}", "--rollout_steps=200", "--imitation_updates=5"],
                       capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  assert "extrapolated total" in res.stdout
  t = json.loads(out.read_text())
  c = breakout.get_config("smoke")
  assert t["teachers"]["segments"] == int(c.teacher.dqn.total_steps) // int(c.teacher.dqn.segment_steps)
  assert abs(t["teachers"]["total_s"] - t["teachers"]["segments"] * t["teachers"]["segment_s"]) < 1e-9
  assert t["imitation"]["models"] == len(c.imitation.arms) * int(c.imitation.num_seeds)
  # 5 updates timed, scaled to the config's segment of 10
  assert t["imitation"]["timed_updates"] == 5 and int(c.imitation.train.updates_per_segment) == 10
  assert abs(t["imitation"]["total_s"] - t["imitation"]["segments"] * t["imitation"]["segment_s"]) < 1e-9
  # SpaceInvaders' DQN learns from scratch (timed), Breakout's positive control reuses the study's teachers
  assert set(t["targets"]) == {"total_s", "spaceinvaders"}
  assert abs(t["targets"]["total_s"] - t["targets"]["spaceinvaders"]["total_s"]) < 1e-9
  p2 = c.experiments.p2
  want = (float(p2.horizon_factor) * 0.25 * int(c.teacher.dqn.total_steps)                   # ad_early
          + float(p2.horizon_factor) * 0.5 * int(c.imitation.ad_eps.steps) * int(c.imitation.ad_eps.streams))
  assert abs(t["rollouts"]["p2_steps_per_replicate"] - want) < 1e-6
  parts = sum(t[k]["total_s"] for k in ("teachers", "targets", "imitation", "rollouts"))
  assert abs(t["extrapolated_total_s"] - parts) < 1e-9 and parts > 0
