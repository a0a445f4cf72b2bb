"""What makes a verdict count: a control of the same kind that refuted (P2's power control, P3's positive
control), and for P1 an imitator that reproduces its behaviour policy (its fidelity gate)."""
from __future__ import annotations

from cl_limits.analysis import verdicts


NOT_RECORDED_GATE = "inconclusive: imitator fidelity not measured"


UNFAITHFUL = "inconclusive: imitator did not reproduce its data"


def fidelity_gate(verdict: str, rule: str, fidelity: dict | None, max_kl: float) -> tuple[str, str]:
  """A P1 verdict counts only when the snapshot imitator reproduces its behaviour policy: held-out KL
  (replicates' mean) at most `max_kl` nats; otherwise inconclusive, the ungated verdict in the rule."""
  import numpy as np  # noqa: PLC0415
  if not np.isfinite(max_kl):
    return verdict, rule
  kl = None if fidelity is None else np.asarray(fidelity["kl"], float)
  if kl is None or not np.isfinite(kl).all():
    return NOT_RECORDED_GATE, f"{rule}; fidelity gate (KL <= {max_kl:g} nats): not measured (ungated: {verdict})"
  if kl.mean() > max_kl:
    return UNFAITHFUL, (f"{rule}; fidelity gate: held-out KL {kl.mean():.3f} nats > {max_kl:g}, so the imitator "
                        f"is not its behaviour policy and the row cannot test P1 (ungated: {verdict})")
  return verdict, f"{rule}; fidelity gate: held-out KL {kl.mean():.3f} <= {max_kl:g} nats, passed"


def counted(rows: list[dict]) -> list[dict]:
  """A "supported" counts only where the study's control of the same kind refuted (the P2 power control
  for P2 rows and their trends, the P3 positive control for P3 transplant rows): otherwise the verdict
  reads "not counted: <control> did not refute (<its verdict>)" and the uncounted verdict stays in the rule."""
  controls = {"p2": [r for r in rows if r.get("kind") == "power_control"],
              "p3": [r for r in rows if r.get("kind") == "p3_positive_control"]}
  out = []
  for r in rows:
    family = {"p2": "p2", "p2_trend": "p2", "p3": "p3"}.get(r.get("kind", ""))
    if family and r["verdict"] == verdicts.SUPPORTED:
      ok = [c for c in controls[family] if c["verdict"] == verdicts.REFUTED]
      if not ok:
        name = {"p2": "the P2 power control", "p3": "the P3 positive control"}[family]
        what = (", ".join(f"it read {c['verdict']}" for c in controls[family]) if controls[family]
                else "this study has none")
        r = dict(r, verdict=f"not counted: {name} did not refute ({what})",
                 rule=f"{r['rule']}. Uncounted verdict: supported")
    out.append(r)
  return out
