"""Runs with different base seeds side by side (cl_limits/report/seeds.py, experiments/compare_seeds.py)."""
import json
import subprocess
import sys

import pytest

from cl_limits.report import seeds


def _run(tmp_path, name, seed, verdicts, env="DarkRoom"):
  d = tmp_path / name
  d.mkdir()
  rows = [{"table": "verdicts", "prediction": p, "estimate": [e, e - 0.1, e + 0.1], "fmt": "{:.2f}", "verdict": v}
          for p, (e, v) in verdicts.items()]
  (d / "verdicts.json").write_text(json.dumps({"env": env, "seed": seed, "rows": rows}))
  return str(d)


def test_rows_whose_verdicts_differ_between_seeds_read_unsettled(tmp_path):
  a = _run(tmp_path, "s0", 0, {"P1": (0.9, "supported"), "P2": (-0.4, "supported"), "P3": (0.1, "inconclusive")})
  b = _run(tmp_path, "s1", 1, {"P1": (0.95, "supported"), "P2": (-0.05, "inconclusive")})
  lines, n = seeds.table([a, b])
  by = {line.split("|")[1].strip(): line for line in lines[2:]}
  assert by["P1"].endswith("| **supported** |")
  assert by["P2"].endswith("| **unsettled (supported / inconclusive)** |")
  assert "-0.40 [-0.50, -0.30]" in by["P2"] and "-0.05 [-0.15, 0.05]" in by["P2"]
  assert by["P3"].endswith("| **unsettled: not measured in every run** |") and "not measured" in by["P3"]
  assert n == {"rows": 3, "settled": 1}
  assert "seed 0 (s0): verdict" in lines[0] and "seed 1 (s1): verdict" in lines[0]


def test_the_command_refuses_a_run_without_a_report_and_runs_of_different_studies(tmp_path):
  a = _run(tmp_path, "s0", 0, {"P1": (0.9, "supported")})
  b = _run(tmp_path, "s1", 1, {"P1": (0.9, "supported")}, env="MinAtar-Breakout")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="empty: no verdicts.json"):
    seeds.table([a, str(tmp_path / "empty")])
  with pytest.raises(ValueError, match="different studies"):
    seeds.table([a, b])
  c = _run(tmp_path, "s2", 2, {"P1": (0.8, "supported")})
  out = subprocess.run([sys.executable, "-m", "experiments.compare_seeds", a, c, f"--out={tmp_path / 't.md'}"],
                       capture_output=True, text=True, check=True).stdout
  assert "1 of 1 rows give the same verdict in every run." in out
  assert (tmp_path / "t.md").read_text().strip() == out.strip()
  bad = subprocess.run([sys.executable, "-m", "experiments.compare_seeds", a, str(tmp_path / "empty")],
                       capture_output=True, text=True)
  assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ") and "\n" not in bad.stderr.strip()


def test_the_compact_table_has_one_cell_per_run_and_short_heads(tmp_path):
  a = _run(tmp_path, "s0", 0, {"P2 beyond the ceiling, cut at 10% (predicted: no)": (-0.4, "supported")})
  b = _run(tmp_path, "s1", 1, {"P2 beyond the ceiling, cut at 10% (predicted: no)": (0.3, "refuted")})
  lines, n = seeds.table([a, b], compact=True)
  assert lines[0] == "| row | seed 0 (s0) | seed 1 (s1) | across seeds |"
  assert lines[2] == ("| P2 beyond the ceiling, cut at 10% (predicted: no) | -0.40 [-0.50, -0.30]: supported | 0.30 [0.20, 0.40]: "
                      "refuted | **unsettled (supported / refuted)** |")
  assert n == {"rows": 1, "settled": 0}
  assert seeds._short("hybrid (full), P2 protocol: SGD on its own experience every 2,000 steps and more words") == (
      "hybrid (full), P2 protocol: SGD on its own experience every ...")
