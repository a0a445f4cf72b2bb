"""Verdict rules: each prediction is decided from an interval estimate by a rule stated in the report.

Every rule returns (verdict, rule text) with verdict one of "supported", "refuted", "inconclusive" for
the prediction as DESIGN.md states it:

  P1  a snapshot imitator plays about as well as the teacher at the end of its data   (predicted: yes)
  P2  an imitator of a truncated history keeps improving past its data's ceiling        (predicted: no)
  capacity  in-context learning plateaus: more context / a bigger model does not raise the late return
"""
from __future__ import annotations

SUPPORTED, REFUTED, INCONCLUSIVE = "supported", "refuted", "inconclusive"


def ci_side(ci, threshold: float, at: str = "neither") -> str:
  """Where an interval (estimate, low, high) lies against a threshold: "above", "below" or "contains".
  `at` says where a bound exactly at the threshold counts ("above", "below", or "neither": strict)."""
  _, lo, hi = ci
  if lo > threshold or (at == "above" and lo == threshold):
    return "above"
  if hi < threshold or (at == "below" and hi == threshold):
    return "below"
  return "contains"


def _decide(ci, threshold, at, above, below):
  side = ci_side(ci, threshold, at)
  return above if side == "above" else below if side == "below" else INCONCLUSIVE


def p1(ratio_ci, threshold: float) -> tuple[str, str]:
  """ratio_ci: (estimate, low, high) of the snapshot imitator's late return / teachers' final return."""
  rule = (f"supported if the CI's lower end >= {threshold:g} (the imitator keeps at least {threshold:.0%} of "
          f"the teachers' final return); refuted if its upper end < {threshold:g}; else inconclusive")
  return _decide(ratio_ci, threshold, "above", SUPPORTED, REFUTED), rule


def p2(diff_ci, teacher_gain: float) -> tuple[str, str]:
  """diff_ci: (estimate, low, high) of the imitator's late return minus the ceiling of its data.

  teacher_gain: the teachers' final return minus the same ceiling. The prediction ("it does not keep
  improving past the ceiling") can only be tested where the teachers themselves did.
  """
  rule = ("prediction (no improvement past the ceiling) supported if the CI of late - ceiling lies at or "
          "below 0; refuted if it lies above 0; inconclusive if it contains 0 or if the teachers did not "
          "improve past the ceiling after the cut either")
  if teacher_gain <= 0:
    return INCONCLUSIVE, rule
  return _decide(diff_ci, 0.0, "below", REFUTED, SUPPORTED), rule


def capacity(gain_ci) -> tuple[str, str]:
  """gain_ci: (estimate, low, high) of the late return at the larger setting minus the smaller one."""
  rule = ("plateau supported if the CI of (larger - smaller) lies at or below 0; refuted if above 0; "
          "else inconclusive")
  return _decide(gain_ci, 0.0, "below", REFUTED, SUPPORTED), rule


def p3(final_ci, threshold: float) -> tuple[str, str]:
  """final_ci: (estimate, low, high) of the frozen imitator's final return in an env it never saw,
  normalised per task (0 = random policy, 1 = a DQN's final return after learning it from scratch)."""
  rule = (f"prediction (it does not learn the unseen env as the DQN does) supported if the CI's upper end < "
          f"{threshold:g} (it ends below {threshold:.0%} of the DQN's gain over random); refuted if the lower "
          "end >= it; else inconclusive")
  return _decide(final_ci, threshold, "above", REFUTED, SUPPORTED), rule


def hybrid(gain_ci) -> tuple[str, str]:
  """gain_ci: (estimate, low, high) of the hybrid's late return minus the frozen imitator's (paired)."""
  rule = ("test-time SGD helps if the CI of (hybrid - frozen) lies above 0; hurts if below 0; else "
          "inconclusive")
  return _decide(gain_ci, 0.0, "neither", "helps", "hurts"), rule
