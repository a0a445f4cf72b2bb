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
  assert verdicts.p2_gated(below, 0.5, 0.2, True, 0.75, learning_ok=True)[0] == "supported"
  verdict, rule = verdicts.p2_gated(below, 0.5, 0.2, True, 0.75, learning_ok=False)
  assert verdict == "inconclusive: no learning in its data" and "no learning in the kept data" in rule
  assert verdicts.p2_gated(below, 0.1, 0.2, True, 0.75, learning_ok=False)[0] == "inconclusive: no headroom"


def _p2_entry(kind, data_rise, late, ceiling, imitator_end, n=5, stream_ends=None, trend=0.0):
  """A P2 summary entry built by the analysis functions the stage calls, from synthetic per-replicate
  numbers in fractions of the optimum (random 0, top 1): kept data rising by `data_rise` to an end of
  0.5, the rollout's late window at `late`, the ceiling at `ceiling`, the competence rollouts' last
  episodes at `imitator_end`; replicates differ by a small spread. stream_ends [n, streams]: each
  replicate's streams' ends of data (the competence gate's power check), or None (not measured). trend: the
  rollout's slope against log(episode), per replicate trend +- 0.002."""
  import numpy as np  # noqa: PLC0415
  from cl_limits.analysis import replicates, stats  # noqa: PLC0415
  spread = np.linspace(-0.01, 0.01, n)
  data = [{"data_curve_norm": np.linspace(0.5 - data_rise, 0.5, 20) + s, "ceiling_kept_window": 2} for s in spread]
  if stream_ends is not None:
    for d, ends in zip(data, stream_ends):
      d["stream_end_norm"] = list(ends)
  late_r, ceil_r = late + spread, ceiling + spread * 0.5
  comp_rets = np.zeros((n, 1, 10))
  comp_rets[:, :, -2:] = (imitator_end + spread)[:, None, None]
  comp = replicates.competence(comp_rets, data, np.array([1.0]), 0.0, 0.75)
  headroom = {"rise": 0.4, "needed": 0.2, "ok": True, "top": 1.0, "random": 0.0, "fraction": 0.2}
  return {"kind": kind, "fraction": 0.3, "gap": 1, "cut_learner_steps": 1000, "horizon_steps": 10_000,
          "episodes": 500, "late_episodes": 50,
          "per_replicate": {"behaviour_ceiling": ceil_r.tolist(), "greedy_at_cut": [None] * n,
                            "ceiling": ceil_r.tolist(), "rise": [0.4] * n, "late": late_r.tolist(),
                            "trend": (trend + np.linspace(-0.002, 0.002, n)).tolist()},
          "ceiling": stats.replicate_interval(ceil_r), "late": stats.replicate_interval(late_r),
          "late_minus_ceiling": stats.replicate_interval(late_r - ceil_r),
          "trend": stats.replicate_interval(trend + np.linspace(-0.002, 0.002, n)),
          "headroom": headroom,
          "learning": replicates.learning_in_data(data, True, 1.0, 0.0, 0.1),
          "competence": {**comp, "horizon_steps": 200},
          "held": replicates.held_data(late_r, data, True, 1.0, 0.0, 0.1)}


def _verdicts_of(tmp_path, arms, field="verdict", generator=None):
  import json  # noqa: PLC0415
  from cl_limits.report import rows  # noqa: PLC0415
  (tmp_path / "p2").mkdir()
  summary = {"protocol": {"unit": "fraction of each task's optimal return"}, "task_ids": [1],
             "competence_task_ids": [0], "arms": arms, **({"generator": generator} if generator else {})}
  (tmp_path / "p2" / "summary.json").write_text(json.dumps(summary))
  return {r["prediction"]: r[field] for r in rr.counted(rows.p2_rows(str(tmp_path)))}


