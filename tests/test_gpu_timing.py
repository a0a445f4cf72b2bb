"""benchmarks/gpu_timing.py at the Breakout :smoke shapes: every program (the P3 target's own DQN and the
hybrid included) compiles and runs, and the extrapolation is the arithmetic its docstring states."""
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
  # The evaluation table (every arm) and P1 (prompted and from an empty context) count whole-episode caps
  cap = 1000                                                                    # gymnax MinAtar's time limit
  assert t["rollouts"]["eval_steps_per_replicate"] == len(c.imitation.arms) * int(c.evaluation.episodes) * cap
  assert t["rollouts"]["p1_steps_per_replicate"] == 2 * int(c.experiments.p1.episodes) * cap
  # The hybrid stage's segments (ad_p15's cut, horizon_factor 1, act_steps each); no P3 hybrid in :smoke
  h = c.experiments.hybrid
  segs = int(float(h.horizon_factor) * float(c.imitation.arms[h.arm].fraction) * int(c.teacher.dqn.total_steps)) \
      // int(h.learner.act_steps)
  assert t["hybrids"]["segments_per_variant"] == segs == 3 and set(t["hybrids"]) == {"segments_per_variant", "total_s", "full"}
  assert abs(t["hybrids"]["total_s"] - segs * t["hybrids"]["full"]["segment_s"]) < 1e-9
  # the act phase timed at --rollout_steps=200 of its 500, the other 300 at the frozen rollout's rate
  full = t["hybrids"]["full"]
  assert full["timed_act_steps"] == 200 and int(h.learner.act_steps) == 500
  assert abs(full["segment_s"] - full["timed_s"] - 300 / t["rollouts"]["steps_per_s_per_replicate"]) < 1e-9
  parts = sum(t[k]["total_s"] for k in ("teachers", "targets", "imitation", "rollouts", "hybrids"))
  assert abs(t["extrapolated_total_s"] - parts) < 1e-9 and parts > 0
