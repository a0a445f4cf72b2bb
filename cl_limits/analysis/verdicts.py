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


NO_HEADROOM = "inconclusive: no headroom"
BELOW_DATA = "inconclusive: imitator below its data"
NO_LEARNING = "inconclusive: no learning in its data"
COLLAPSED = "inconclusive: imitator collapsed"
NO_POWER = "inconclusive: the competence gate cannot pass here"
# A power control that refuted while its imitator failed the competence gate: the P2 rule's "refuted", which
# licenses no P2 supported (report.gates.counted writes it on the control's row; 2026-12-07, a label only).
REFUTED_UNFIT = "refuted, competence gate failed: licenses no P2 supported"


def p2_gated(diff_ci, headroom: float, headroom_needed: float, competence_ok: bool,
             competence_needed: float = 0.75, learning_ok: bool | None = None,
             held_ok: bool | None = None, clone_ok: bool | None = None) -> tuple[str, str]:
  """P2 with the gates that let it come out either way.

  diff_ci: (estimate, low, high) of late return minus the ceiling, over replicates.
  headroom: how far the teachers' return rose after the cut above the ceiling, on the policy the protocol
    plays like (`replicates.headroom_basis`: greedy, or their behaviour); the row needs at least
    `headroom_needed` (0.2 of the optimum's, or the teachers' final greedy return's, gain over random):
    without it, no imitator could show improvement past the ceiling that the teachers themselves made.
  competence_ok: whether the imitator reproduced the end of its data in its own time on the training tasks
    (`replicates.competence`: gain over random at least `competence_needed` at the interval's lower end);
    "supported" needs it, or the failure to pass the ceiling records a failed imitation, not a limit of it;
    a row that did not refute and failed it reads that reason, whether its interval lay below 0 or straddled it.
  learning_ok: whether the kept data itself rises (`replicates.learning_in_data`); data that show no
    improvement give an imitator nothing to extrapolate, so the row cannot say supported or refuted
    (None: not measured, as in summaries made before the gate).
  held_ok: whether the rollout's late window held its data's level (`replicates.held_data`); an imitator
    that fell below its own data has collapsed, and "supported" needs it not to; like competence, it is the
    reason of a row that did not refute (None: not measured).
  clone_ok: whether the competence gate can judge the imitator: a perfect clone of the data (a held-out
    stream of it, `clone.clone_competence`) passes it, or the imitator sits below that clone by more
    than the noise (`clone.clone_gap`); where neither holds, a failed gate says nothing about the
    imitator and the row reads "inconclusive: the competence gate cannot pass here" (None: not measured).
  """
  rule = (f"no headroom (the teachers' rise past the ceiling, greedy or behaviour as the protocol plays, < "
          f"{headroom_needed:.3g}) -> inconclusive; "
          "else refuted if the CI of late - ceiling lies above 0; else the imitator must have reproduced its "
          f"data's end (gain over random >= {competence_needed:g} at the interval's lower end; else "
          "inconclusive: imitator below its data, or, where a held-out stream of the data fails the same "
          "gate and the imitator is not clearly below that stream, inconclusive: the competence gate cannot "
          "pass here)")
  if held_ok is not None:
    rule += " and held it late in the rollout (else inconclusive: imitator collapsed)"
  rule += "; then supported if the CI lies at or below 0, else inconclusive"
  if learning_ok is not None:
    rule = "no learning in the kept data -> inconclusive; " + rule
  if not headroom >= headroom_needed:
    return NO_HEADROOM, rule
  if learning_ok is False:
    return NO_LEARNING, rule
  verdict = _decide(diff_ci, 0.0, "below", REFUTED, SUPPORTED)
  if verdict == REFUTED:                # passing the ceiling needs no gate
    return verdict, rule
  # Supported or straddling: a failed gate is the reason either way (amended 2026-12-07: a straddling row
  # used to read plain "inconclusive" whatever its gates said).
  if not competence_ok:
    return (NO_POWER if clone_ok is False else BELOW_DATA), rule
  if held_ok is False:
    return COLLAPSED, rule
  return verdict, rule