def test_a_synthetic_run_reads_no_learning_collapsed_and_an_uncounted_supported(tmp_path):
  """Three P2 rows and a power control, every gate computed from synthetic per-replicate numbers:
  flat data (no learning), an imitator that reproduced its data's end but fell far below it late in the
  rollout (collapsed), one that passes every gate and stays under the ceiling (supported, but not counted
  because the power control, whose imitator never reproduced its data, did not refute)."""
  arms = {"flat": _p2_entry("p2", 0.0, 0.3, 0.5, 0.5),
          "gone": _p2_entry("p2", 0.3, 0.1, 0.5, 0.5),
          "good": _p2_entry("p2", 0.3, 0.45, 0.55, 0.5),
          "ctl": _p2_entry("power_control", 0.3, 0.3, 0.55, 0.1)}
  arms["good"]["fraction"] = 0.4                     # rows are ordered by their cut
  got = _verdicts_of(tmp_path, arms)
  head = lambda name: next(k for k in got if k.startswith("P2 beyond") and name in k)
  assert got[head("flat")] == "inconclusive: no learning in its data"
  assert got[head("gone")] == "inconclusive: imitator collapsed"
  assert got[head("good")] == ("not counted: the P2 power control did not refute (it read inconclusive: "
                               "imitator below its data)")
  ctl = next(k for k in got if k.startswith("P2 power control"))
  assert got[ctl] == "inconclusive: imitator below its data"
  # The same run with a power control that refuted: the supported row counts.
  tmp2 = tmp_path / "again"
  tmp2.mkdir()
  arms["ctl"] = _p2_entry("power_control", 0.3, 0.8, 0.5, 0.5)
  got = _verdicts_of(tmp2, arms)
  assert got[head("good")] == "supported" and got[ctl] == "refuted"
  # A searcher's control (imitation.ad_eps.demonstrator='searcher') is named as such and licenses the same way;
  # summaries written before the field existed read as the AD-epsilon oracle's.
  tmp3 = tmp_path / "searcher"
  tmp3.mkdir()
  got = _verdicts_of(tmp3, arms, generator="searcher")
  ctl3 = next(k for k in got if k.startswith("P2 power control"))
  assert "a scripted searcher's histories cut at 30% of its stream, ctl" in ctl3 and "AD-epsilon" not in ctl3
  assert got[head("good")] == "supported" and got[ctl3] == "refuted"
  assert ctl.startswith("P2 power control: AD-epsilon data cut half way")
  # A control that refuted while its imitator failed the competence gate (its late return above the
  # ceiling, its end of data not reproduced) licenses no supported: the "refuted with competence passed".
  tmp4 = tmp_path / "refuted_unfit"
  tmp4.mkdir()
  arms["ctl"] = _p2_entry("power_control", 0.3, 0.8, 0.5, 0.1)
  got = _verdicts_of(tmp4, arms)
  assert got[ctl] == "refuted, competence gate failed: licenses no P2 supported"
  assert got[head("good")] == "not counted: the P2 power control refuted without passing its competence gate"
  # A control whose late return sits at its ceiling (the interval straddles 0): where its imitator did not
  # reproduce its data the row names that, not a plain "inconclusive"; where it did, plain.
  for name, end, want in (("straddle_unfit", 0.1, "inconclusive: imitator below its data"),
                          ("straddle_fit", 0.5, "inconclusive")):
    (tmp_path / name).mkdir()
    arms["ctl"] = _p2_entry("power_control", 0.3, 0.5, 0.5, end)
    got = _verdicts_of(tmp_path / name, arms)
    assert got[ctl] == want
    assert got[head("good")] == f"not counted: the P2 power control did not refute (it read {want})"
  arms["ctl"] = _p2_entry("power_control", 0.3, 0.8, 0.5, 0.1)
  (tmp_path / "rules").mkdir()
  rules = _verdicts_of(tmp_path / "rules", arms, field="rule")
  assert "licenses no P2 supported" in rules[ctl] and rules[head("good")].endswith("Uncounted verdict: supported")


def test_the_forest_draws_a_control_that_licenses_nothing_as_one_that_failed():
  """Blue is a control that did its job; a power control that refuted with its competence gate failed
  licenses nothing, so it is drawn orange like one that did not refute."""
  from cl_limits.analysis import verdicts  # noqa: PLC0415
  from cl_limits.report import forest  # noqa: PLC0415
  assert forest.colour({"kind": "power_control", "verdict": "refuted"}) == "tab:blue"
  assert forest.colour({"kind": "known_positive", "verdict": "**refuted**"}) == "tab:blue"
  assert forest.colour({"kind": "power_control", "verdict": verdicts.REFUTED_UNFIT}) == "tab:orange"
  assert forest.colour({"kind": "power_control", "verdict": "inconclusive"}) == "tab:orange"
  assert forest.colour({"kind": "p2", "verdict": "supported"}) == "tab:green"
  assert forest.colour({"kind": "p2", "verdict": "not counted: x"}) == "tab:gray"


