"""How the verdicts move when the action temperature moves (off by default; one command on a finished run).

  python -m experiments.pipeline --config=experiments/configs/darkroom.py --workdir=runs/main \
      --config.experiments.sensitivity.temperatures=argmax,0.3,0.5,0.7

For each temperature (or "argmax") the P1, P2 and P3 stages run again, as steps of the pipeline (each
with its own fingerprint), on the finished run's teachers and imitators (linked, never copied or
retrained) under `<workdir>/sensitivity/<label>/`, with the same tasks and keys; the hybrid is left out
(SGD in the loop costs ~100x a frozen step), and P2 rows without headroom at a temperature skip their
rollout there (the headroom reads the teachers' policy that temperature plays like: their behaviour at 1
for imitators of the recorded actions, their greedy policy below it). This stage gathers the
columns. The run's own
temperature is the column the main table reports. Also shown: the temperature the data-driven rule would
have chosen (the highest competence return, on training tasks, after one kept history's steps (its own time),
averaged over the P2 rows run here), next to the one fixed before the run. Writes
`<workdir>/sensitivity/{summary.json, sensitivity.png}`; the report adds a section.
"""
from __future__ import annotations

import os

import ml_collections
import numpy as np

from cl_limits import comma_list
from cl_limits.stages import common, layout, outputs
from cl_limits.report import gates
from cl_limits.report import rows as rr
from cl_limits.report.sections import short_prediction
from cl_limits.stages.base import Stage, check


def labels(config) -> list[str]:
  s = config.experiments.get("sensitivity")
  return comma_list(s.temperatures) if s is not None else []


def enabled(config) -> bool:
  return bool(labels(config))


def validate(config) -> None:
  for lab in labels(config):
    ok = lab == "argmax"
    try:
      ok = ok or float(lab) > 0
    except ValueError:
      pass
    check(ok, "experiments.sensitivity.temperatures", "each entry must be 'argmax' or a temperature > 0", lab)
  check(not labels(config) or common.p2_actions_section(config)[1] == "evaluation", "experiments.sensitivity.temperatures",
        "re-scores P2 under the evaluation section's protocol, but experiments.p2.protocol has its own "
        "(source 'own')", config.experiments.sensitivity.temperatures)


def evaluation_for(evaluation, label: str):
  """The evaluation section of column `label` ("argmax" or a temperature)."""
  ev = ml_collections.ConfigDict(evaluation.to_dict())
  ev.greedy = label == "argmax"
  if label != "argmax":
    ev.temperature = float(label)
  return ev


def columns(config) -> list[tuple[str, object]]:
  """[(label, derived config)] of the columns other than the run's own: P1, P2 and P3 under that
  temperature, without the hybrid (SGD in the loop costs ~100x a frozen step); P2 rows without headroom
  under that temperature's protocol skip their rollout (`replicates.headroom_basis`)."""
  own = common.describe_actions(config.evaluation)
  out = []
  for lab in labels(config):
    if common.describe_actions(evaluation_for(config.evaluation, lab)) == own:
      continue
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.evaluation = evaluation_for(config.evaluation, lab)
    cfg.experiments.hybrid.arm = ""
    cfg.experiments.p2.skip_without_headroom = True
    cfg.experiments.p3.hybrid_tasks = 0
    cfg.lock()
    out.append((lab, cfg))
  return out


def links(label: str, cfg, workdir: str, teachers_at: str) -> dict:
  """{link: target} column `label`'s directory needs: the finished run's imitators, teachers, histories and
  P3 target DQNs (linked, never copied or retrained)."""
  sub = layout.sensitivity_dir(workdir, label)
  out = {os.path.join(sub, "imitators"): layout.path(workdir, "imitators"),
         os.path.join(sub, "teachers"): layout.path(teachers_at, "teachers"),
         os.path.join(sub, "histories"): layout.path(workdir, "histories")}
  for t in [t for t in cfg.experiments.p3.targets if not common.reuses_teachers(cfg, t)]:
    out[os.path.join(layout.p3_target_dir(sub, t), "teachers")] = layout.path(layout.p3_target_dir(workdir, t), "teachers")
  return out