def power_control(verdict: str, competence_ok: bool | None = None) -> str:
  """What a power-control row (data whose improvement an imitator can extrapolate, scored by the P2 rule)
  says about the test: it can refute only if this row does, and it licenses a P2 "supported" only where
  its imitator also passed the competence gate that a supported row must pass."""
  if verdict == REFUTED and competence_ok is False:
    return ("the P2 test said refuted here, but this imitator did not pass the competence gate that a "
            "supported row must pass, so it licenses no P2 supported")
  if verdict == REFUTED:
    return "the P2 test can say refuted on data that allow it"
  return f"the power control came out {verdict}: the P2 test has not been shown able to refute"


def trend(slope_ci, headroom: float, headroom_needed: float, top: float, random: float,
          margin_fraction: float = 0.1, data_rise: float | None = None) -> tuple[str, str]:
  """Whether a frozen imitator's return has stopped rising late in a long rollout (P2's "it does not keep
  learning", predicted: yes).

  slope_ci: (estimate, low, high) of the slope of return against log(episode) over the rollout's second
  half, over replicates. The second half of a rollout spans ln 2 of log(episode), so a slope of
  m / ln 2 is a rise of m over it. The margin m is `margin_fraction` of the kept data's own rise
  (`data_rise`, in the trend's unit: its last window minus its first, the learning-in-data gate's
  mean): "flat" is rising over the second half by less than that fraction of what the data rose over the
  whole kept history. Supported when the interval's upper end is below the margin, refuted when its lower
  end is above it, else inconclusive; data that did not rise leave no margin (no learning in its data).
  Gated on headroom as P2 is: where the teachers did not improve either, a flat trend shows nothing.

  data_rise None: the rule as first registered (summaries made before the learning gate), the margin a
  fraction of (top - random) and refuted at any rise (the interval's lower end above 0)."""
  import math  # noqa: PLC0415
  if data_rise is None:
    margin = margin_fraction * (top - random) / math.log(2.0)
    rule = (f"no headroom -> inconclusive; refuted if the CI's lower end > 0 (still rising); supported if the "
            f"upper end < {margin:.3g} (less than {margin_fraction:g} of (top - random) over the second half); "
            "else inconclusive")
    refute_above = 0.0
  else:
    margin = margin_fraction * float(data_rise) / math.log(2.0)
    rule = (f"no headroom -> inconclusive; the margin is {margin_fraction:g} of the kept data's own rise "
            f"({float(data_rise):.3g}) over the second half, {margin:.3g} per log-episode; supported if the CI's "
            f"upper end < {margin:.3g} (flat), refuted if its lower end > {margin:.3g} (still rising), else "
            "inconclusive")
    refute_above = margin
  if not headroom >= headroom_needed:
    return NO_HEADROOM, rule
  if data_rise is not None and not float(data_rise) > 0:
    return NO_LEARNING, rule + "; the kept data did not rise, so no margin can be drawn from it"
  _, lo, hi = slope_ci
  if lo > refute_above:
    return REFUTED, rule
  if hi < margin:
    return SUPPORTED, rule
  return INCONCLUSIVE, rule


def positive_control(verdict: str) -> str:
  """What the P3 positive control (the same scoring on held-out goals of the training family, where the
  imitator learns in context) says about the P3 test: it can refute only if this row does."""
  if verdict == REFUTED:
    return "the P3 scoring can say refuted where the imitator does learn in context"
  return f"the positive control came out {verdict}: the P3 scoring has not been shown able to refute"


def replay(slope_ci) -> tuple[str, str]:
  """slope_ci: (estimate, low, high) of the slope of log(episodes to half the improvement) on log(gap x
  streams), over replicates. -1: the imitator's speed follows the compression of its data (it replays
  it); 0: it learns at its own pace."""
  rule = ("replays its data if the CI's upper end < 0 (fewer of its own episodes where each kept episode "
          "stands for more teacher experience); its own pace if the lower end > -0.5; else inconclusive")
  _, lo, hi = slope_ci
  if hi < 0:
    return "replays its data", rule
  if lo > -0.5:
    return "its own pace", rule
  return INCONCLUSIVE, rule