def test_a_competence_gate_that_a_perfect_clone_fails_reads_no_power_not_imitator_below(tmp_path):
  """The same failing imitator three times: where a held-out stream of the data passes the competence gate
  (streams ending 0.50-0.52), its failure is the imitator's ("below its data"); where a held-out stream of
  the data itself fails it (one noisy stream per task ending anywhere from 0.1 to 0.9) and the imitator is
  within the clone's noise, the gate cannot pass here and the row says so; where the clone fails but the
  imitator sits clearly below it, the failure is the imitator's again."""
  import numpy as np  # noqa: PLC0415
  steady = np.tile([0.5, 0.52, 0.5, 0.51], (5, 1))
  noisy = np.array([[0.5, 0.5, 0.5, 0.1], [0.5, 0.5, 0.5, 0.9], [0.5, 0.5, 0.5, 0.3], [0.5, 0.5, 0.5, 0.7],
                    [0.5, 0.5, 0.5, 0.2]])
  # A clone that fails the gate (lower end below 0.75) but sits clearly above an imitator at 0.2: the gate
  # still detects that imitator's shortfall.
  loose = np.array([[0.5, 0.5, 0.5, v] for v in (0.35, 0.65, 0.45, 0.55, 0.3)])
  arms = {"steady": _p2_entry("p2", 0.3, 0.3, 0.55, 0.1, stream_ends=steady),
          "noisy": _p2_entry("p2", 0.3, 0.3, 0.55, 0.1, stream_ends=noisy),
          "loose": _p2_entry("p2", 0.3, 0.3, 0.55, 0.1, stream_ends=loose),
          "ctl": _p2_entry("power_control", 0.3, 0.8, 0.5, 0.5)}
  arms["noisy"]["fraction"] = 0.4
  arms["loose"]["fraction"] = 0.5
  assert not arms["loose"]["competence"]["clone"]["ok"]
  clone = arms["steady"]["competence"]["clone"]
  assert clone["ok"] and np.allclose(clone["per_replicate"], 0.51 / (1.52 / 3))
  noisy_clone = arms["noisy"]["competence"]["clone"]
  assert not noisy_clone["ok"] and np.allclose(noisy_clone["per_replicate"], [0.2, 1.8, 0.6, 1.4, 0.4])
  got = _verdicts_of(tmp_path, arms)
  head = lambda name: next(k for k in got if k.startswith("P2 beyond") and name in k)
  assert got[head("steady")] == "inconclusive: imitator below its data"
  assert got[head("noisy")] == "inconclusive: the competence gate cannot pass here"
  assert got[head("loose")] == "inconclusive: imitator below its data"
  trend = lambda name: next(k for k in got if k.startswith("trend") and name in k)
  assert got[trend("noisy")] == "inconclusive: the competence gate cannot pass here"


