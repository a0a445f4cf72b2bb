"""Two or more finished runs of one study with different base seeds, side by side per verdict row.

A table is a result only when a second base seed gives the same verdicts: a row whose verdicts differ
between the runs reads "unsettled", with each run's verdict beside it. Reads each run's verdicts.json
(written with its report.md), so the runs need not share a machine or a commit.
"""
from __future__ import annotations

import json
import os

from cl_limits.report.gates import ci

VERDICTS = "verdicts.json"        # written beside report.md by cl_limits/report/document.py

UNSETTLED = "unsettled"


def _short(head: str, width: int = 64) -> str:
  """A row's head cut at a word boundary near `width` characters."""
  if len(head) <= width:
    return head
  return head[:width].rsplit(" ", 1)[0].rstrip(",:;") + " ..."


def across(verdicts: list[str | None]) -> str:
  """The verdict a row carries across runs: theirs when every run gave the same one, else unsettled."""
  if any(v is None for v in verdicts):
    return f"{UNSETTLED}: not measured in every run"
  if len(set(verdicts)) == 1:
    return verdicts[0]
  return f"{UNSETTLED} ({' / '.join(verdicts)})"


def load(workdirs: list[str]) -> list[dict]:
  """Every run's verdicts.json; ValueError naming a run directory without one."""
  runs = []
  for w in workdirs:
    p = os.path.join(w, VERDICTS)
    v = json.load(open(p)) if os.path.exists(p) else None
    if v is None:
      raise ValueError(f"{w}: no verdicts.json (the run's report has not been written; run its pipeline to the end)")
    runs.append(v)
  if len({r["env"] for r in runs}) > 1:
    raise ValueError(f"the runs are of different studies: {[r['env'] for r in runs]}")
  return runs


def table(workdirs: list[str], tables=("verdicts", "hybrid"), compact: bool = False) -> tuple[list[str], dict]:
  """Markdown lines of the side-by-side table and counts {"rows", "settled"}. compact: one cell per run
  ("estimate [CI]: verdict") and each row's head cut near 64 characters (for a README)."""
  runs = load(workdirs)
  keys = []
  for run in runs:
    for r in run["rows"]:
      k = (r["table"], r["prediction"])
      if r["table"] in tables and k not in keys:
        keys.append(k)
  index = [{(r["table"], r["prediction"]): r for r in run["rows"]} for run in runs]
  names = [f"seed {run['seed']} ({os.path.basename(os.path.normpath(w))})" for run, w in zip(runs, workdirs)]
  if compact:
    lines = ["| row | " + " | ".join(f"{n}" for n in names) + " | across seeds |", "|---|" + "---|" * (len(runs) + 1)]
  else:
    lines = ["| prediction | " + " | ".join(f"{n}: estimate [95% CI] | {n}: verdict" for n in names)
             + " | across seeds |", "|---|" + "---|---|" * len(runs) + "---|"]
  settled = 0
  for k in keys:
    cells, vs = [], []
    for idx in index:
      r = idx.get(k)
      vs.append(None if r is None else r["verdict"])
      est = None if r is None else ci(r.get("estimate"), r.get("fmt", "{:.2f}"))
      if compact:
        cells.append("not measured" if r is None else f"{est}: {r['verdict']}")
      else:
        cells += ["not measured", ""] if r is None else [est, r["verdict"]]
    verdict = across(vs)
    settled += not verdict.startswith(UNSETTLED)
    head = _short(k[1]) if compact else k[1]
    lines.append(f"| {head} | " + " | ".join(cells) + f" | **{verdict}** |")
  return lines, {"rows": len(keys), "settled": settled}
