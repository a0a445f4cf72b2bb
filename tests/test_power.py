"""How often a replicate gate passes (cl_limits/analysis/power.py) and the table of the P2 gates' power
(cl_limits/report/power.py, `experiments.compare_seeds --power`)."""
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from cl_limits.analysis import power
from cl_limits.report import power as power_table


@pytest.mark.parametrize("mean,sd,n,threshold,side", [
    (1.14, 0.30, 5, 0.75, "above"), (1.0, 0.16, 8, 0.75, "above"), (0.9, 0.5, 3, 0.75, "above"),
    (-1.5, 1.2, 5, 0.0, "below"), (-0.3, 1.0, 10, 0.0, "below"), (0.2, 0.3, 6, 0.0, "below")])
def test_the_pass_probability_is_the_share_of_simulated_intervals_that_pass(mean, sd, n, threshold, side):
  rng = np.random.default_rng(0)
  x = rng.normal(mean, sd, (200_000, n))
  half = stats.t.ppf(0.975, n - 1) * x.std(axis=1, ddof=1) / np.sqrt(n)
  passed = (x.mean(1) - half >= threshold) if side == "above" else (x.mean(1) + half <= threshold)
  assert power.pass_probability(mean, sd, n, threshold, side) == pytest.approx(passed.mean(), abs=0.005)


def test_replicates_for_is_the_fewest_that_reach_the_power_and_none_on_the_failing_side():
  n = power.replicates_for(1.14, 0.30, 0.75, "above", power=0.8)
  assert power.pass_probability(1.14, 0.30, n, 0.75) >= 0.8 > power.pass_probability(1.14, 0.30, n - 1, 0.75)
  assert power.replicates_for(1.14, 0.30, 0.75, power=0.95) > n        # more power, more replicates
  assert power.replicates_for(0.7, 0.30, 0.75) is None                 # mean below the gate
  assert power.replicates_for(-0.1, 0.5, 0.0, "below", most=5) is None   # right side, needs more than 5
  assert power.pass_probability(1.0, 0.0, 5, 0.75) == 1.0 and power.pass_probability(0.5, 0.0, 5, 0.75) == 0.0
  with pytest.raises(ValueError, match="side"):
    power.pass_probability(1.0, 0.3, 5, 0.75, side="up")
  with pytest.raises(ValueError, match="at least 2 replicates"):
    power.pass_probability(1.0, 0.3, 1, 0.75)


def test_pooled_takes_the_within_run_spread_not_the_runs_difference():
  p = power.pooled([[1.0, 2.0, 3.0], [11.0, 12.0, 13.0]])
  assert p == {"mean": 7.0, "sd": 1.0, "df": 4, "n": [3, 3]}
  with pytest.raises(ValueError, match="not finite"):
    power.pooled([[1.0, np.nan], [1.0, 2.0]])
  with pytest.raises(ValueError, match="two replicates"):
    power.pooled([[1.0], [2.0]])


def _run(tmp_path, name, arms):
  d = tmp_path / name
  (d / "p2").mkdir(parents=True)
  (d / "p2" / "summary.json").write_text(json.dumps({"arms": arms}))
  return str(d)


def _arm(kind, gains, clone, late, needed=0.75, skipped=False):
  e = {"kind": kind, "competence": {"per_replicate": gains, "needed": needed, "clone": {"per_replicate": clone}},
       "late_minus_ceiling": {"per_replicate": late}}
  if skipped:
    e["skipped"] = True
  return e


def test_the_table_reads_each_gate_on_the_runs_pooled_replicates(tmp_path):
  a = _run(tmp_path, "s0", {"ad_early": _arm("p2", [0.83, 1.64, 1.12, 0.77, 0.99], [1.24, 0.76, 0.78, 1.06, 1.08],
                                              [-6.6, -0.95, -1.27, -4.1, -0.53]),
                            "ctrl": _arm("power_control", [float("nan"), 0.1, 0.2, 0.3, 0.4], [1.0] * 5, [0.1] * 5),
                            "cut": _arm("p2", [0.5, 0.6], [1.0, 1.1], [1.0, 1.0], skipped=True)})
  b = _run(tmp_path, "s1", {"ad_early": _arm("p2", [1.24, 0.96, 1.11, 1.09, 1.60], [0.97, 0.89, 0.88, 1.10, 0.92],
                                              [-0.5, -1.2, -1.9, -2.1, -1.6]),
                            "ctrl": _arm("power_control", [0.1, 0.1, 0.2, 0.3, 0.4], [1.0, 1.1] * 2 + [1.0],
                                         [0.2, 0.3, 0.1, 0.4, 0.2]),
                            "cut": _arm("p2", [0.5, 0.6], [1.0, 1.1], [1.0, 1.0], skipped=True)})
  lines = power_table.table([a, b])
  rows = {(line.split("|")[1].strip(), line.split("|")[2].split(",")[0].strip()): line for line in lines[2:]}
  imitator = rows[("ad_early", "competence: the imitator")]
  gains = [[0.83, 1.64, 1.12, 0.77, 0.99], [1.24, 0.96, 1.11, 1.09, 1.60]]
  p = power.pooled(gains)
  assert f"{np.mean(gains[0]):.3f} (5), {np.mean(gains[1]):.3f} (5)" in imitator
  assert f"{p['mean']:.3f}; {p['sd']:.3f}" in imitator
  assert f"| {power.pass_probability(p['mean'], p['sd'], 5, 0.75):.2f} |" in imitator
  assert imitator.endswith(f"| {power.replicates_for(p['mean'], p['sd'], 0.75)} |")
  assert "| late - ceiling: supported, upper end <= 0 |" in rows[("ad_early", "late - ceiling: supported")]
  assert "not measurable" in rows[("ctrl", "competence: the imitator")]
  assert "| late - ceiling: refuted, lower end >= 0 |" in rows[("ctrl", "late - ceiling: refuted")]
  assert not any(k == ("cut", "late - ceiling: supported") for k in rows)     # no rollout: no late reading
  assert ("cut", "competence: the imitator") in rows and rows[("cut", "competence: the imitator")].endswith(
      "| none: the mean is on the failing side |")
  (tmp_path / "bare").mkdir()
  with pytest.raises(ValueError, match="bare: no P2 summary"):
    power_table.table([a, str(tmp_path / "bare")])


def test_compare_seeds_prints_the_power_table_with_the_flag(tmp_path):
  arms = {"ad_early": _arm("p2", [0.8, 1.2, 1.0], [1.0, 0.9, 1.1], [-1.0, -0.5, -0.8])}
  runs = []
  for seed in (0, 1):
    d = _run(tmp_path, f"s{seed}", arms)
    rows = [{"table": "verdicts", "prediction": "P2", "estimate": [-0.8, -1.0, -0.6], "fmt": "{:.2f}", "verdict": "x"}]
    (tmp_path / f"s{seed}" / "verdicts.json").write_text(json.dumps({"env": "DarkRoom", "seed": seed, "rows": rows}))
    runs.append(d)
  out = subprocess.run([sys.executable, "-m", "experiments.compare_seeds", *runs, "--power"], capture_output=True,
                       text=True, check=True).stdout
  assert "1 of 1 rows give the same verdict in every run." in out
  assert "| ad_early | competence: the imitator, lower end >= 0.75 |" in out
  plain = subprocess.run([sys.executable, "-m", "experiments.compare_seeds", *runs], capture_output=True,
                         text=True, check=True).stdout
  assert "competence: the imitator" not in plain