def test_each_streams_end_of_data_is_its_last_kept_window_over_tasks():
  """Rows cycle through 2 streams (2 tasks x 2 streams); each row's last 2 finished episodes, NaN-padded
  rows read at their own end; a stream that kept nothing is NaN."""
  import numpy as np  # noqa: PLC0415
  from cl_limits.analysis import ceiling  # noqa: PLC0415
  nan = np.nan
  rets = np.array([[0.0, 1.0, 3.0], [2.0, 4.0, nan], [5.0, 5.0, 7.0], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(ceiling._stream_ends(rets, 2, 2), [(2.0 + 6.0) / 2, (3.0 + 0.0) / 2])
  np.testing.assert_allclose(ceiling._stream_ends(np.full((2, 3), nan), 2, 2), [nan, nan])


def test_the_trend_margin_is_a_tenth_of_the_datas_own_rise_and_refuted_must_pass_it(tmp_path):
  """Kept data rising by 0.3 over 20 kept episodes (last 2 minus first 2: 0.3 x 18 / 19 = 0.284 of the
  range) put the margin at 0.1 x 0.284 / ln 2 = 0.041 per log-episode. An
  imitator that never reproduced its data (competence fails) rising by 0.007 +- 0.002: under the rule as
  first registered that read refuted (any rise); now it is within the margin, so flat, and flat needs the
  competence gate: "imitator below its data", with the old reading in the rule. A rise of 0.1 (lower end
  above the margin) is refuted whatever the gates; one whose interval straddles the margin is inconclusive;
  data that did not rise leave no margin."""
  import math  # noqa: PLC0415
  from cl_limits.analysis import verdicts  # noqa: PLC0415
  margin = 0.1 * (0.3 * 18 / 19) / math.log(2.0)
  arms = {"slow": _p2_entry("p2", 0.3, 0.3, 0.55, 0.1, trend=0.007),
          "fast": _p2_entry("p2", 0.3, 0.3, 0.55, 0.1, trend=0.1),
          "edge": _p2_entry("p2", 0.3, 0.3, 0.55, 0.1, trend=margin),
          "flat": _p2_entry("p2", 0.0, 0.3, 0.55, 0.1, trend=0.1),
          "ctl": _p2_entry("power_control", 0.3, 0.8, 0.5, 0.5)}
  for i, a in enumerate(("fast", "edge", "flat")):
    arms[a]["fraction"] = 0.4 + 0.1 * i             # rows are ordered by their cut
  got = _verdicts_of(tmp_path, arms)
  (tmp_path / "again").mkdir()
  rules = _verdicts_of(tmp_path / "again", arms, "rule")
  trend = lambda name: next(k for k in got if k.startswith("trend") and name in k)
  assert got[trend("slow")] == "inconclusive: imitator below its data"
  assert "(by the rule before 2026-12-04: refuted)" in rules[trend("slow")]
  assert f"{margin:.3g} per log-episode" in rules[trend("slow")]
  assert got[trend("fast")] == "refuted"
  assert got[trend("edge")] == "inconclusive"
  assert got[trend("flat")] == "inconclusive: no learning in its data"
  # The rule itself, on bare intervals: the same slope under the old and the new margin.
  assert verdicts.trend((0.007, 0.004, 0.011), 0.4, 0.2, 1.0, 0.0)[0] == "refuted"
  assert verdicts.trend((0.007, 0.004, 0.011), 0.4, 0.2, 1.0, 0.0, data_rise=0.3)[0] == "supported"
  assert verdicts.trend((0.007, 0.004, 0.011), 0.4, 0.2, 1.0, 0.0, data_rise=0.0)[0] == (
      "inconclusive: no learning in its data")
  assert verdicts.trend((0.007, 0.004, 0.011), 0.1, 0.2, 1.0, 0.0, data_rise=0.3)[0] == "inconclusive: no headroom"


def test_fidelity_cell_names_memorising_replicates(tmp_path):
  """The report's fidelity cell adds how many replicates' training loss fell below their data's behaviour
  entropy, with or without a held-out KL, and nothing where none did."""
  import json  # noqa: PLC0415
  from cl_limits.report import rows  # noqa: PLC0415
  (tmp_path / "imitators").mkdir()
  summary = {"memorising": {"ad": [True, False, True]}}
  (tmp_path / "imitators" / "summary.json").write_text(json.dumps(summary))
  assert rows.fidelity_cell(str(tmp_path), "ad") == (
      "ad: not measured; memorising: training loss below its data's behaviour entropy in 2 of 3 replicates")
  summary["fidelity"] = {"per_arm": {"ad": {"kl": [0.1, 0.2, 0.3], "ce": [1.0], "entropy": [0.5]}}}
  summary["memorising"]["ad"] = [False, False, False]
  (tmp_path / "imitators" / "summary.json").write_text(json.dumps(summary))
  cell = rows.fidelity_cell(str(tmp_path), "ad")
  assert cell.startswith("ad: KL 0.200 nats") and "memorising" not in cell


def test_the_p2_section_says_what_made_the_power_controls_data(tmp_path):
  """The P2 section's account of the power control's data follows its generator: the summary's field, or
  for a summary written before it, the run's config (a Breakout run's final-DQN demonstrator is not an
  oracle)."""
  import json  # noqa: PLC0415
  from cl_limits.report import sections  # noqa: PLC0415
  protocol = {"actions": "sampled", "ceiling_window_episodes": 10, "competence": "c", "context": "carried",
              "horizon": "10 x", "late": "last 10%", "trend": "slope", "ci": "t", "unit": "return"}
  (tmp_path / "p2").mkdir()

  def text(generator=None, kind="power_control"):
    summary = {"protocol": protocol, "task_ids": [1], "competence_task_ids": [0], "random_return": 0.0,
               "arms": {"ctl": _p2_entry(kind, 0.3, 0.5, 0.5, 0.5, n=3)},
               **({"generator": generator} if generator is not None else {})}
    (tmp_path / "p2" / "summary.json").write_text(json.dumps(summary))
    return " ".join(sections.p2_section(str(tmp_path)))

  assert "scripted searcher" in text("searcher") and "noisy oracle" not in text("searcher")
  assert "noisy oracle" in text("oracle")
  (tmp_path / "config.json").write_text(json.dumps({"imitation": {"ad_eps": {"demonstrator": "teacher"}}}))
  assert "final DQN" in text() and "noisy oracle" not in text()
  # a run without a power control (its summary's generator is "") says nothing of one.
  for generator in ("", None):
    assert "power control's data" not in text(generator, kind="p2")
    assert "must pass both. A teacher-data row's headroom" in text(generator, kind="p2")
