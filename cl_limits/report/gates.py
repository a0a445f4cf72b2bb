"""What makes a verdict count: a control of the same kind that refuted (P2's power control, P3's positive
control), for P1 an imitator that reproduces its behaviour policy (its fidelity gate), and for P2 the
gates' texts and outcomes (headroom, learning in data, competence at the end of the data, collapse)."""
from __future__ import annotations

from cl_limits.analysis import clone as clone_lib
from cl_limits.analysis import verdicts


def ci(t, fmt="{:.2f}"):
  """'est [low, high]' of a (estimate, low, high) triple or a `stats.replicate_interval` dict."""
  if t is None:
    return "n/a"
  if isinstance(t, dict):
    t = (t["estimate"], t["low"], t["high"])
  return f"{fmt.format(t[0])} [{fmt.format(t[1])}, {fmt.format(t[2])}]"


def per_rep(values, fmt="{:.2f}") -> str:
  """Every replicate's value, in replicate order."""
  if isinstance(values, dict):
    values = values["per_replicate"]
  return ", ".join("n/a" if v is None else fmt.format(v) for v in values)


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
  for P2 rows and their trends, with its competence gate passed as a supported row's must be; the P3
  positive control for P3 transplant rows): otherwise the verdict reads "not counted: <control> did not
  refute (<its verdict>)", or "... refuted without passing its competence gate", and the uncounted
  verdict stays in the rule. A power control that refuted without its competence gate says so on its own
  row too (`verdicts.REFUTED_UNFIT`), so that a table of controls does not read it as a license."""
  controls = {"p2": [r for r in rows if r.get("kind") == "power_control"],
              "p3": [r for r in rows if r.get("kind") == "p3_positive_control"]}
  out = []
  for r in rows:
    family = {"p2": "p2", "p2_trend": "p2", "p3": "p3"}.get(r.get("kind", ""))
    if family and r["verdict"] == verdicts.SUPPORTED:
      ok = [c for c in controls[family] if c["verdict"] == verdicts.REFUTED and c.get("competence_ok") is not False]
      if not ok:
        name = {"p2": "the P2 power control", "p3": "the P3 positive control"}[family]
        what = (", ".join(f"it read {c['verdict']}" for c in controls[family]) if controls[family]
                else "this study has none")
        text = f"not counted: {name} did not refute ({what})"
        if controls[family] and all(c["verdict"] == verdicts.REFUTED for c in controls[family]):
          text = f"not counted: {name} refuted without passing its competence gate"
        r = dict(r, verdict=text, rule=f"{r['rule']}. Uncounted verdict: supported")
    if r.get("kind") == "power_control" and r["verdict"] == verdicts.REFUTED and r.get("competence_ok") is False:
      r = dict(r, verdict=verdicts.REFUTED_UNFIT)
    out.append(r)
  return out


def _interval_text(g, fmt: str, missing: str = "not measurable") -> str:
  """A gate's interval and every replicate's value: "est [low, high] (r0, r1, ...)", or `missing` when the
  interval could not be formed."""
  if not g["interval"]:
    return missing
  return f"{ci(g['interval'], fmt)} ({per_rep(g['per_replicate'], fmt)})"


def learning_gate(e) -> tuple[str, bool | None]:
  """The learning-in-data gate's text and outcome (None for summaries made before it)."""
  g = e.get("learning")
  if g is None:
    return "", None
  return (f"learning in data: its rise {_interval_text(g, '{:.3f}')} of (top - random) (needs {g['needed']:g}) "
          f"{'ok' if g['ok'] else 'FAILS'}; "), bool(g["ok"])


