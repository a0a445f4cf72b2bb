"""The registered DAgger readings (cl_limits/report/dagger_readings.py) on synthetic run directories."""
import json
import os

import numpy as np
import pytest

from cl_limits.report import dagger_readings


def _iv(values):
  v = np.asarray(values, float)
  half = 0.1 * max(float(np.ptp(v)), 1e-3)
  return {"estimate": float(v.mean()), "low": float(v.mean() - half), "high": float(v.mean() + half),
          "per_replicate": v.tolist()}


def _run(path, low, rounds=2, planned=2, late=(0.5, 0.6, 0.55), control_late=(0.1, 0.1, 0.1),
         late_x10=None, verdict="inconclusive: imitator collapsed", needed=0.75):
  """A run directory: `rounds` finished rounds of `planned`, the last with a competence interval whose
  lower end is `low`, judged by a gate at `needed` as `replicates.competence` judges it; p2.json (and
  p2_x10.json where late_x10 is given) only when the run finished."""
  os.makedirs(path, exist_ok=True)
  comp = {"estimate": low + 0.1, "low": low, "high": low + 0.2, "per_replicate": [low + 0.1] * 3}
  rows = [{"round": 0, "start": {"interval": comp}}]
  rows += [{"round": k, "seconds": 1.0, "dagger": {"interval": comp, "per_replicate": comp["per_replicate"], "ok": low >= needed},
            "control": {"interval": comp}, "paired": comp} for k in range(1, rounds + 1)]
  json.dump(rows, open(os.path.join(path, "rounds.json"), "w"))
  json.dump({"rounds": planned, "fingerprint": "x"}, open(os.path.join(path, "flags.json"), "w"))
  if rounds < planned:
    return path
  entry = lambda lt, v: {"per_replicate": {"late": list(lt)}, "late_minus_ceiling": _iv(lt),
                         "held": {"interval": _iv(lt)}, "verdict": v,
                         "competence": {"needed": needed}}
  json.dump({"round": rounds, "dagger": entry(late, verdict), "control": entry(control_late, "imitator below its data")},
            open(os.path.join(path, "p2.json"), "w"))
  if late_x10 is not None:
    json.dump({"round": rounds, "dagger": entry(late_x10, "supported")}, open(os.path.join(path, "p2_x10.json"), "w"))
  return path


def test_readings_follow_the_registered_rules(tmp_path):
  r = dagger_readings.readings(_run(tmp_path / "a", low=0.75, late_x10=(0.7, 0.8, 0.75)))
  assert r["a"]["verdict"] == "passes"                                  # lower end exactly at the gate
  assert r["b"]["verdict"] == "inconclusive: imitator collapsed"
  assert r["c"]["verdict"] == "dagger above control"                     # +0.4, +0.5, +0.45
  assert "+0.450" in r["c"]["text"]
  assert r["d"]["verdict"] == "supported; keeps improving past its data's length"   # +0.2 each
  r = dagger_readings.readings(_run(tmp_path / "b", low=0.749, control_late=(0.6, 0.7, 0.65),
                                    late_x10=(0.25, 0.37, 0.3)))     # -0.25, -0.23, -0.25
  assert r["a"]["verdict"] == "fails"
  assert r["c"]["verdict"] == "dagger below control"
  assert r["d"]["verdict"].endswith("; falls back")
  r = dagger_readings.readings(_run(tmp_path / "c", low=0.9, control_late=(0.6, 0.5, 0.1)))
  assert r["c"]["verdict"] == "inconclusive"                             # -0.1, +0.1, +0.45
  assert r["d"]["verdict"] == dagger_readings.NOT_PLAYED                 # no p2_x10.json
  r = dagger_readings.readings(_run(tmp_path / "g", low=0.76, needed=0.8))
  assert r["a"]["verdict"] == "fails" and r["a"]["text"].endswith("lower end against 0.8")   # the run's own gate


def test_an_unfinished_run_is_read_as_not_finished(tmp_path):
  r = dagger_readings.readings(_run(tmp_path / "u", low=0.9, rounds=5, planned=10))
  assert {r[k]["verdict"] for k in dagger_readings.LETTERS} == {"not finished (round 5 of 10)"}
  with pytest.raises(ValueError, match="no finished DAgger round"):
    dagger_readings.readings(str(tmp_path / "missing"))


def test_readings_that_differ_across_seeds_are_unsettled(tmp_path):
  s0 = _run(tmp_path / "s0", low=0.8, late_x10=(0.7, 0.8, 0.75))
  s1 = _run(tmp_path / "s1", low=0.5, late_x10=(0.7, 0.8, 0.75))
  lines, n = dagger_readings.table([str(s0), str(s1)])
  row_a = next(line for line in lines if line.startswith("| (a)"))
  assert row_a.endswith("| **unsettled (passes / fails)** |")
  assert n == {"readings": 4, "settled": 3}


def test_a_run_whose_files_lack_a_field_is_refused_in_one_line(tmp_path):
  """A p2.json without the fields a reading reads, or a rounds.json that is not JSON, gives a ValueError
  naming the directory (the CLI prints it as one line), not a KeyError from inside."""
  run = _run(tmp_path / "k", low=0.9)
  json.dump({"round": 2, "dagger": {"verdict": "supported"}}, open(os.path.join(run, "p2.json"), "w"))
  with pytest.raises(ValueError, match=r"k: its rounds.json / p2.json / p2_x10.json lack a field .*KeyError: 'competence'"):
    dagger_readings.readings(run)
  open(os.path.join(run, "rounds.json"), "w").write("[{")
  with pytest.raises(ValueError, match=r"rounds.json: not valid JSON"):
    dagger_readings.round_lines(run)


def test_reading_b_applies_todays_p2_rule_to_the_stored_gates_and_names_the_old_verdict(tmp_path):
  """A run whose stored `dagger` row straddles its ceiling with a failed competence gate, written when the
  rule read such a row as plain "inconclusive": reading (b) gives today's rule's verdict from the row's own
  gates and names what the run wrote; a row without the gates' fields keeps its stored verdict."""
  from test_report_gates import _p2_entry  # noqa: PLC0415
  path = _run(tmp_path / "r", low=0.8)
  full = {**_p2_entry("p2", 0.3, 0.5, 0.5, 0.1, n=3), "verdict": "inconclusive"}
  control = {**_p2_entry("p2", 0.3, 0.1, 0.5, 0.1, n=3), "verdict": "inconclusive: imitator below its data"}
  json.dump({"round": 2, "dagger": full, "control": control}, open(os.path.join(path, "p2.json"), "w"))
  r = dagger_readings.readings(path)
  assert r["b"]["verdict"] == "inconclusive: imitator below its data"
  assert "(its run wrote 'inconclusive', by the rule of then)" in r["b"]["text"]
  r = dagger_readings.readings(_run(tmp_path / "old", low=0.8, verdict="inconclusive"))
  assert r["b"]["verdict"] == "inconclusive" and "its run wrote" not in r["b"]["text"]
