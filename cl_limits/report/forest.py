"""The verdicts at a glance: every verdict row's estimate and 95% interval against its own threshold, one
small axis per row (rows are in different units). Predictions: green supported, red refuted, gray
neither (inconclusive, not counted, no prediction). Controls (power control, known positive, P3 positive
control), which must refute: blue where they did, orange where they did not or where a power control
refuted with its competence gate failed (it licenses nothing, `verdicts.REFUTED_UNFIT`)."""
from __future__ import annotations

from cl_limits.analysis import verdicts
from cl_limits.stages import outputs

COLOURS = {"supported": "tab:green", "refuted": "tab:red"}
CONTROLS = ("power_control", "known_positive", "p3_positive_control")


def _triple(e):
  if isinstance(e, dict):
    return e["estimate"], e["low"], e["high"]
  return tuple(e)


def colour(row: dict) -> str:
  """A row's marker colour (module docstring)."""
  verdict = str(row["verdict"]).strip("*")
  if row.get("kind") in CONTROLS:
    return "tab:blue" if verdict == verdicts.REFUTED else "tab:orange"    # REFUTED_UNFIT licenses nothing
  return COLOURS.get(verdict, "tab:gray")


def plot(rows: list[dict], path: str) -> bool:
  """Writes the forest plot of `rows` (those with an interval estimate) to `path`; False when none has."""
  rows = [r for r in rows if r.get("estimate") is not None]
  if not rows:
    return False
  with outputs.figure(path, size=(9, 0.55 * len(rows) + 0.6), nrows=len(rows), h_pad=0.4) as (_, axes):
    for ax, r in zip(axes, rows):
      est, lo, hi = (float(x) for x in _triple(r["estimate"]))
      thr = float(r.get("threshold", 0.0))
      verdict = str(r["verdict"]).strip("*")
      ax.errorbar([est], [0], xerr=[[est - lo], [hi - est]], fmt="o", color=colour(r), ms=4, capsize=3)
      ax.axvline(thr, color="k", ls="--", lw=0.8)
      span = max(hi, thr) - min(lo, thr)
      pad = 0.15 * span if span > 0 else 0.1
      ax.set_xlim(min(lo, thr) - pad, max(hi, thr) + pad)
      ax.set_yticks([])
      head = r["prediction"] if len(r["prediction"]) <= 75 else r["prediction"][:72] + "..."
      ax.set_title(f"{head}  ->  {verdict}", fontsize=7, loc="left", pad=2)
      ax.tick_params(axis="x", labelsize=6)
      for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
  return True
