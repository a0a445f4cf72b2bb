"""Verdict counting in the report (cl_limits/report/gates.py): a "supported" counts only where the study's
control refuted, and P1 only where the imitator reproduces its data. Synthetic rows, known answers."""
from cl_limits.report import gates as rr


def _row(kind, verdict, name="x"):
  return {"prediction": name, "verdict": verdict, "rule": "rule", "kind": kind}


def test_a_supported_p2_row_is_not_counted_when_the_power_control_fails():
  rows = rr.counted([_row("p2", "supported", "ad_p05"), _row("p2_trend", "supported", "trend"),
                     _row("power_control", "inconclusive: imitator below its data", "ad_eps"),
                     _row("p3", "supported"), _row("p3_positive_control", "refuted")])
  assert rows[0]["verdict"] == ("not counted: the P2 power control did not refute (it read inconclusive: "
                                "imitator below its data)")
  assert rows[1]["verdict"].startswith("not counted: the P2 power control") and "Uncounted verdict: supported" in rows[1]["rule"]
  assert rows[2]["verdict"] == "inconclusive: imitator below its data"        # the control itself is shown as is
  assert rows[3]["verdict"] == "supported"                                     # its positive control refuted


def test_a_supported_row_counts_where_its_control_refuted_and_other_verdicts_are_untouched():
  rows = rr.counted([_row("p2", "supported"), _row("p2", "refuted"), _row("p2", "inconclusive: no headroom"),
                     _row("power_control", "refuted"), _row("p3", "supported")])
  assert [r["verdict"] for r in rows[:3]] == ["supported", "refuted", "inconclusive: no headroom"]
  assert rows[4]["verdict"] == "not counted: the P3 positive control did not refute (this study has none)"


def test_p1_counts_only_when_the_imitator_reproduces_its_behaviour_policy():
  close, far = {"kl": [0.05, 0.07]}, {"kl": [0.3, 0.2]}
  assert rr.fidelity_gate("refuted", "r", close, 0.1)[0] == "refuted"
  verdict, rule = rr.fidelity_gate("refuted", "r", far, 0.1)
  assert verdict == "inconclusive: imitator did not reproduce its data" and "(ungated: refuted)" in rule
  assert "0.250 nats > 0.1" in rule
  assert rr.fidelity_gate("supported", "r", {"kl": [float("nan")] * 2}, 0.1)[0] == rr.NOT_RECORDED_GATE
  assert rr.fidelity_gate("supported", "r", None, float("inf"))[0] == "supported"   # no gate configured


def test_data_that_show_no_learning_make_a_p2_row_inconclusive():
  import numpy as np  # noqa: PLC0415
  from cl_limits.analysis import replicates, verdicts  # noqa: PLC0415
  flat = [{"data_curve": np.full(30, 0.5), "ceiling_kept_window": 5} for _ in range(3)]
  rising = [{"data_curve": np.linspace(0.0, 1.0, 30) + 0.01 * r, "ceiling_kept_window": 5} for r in range(3)]
  g_flat = replicates.learning_in_data(flat, False, top=1.0, random=0.0, fraction=0.1)
  g_rise = replicates.learning_in_data(rising, False, top=1.0, random=0.0, fraction=0.1)
  assert not g_flat["ok"] and g_flat["per_replicate"] == [0.0, 0.0, 0.0]
  # last 5 kept minus first 5 of a 0 -> 1 line over 30 episodes: 25/29 of the range
  assert g_rise["ok"] and np.allclose(g_rise["per_replicate"], 25 / 29)
  below = (-0.3, -0.4, -0.2)                       # an imitator clearly below the ceiling, competent
  assert verdicts.p2_gated(below, 0.5, 0.2, 1.0, 0.9, learning_ok=True)[0] == "supported"
  verdict, rule = verdicts.p2_gated(below, 0.5, 0.2, 1.0, 0.9, learning_ok=False)
  assert verdict == "inconclusive: no learning in its data" and "no learning in the kept data" in rule
  assert verdicts.p2_gated(below, 0.1, 0.2, 1.0, 0.9, learning_ok=False)[0] == "inconclusive: no headroom"
