"""Two runs on the same teachers paired by replicate (cl_limits/report/pairs.py, experiments/compare_runs.py)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from cl_limits.report import pairs


def _run(tmp_path, name, competence, kl, teachers="t0", seed=0, updates=4000, tasks=(1, 2), teachers_from="",
         seq_len=100, tokens=None, gap=None, horizon=None):
  d = tmp_path / name
  (d / "imitators").mkdir(parents=True)
  (d / "p2").mkdir()
  cfg = {"seed": seed, "teachers_from": teachers_from, "imitation": {"train": {"num_updates": updates, "seq_len": seq_len},
                                                                 "model": {} if tokens is None else {"tokens": tokens},
                                                                 "arms": {} if gap is None else {"ad_early": {"gap": gap}}}}
  (d / "config.json").write_text(json.dumps(cfg))
  (d / "imitators" / "stage.json").write_text(json.dumps({"inputs": {"teachers": teachers}}))
  (d / "imitators" / "summary.json").write_text(json.dumps({
      "arms": ["ad_early"], "num_seeds": len(competence), "final_loss": [[0.5] * len(competence)],
      "fidelity": {"per_arm": {"ad_early": {"kl": kl}}}}))
  (d / "p2" / "summary.json").write_text(json.dumps({
      "competence_task_ids": list(tasks),
      "arms": {"ad_early": {"competence": {"per_replicate": competence, "data_end": [0.6] * len(competence),
                                           **({} if horizon is None else {"horizon_steps": horizon})}}}}))
  return str(d)


def test_the_difference_is_paired_by_replicate_and_the_config_change_is_named(tmp_path):
  a = _run(tmp_path, "a", [0.1, 0.5, 0.3], [0.30, 0.20, 0.25])
  b = _run(tmp_path, "b", [0.2, 0.6, 0.4], [0.28, 0.18, 0.22], updates=8000, teachers_from="runs/a")
  rows = {r["label"]: r for r in pairs.compare(pairs.load(a), pairs.load(b), "ad_early")}
  comp = rows["competence: gain over random at the data's end"]
  # Every replicate rose by exactly 0.1: unpaired the runs' intervals overlap widely; paired the
  # difference has no spread at all.
  assert comp["diff"]["per_replicate"] == pytest.approx([0.1, 0.1, 0.1]) == comp["per_replicate"]
  assert comp["diff"]["low"] == pytest.approx(0.1) and comp["diff"]["high"] == pytest.approx(0.1)
  assert comp["a"]["low"] < comp["b"]["estimate"] < comp["a"]["high"]
  kl = rows["held-out KL, nats (kept weights)"]["diff"]
  assert kl["estimate"] == pytest.approx(np.mean([-0.02, -0.02, -0.03]))
  assert rows["training loss, last batch, nats"]["diff"]["estimate"] == pytest.approx(0.0)
  assert "P2 late return" not in rows            # a measure neither summary has is left out
  lines = pairs.table(a, b)
  assert "- imitation.train.num_updates: 4000 -> 8000" in lines
  assert not any("teachers_from" in line for line in lines)
  comp_line = next(line for line in lines if line.startswith("| competence"))
  assert comp_line.endswith("| 0.100 [0.100, 0.100] | +0.100, +0.100, +0.100 |")
  assert not any("not like for like" in line for line in lines)


def test_window_scored_rows_are_marked_when_the_training_windows_differ(tmp_path):
  a = _run(tmp_path, "a", [0.1, 0.5, 0.3], [0.30, 0.20, 0.25])
  b = _run(tmp_path, "b", [0.2, 0.6, 0.4], [0.20, 0.15, 0.18], seq_len=1000)
  lines = pairs.table(a, b)
  kl = next(line for line in lines if line.startswith("| held-out KL"))
  comp = next(line for line in lines if line.startswith("| competence"))
  assert "(not like for like: windows of 100 vs 1000 steps)" in kl
  assert "not like for like" not in comp          # rollouts do not depend on the training windows
  assert any(line.startswith("The training windows differ (100 vs 1000 steps)") for line in lines)


def test_window_scored_rows_are_marked_when_the_arm_keeps_other_episodes(tmp_path):
  # Gap 5 keeps every fifth episode: the held-out windows hold other steps (another behaviour entropy) and
  # the competence gate runs for one kept history, a fifth as long.
  a = _run(tmp_path, "a", [0.3, 0.4, 0.3], [0.21, 0.20, 0.22], gap=1, horizon=3000)
  b = _run(tmp_path, "b", [0.1, 0.2, 0.2], [0.27, 0.28, 0.27], gap=5, horizon=600)
  lines = pairs.table(a, b)
  kl = next(line for line in lines if line.startswith("| held-out KL"))
  comp = next(line for line in lines if line.startswith("| competence"))
  assert "(not like for like: gap 1 vs 5)" in kl
  assert "not like for like" not in comp
  note = next(line for line in lines if line.startswith("The arm keeps other steps"))
  assert "(gap 1 vs 5)" in note and "(3000 vs 600 steps)" in note
  same = pairs.table(a, _run(tmp_path, "c", [0.3, 0.4, 0.3], [0.21, 0.20, 0.22], gap=1, horizon=3000))
  assert not any("not like for like" in line or line.startswith("The arm keeps") for line in same)


def test_a_replicate_without_a_value_gives_no_interval_instead_of_one_from_the_others(tmp_path):
  # Competence is undefined (NaN, or null in JSON) for a replicate whose data end is not above random: the
  # row shows every replicate's difference and no interval, rather than an interval over the others.
  # B: 0.2, 0.6, 0.4: mean 0.4, sd 0.2, t(0.975, 2 df) = 4.303, half-width 4.303 x 0.2 / sqrt(3) = 0.497.
  a = _run(tmp_path, "a", [0.1, None, 0.3], [0.30, 0.20, 0.25])
  b = _run(tmp_path, "b", [0.2, 0.6, 0.4], [0.28, 0.18, 0.22], updates=8000)
  rows = {r["label"]: r for r in pairs.compare(pairs.load(a), pairs.load(b), "ad_early")}
  comp = rows["competence: gain over random at the data's end"]
  assert comp["a"] is None and comp["diff"] is None and comp["b"]["estimate"] == pytest.approx(0.4)
  line = next(ln for ln in pairs.table(a, b) if ln.startswith("| competence"))
  assert line == ("| competence: gain over random at the data's end | n/a (a replicate has no value) | "
                  "0.400 [-0.097, 0.897] | n/a (a replicate has no value) | +0.100, +nan, +0.100 |")
  assert rows["held-out KL, nats (kept weights)"]["diff"] is not None


@pytest.mark.parametrize("change, message", [
    (dict(teachers="t1"), "teachers t0 vs t1 (different data)"),
    (dict(seed=1), "seed 0 vs 1"),
    (dict(tasks=(1, 3)), "competence tasks differ"),
])
def test_runs_that_are_not_paired_are_refused_naming_why(tmp_path, change, message):
  a = _run(tmp_path, "a", [0.1, 0.5], [0.3, 0.2])
  b = _run(tmp_path, "b", [0.2, 0.6], [0.3, 0.2], **change)
  with pytest.raises(ValueError, match="not paired: " + message.replace("(", r"\(").replace(")", r"\)")):
    pairs.table(a, b)


def test_the_command_prints_the_table_and_refuses_in_one_line(tmp_path):
  a = _run(tmp_path, "a", [0.1, 0.5], [0.3, 0.2])
  b = _run(tmp_path, "b", [0.2, 0.6], [0.3, 0.2], updates=8000)
  out = subprocess.run([sys.executable, "-m", "experiments.compare_runs", a, b, f"--out={tmp_path / 'c.md'}"],
                       capture_output=True, text=True, check=True).stdout
  assert "**ad_early**" in out and (tmp_path / "c.md").read_text().strip() == out.strip()
  (tmp_path / "empty").mkdir()
  for args in ([a, str(tmp_path / "empty")], [a, b, "--arms=bc"], [a]):
    bad = subprocess.run([sys.executable, "-m", "experiments.compare_runs", *args], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ") and "\n" not in bad.stderr.strip(), args
  bad = subprocess.run([sys.executable, "-m", "experiments.compare_runs", a, b, "--arms=bc"], capture_output=True,
                       text=True)
  assert "arm 'bc' is not in both runs" in bad.stderr


def test_a_field_added_after_a_run_reads_as_the_default_it_ran_with(tmp_path):
  older = _run(tmp_path, "older", [0.1, 0.5], [0.3, 0.2])                  # config.json without model.tokens
  same = _run(tmp_path, "same", [0.1, 0.5], [0.3, 0.2], tokens="step")
  other = _run(tmp_path, "other", [0.1, 0.5], [0.3, 0.2], tokens="transition")
  assert pairs.config_diff(pairs.load(older), pairs.load(same)) == []
  assert pairs.config_diff(pairs.load(older), pairs.load(other)) == ["imitation.model.tokens: step -> transition"]