def _rows(config, workdir) -> list[dict]:
  return [{k: r[k] for k in ("prediction", "estimate", "verdict")} | {"fmt": r.get("fmt", "{:.2f}")}
          for r in gates.counted(rr.p1_rows(config, workdir) + rr.p2_rows(workdir) + rr.p3_rows(config, workdir))]


def _competence(workdir) -> dict:
  """One column's competence, from its P2 summary: 'competence' (the rule's number: the mean competence
  return over the P2 rows; None without any) and 'gates' ({P2 row: its gate's gain over random (interval
  over replicates), outcome and threshold}, so the report shows whether any temperature lets a row
  reproduce its data)."""
  arms = (layout.summary(workdir, "p2") or {}).get("arms", {})
  ends = [np.mean(e["competence"]["imitator_end"]) for e in arms.values() if "competence" in e]
  gates = {}
  for arm, e in arms.items():
    c = e.get("competence")
    if c and "interval" in c:
      gates[arm] = {"interval": c["interval"], "ok": bool(c["ok"]), "needed": c["needed"]}
  return {"competence": float(np.mean(ends)) if ends else None, "gates": gates}


def run(step, log=print) -> None:
  """Gathers the columns (the run's own, then each temperature's P1, P2 and P3 steps, which the pipeline
  ran under `<workdir>/sensitivity/<label>/`) into one summary and figure."""
  config, workdir = step.config, step.workdir
  main_p2 = layout.summary(workdir, "p2") or {"arms": {}}
  skipped = [a for a in common.p2_arms(config) if not main_p2["arms"].get(a, {}).get("headroom", {}).get("ok")]
  own = common.describe_actions(config.evaluation)
  out = {"fixed": own, "skipped_p2_rows": skipped, "columns": {}}
  out["columns"][own] = {"rows": _rows(config, workdir), **_competence(workdir), "main": True}
  for lab in labels(config):
    name = common.describe_actions(evaluation_for(config.evaluation, lab))
    if name != own:
      sub = layout.sensitivity_dir(workdir, lab)
      out["columns"][name] = {"rows": _rows(config, sub), **_competence(sub), "main": False}
  out["order"] = list(out["columns"])          # the run's own first (summary.json sorts its keys)
  comp = {k: v["competence"] for k, v in out["columns"].items() if v["competence"] is not None}
  out["rule_choice"] = max(comp, key=comp.get) if comp else None
  outputs.write_json(layout.path(workdir, "sensitivity", layout.SUMMARY), out)
  _plot(out, layout.path(workdir, "sensitivity", "sensitivity.png"))
  log(f"[sensitivity] the data-driven rule would choose: {out['rule_choice']} (fixed: {own})")


def _plot(out, path):
  cols = out["order"]
  preds = [r["prediction"] for r in out["columns"][out["fixed"]]["rows"]]
  with outputs.figure(path, size=(8, 0.45 * max(4, len(preds)) + 1)) as (_, (ax,)):
    for j, col in enumerate(cols):
      rows = {r["prediction"]: r for r in out["columns"][col]["rows"]}
      for i, p in enumerate(preds):
        r = rows.get(p)
        if r is None:
          continue
        e = r["estimate"]
        est, lo, hi = (e["estimate"], e["low"], e["high"]) if isinstance(e, dict) else e
        y = i + (j - (len(cols) - 1) / 2) * 0.12
        ax.errorbar([est], [y], xerr=[[est - lo], [hi - est]], fmt="o", ms=3, color=f"C{j}",
                    label=col if i == 0 else None)
    ax.set_yticks(range(len(preds)))
    ax.set_yticklabels([short_prediction(p) for p in preds], fontsize=6)
    ax.axvline(0, color="gray", lw=0.6)
    ax.set_xlabel("estimate with its 95% interval (each row in its own unit; see the report)")
    ax.set_title("verdict estimates by action temperature", fontsize=9)
    ax.legend(fontsize=6)


STAGE = Stage(name="sensitivity", subdir="sensitivity", reads=("env", "evaluation", "experiments.sensitivity",
                                                               "experiments.p2.arms", "experiments.p2.protocol",
                                                               "experiments.p1.max_kl"), validate=validate, run=run, enabled=enabled)
