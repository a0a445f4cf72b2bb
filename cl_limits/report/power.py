"""The P2 gates' power, read on finished runs of one study: per P2 row and gate, the replicates' pooled mean
and spread, the chance that the gate passes at the runs' replicate count, and the replicates it would need
to pass with a stated probability (cl_limits/analysis/power.py; `experiments.compare_seeds --power`).

A row whose gate passes at one base seed and not at another is "unsettled"; this table says whether that
is a gate without power at this many replicates (a pass probability well inside (0, 1)) or a real
difference between the runs. The figures are estimated from the runs they describe: they size the next
run (how many replicates); they do not re-read these runs' verdicts.
"""
from __future__ import annotations

import math

from cl_limits.analysis import power
from cl_limits.stages import layout


def _competence(e):
  c = e.get("competence") or {}
  return c.get("per_replicate"), c.get("needed")


def _clone(e):
  c = e.get("competence") or {}
  return (c.get("clone") or {}).get("per_replicate"), c.get("needed")


def _late(e):
  return (None if e.get("skipped") else (e.get("late_minus_ceiling") or {}).get("per_replicate")), 0.0


def gates(kind: str) -> list:
  """(gate, reader, side) for a P2 row of `kind`: the competence gate on the imitator and on a held-out
  stream of its data (the gate's own power), and the row's reading of late - ceiling: "supported" (upper
  end at or below 0) for a prediction row, "refuted" (lower end above 0) for a control that must refute."""
  late = (("late - ceiling: refuted", _late, "above") if kind in ("power_control", "known_positive")
          else ("late - ceiling: supported", _late, "below"))
  return [("competence: the imitator", _competence, "above"),
          ("competence: a held-out stream of its data (the gate's power)", _clone, "above"), late]


def _label(gate, threshold, side):
  return f"{gate}, {'lower end >=' if side == 'above' else 'upper end <='} {threshold:g}"


def _fmt_n(n, mean, threshold, side, most):
  if n is not None:
    return str(n)
  right = mean > threshold if side == "above" else mean < threshold
  return f"more than {most}" if right else "none: the mean is on the failing side"


def table(workdirs: list[str], power_wanted: float = 0.8, most: int = 200) -> list[str]:
  """Markdown lines: one row per (P2 row, gate) measured in every run. ValueError naming a run without
  P2's summary."""
  sums = []
  for w in workdirs:
    s = layout.summary(w, "p2")
    if s is None:
      raise ValueError(f"{w}: no P2 summary (run its pipeline through the P2 stage)")
    sums.append(s)
  arms = [a for a in sums[0]["arms"] if all(a in s["arms"] for s in sums)]
  lines = [f"| P2 row | gate | per run: mean (replicates) | pooled mean; within-run sd | P(pass) at the runs' "
           f"replicates | replicates for P(pass) >= {power_wanted:g} |", "|---|---|---|---|---|---|"]
  for arm in arms:
    entries = [s["arms"][arm] for s in sums]
    for gate, read, side in gates(entries[0].get("kind", "p2")):
      got = [read(e) for e in entries]
      values, threshold = [g[0] for g in got], got[0][1]
      if threshold is None or any(v is None for v in values):
        continue
      if any(not all(math.isfinite(x) for x in v) for v in values):
        lines.append(f"| {arm} | {_label(gate, threshold, side)} | not measurable (a replicate's value is undefined) | | | |")
        continue
      p = power.pooled(values)
      runs = ", ".join(f"{sum(v) / len(v):.3f} ({len(v)})" for v in values)
      at = ", ".join(f"{power.pass_probability(p['mean'], p['sd'], n, threshold, side):.2f}" for n in sorted(set(p["n"])))
      need = power.replicates_for(p["mean"], p["sd"], threshold, side, power_wanted, most=most)
      lines.append(f"| {arm} | {_label(gate, threshold, side)} | {runs} | {p['mean']:.3f}; {p['sd']:.3f} | {at} | "
                   f"{_fmt_n(need, p['mean'], threshold, side, most)} |")
  return lines