def competence_gate(c) -> tuple[str, bool]:
  """The competence gate's text and outcome; summaries made before the gain-over-random measure (a bare
  ratio of returns) are read with their own rule."""
  if "interval" not in c:
    ok = c["ratio"] >= c["needed"]
    return (f"competence: {c['ratio']:.2f} of its data on the training tasks (needs {c['needed']:g}) "
            f"{'ok' if ok else 'FAILS'}"), bool(ok)
  shown = _interval_text(c, "{:.2f}", f"not measurable ({per_rep(c['per_replicate'], '{:.2f}')})")
  m = int(c.get("rollouts", 1))
  text = (f"competence at the end of its data ({c['horizon_steps']:,} steps, its own time"
          + (f", {m} rollouts per task" if m > 1 else "") + f"): gain over random "
          f"{shown} (needs {c['needed']:g} at the lower end) {'ok' if c['ok'] else 'FAILS'}")
  clone = c.get("clone")
  if clone:
    shown = _interval_text(clone, "{:.2f}", f"not measurable ({per_rep(clone['per_replicate'], '{:.2f}')})")
    k = int(clone.get("streams_used", 1))
    what = "a held-out stream of the data," if k == 1 else f"{k} streams of the data against the others,"
    text += f" [the gate's power: {what} read as a perfect clone, {shown} "
    judges, gap = _clone_judges(c)
    if clone["ok"]:
      text += "passes]"
    else:
      gap_text = _interval_text(gap, "{:.2f}") if gap else "not measurable"
      text += (f"fails; the clone minus the imitator {gap_text}: "
               + ("the gate still detects this imitator's shortfall]" if judges else
                  "the gate cannot tell this imitator from a perfect clone]"))
  return text, bool(c["ok"])


def _clone_judges(c) -> tuple[bool | None, dict | None]:
  """(whether the competence gate can judge this imitator, the clone gap where it was needed): a perfect
  clone of the data passes the gate, or, where the clone fails too, the imitator sits below the clone by
  more than the noise (`clone.clone_gap`); (None, None) where not measured."""
  clone = c.get("clone")
  if not clone:
    return None, None
  if clone["ok"]:
    return True, None
  gap = clone_lib.clone_gap(c)
  return bool(gap and gap["detects"]), gap


def clone_ok(c) -> bool | None:
  """Whether the competence gate can judge this imitator (`_clone_judges`); None where not measured."""
  return _clone_judges(c)[0]


def held_gate(e) -> tuple[str, bool | None]:
  """The collapse check's text and outcome (None where not measured: no rollout, or an older summary)."""
  h = e.get("held")
  if h is None:
    return "", None
  return (f"; late - data end {_interval_text(h, '{:.3f}')} of (top - random) (collapsed below -{h['margin']:g}) "
          f"{'held' if h['ok'] else 'COLLAPSED'}"), bool(h["ok"])


def p2_gates(e) -> tuple[str, tuple]:
  h = e["headroom"]
  learning, _ = learning_gate(e)
  comp_text, comp_ok = competence_gate(e["competence"])
  held_text, held_ok = held_gate(e)
  gates = (f"headroom: {h.get('basis', 'greedy')} rise past the ceiling {h['rise']:.3f} (needs {h['needed']:.3f}: "
           f"{h['fraction']:g} x ({h['top']:.2f} - random {h['random']:.3f})) {'ok' if h['ok'] else 'FAILS'}; "
           + learning + comp_text + held_text)
  return gates, (h["rise"], h["needed"], comp_ok, e["competence"]["needed"], held_ok)


def p2_verdict(e) -> tuple[str, str, str, dict]:
  """One P2 summary entry's (gates text, verdict, rule, the gates' outcomes) by the P2 rule
  (`verdicts.p2_gated`): late - ceiling (the ceiling itself where the held-out rollout was skipped for want
  of headroom) with every gate. Outcomes: rise, needed (headroom), comp_ok, held_ok, learning_ok, clone_ok
  (None where not measured), which the row's trend reads too."""
  gates, (rise, needed, comp_ok, comp_needed, held_ok) = p2_gates(e)
  g = {"rise": rise, "needed": needed, "comp_ok": comp_ok, "held_ok": held_ok,
       "learning_ok": learning_gate(e)[1], "clone_ok": clone_ok(e["competence"])}
  diff = e["ceiling"] if "skipped" in e else e["late_minus_ceiling"]
  verdict, rule = verdicts.p2_gated((diff["estimate"], diff["low"], diff["high"]), rise, needed, comp_ok,
                                    comp_needed, g["learning_ok"], held_ok, g["clone_ok"])
  return gates, verdict, rule, g
