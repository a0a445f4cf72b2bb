"""Acceptance of the imitators on 9x9 DarkRoom (slow: about 55 minutes on 2 CPU cores).

AD trained on the DQN teachers' histories of the 61 training goals, rolled out frozen from an empty context
on the 20 held-out goals (100 episodes, context carried across episodes, actions sampled at the
temperature of darkroom.acceptance_evaluation, chosen on the training goals),
3 model seeds: in-context improvement (episodes 1-3 under half the last 10), a last-10 return of at least
70% of the teachers' final return, above the snapshot-BC control with a bootstrap CI excluding zero; and
an AD-epsilon model that improves in context too.

  python -m pytest -m slow tests/test_ad_darkroom_slow.py -s
"""
import os

import pytest

from cl_limits.stages import layout
from cl_limits.stages.pipeline import run_stage
from experiments.configs import darkroom


@pytest.mark.slow
def test_ad_learns_in_context_on_heldout_goals(tmp_path):
  workdir = os.environ.get("CL_LIMITS_SLOW_WORKDIR") or str(tmp_path)
  config = darkroom.get_config()
  with config.unlocked():
    config.imitation = darkroom.acceptance_imitation()
    config.teacher.dqn = darkroom.acceptance_teacher_dqn()
    config.evaluation = darkroom.acceptance_evaluation()
  for stage in ("teachers", "imitation", "evaluation"):
    run_stage(config, workdir, stage)
  s = layout.summary(workdir, "eval")
  ad, bc, eps = s["arms"]["ad"], s["arms"]["bc"], s["arms"]["ad_eps"]
  teacher = s["teacher_final_return"]
  print({a: (v["early"][0], v["late"], v.get("late_over_teacher")) for a, v in s["arms"].items()},
        "teacher", teacher, s["comparisons"])
  assert ad["early"][0] < 0.5 * ad["late"][0]
  assert ad["late"][0] >= 0.7 * teacher
  diff = next(c for c in s["comparisons"] if (c["a"], c["b"]) == ("ad", "bc"))["diff"]
  assert diff[1] > 0, f"AD - BC late return {diff} does not exclude zero"
  assert eps["early"][0] < 0.5 * eps["late"][0]
  assert os.path.getsize(os.path.join(workdir, "eval", "curves.png")) > 1000
