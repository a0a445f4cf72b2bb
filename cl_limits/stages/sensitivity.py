"""How the verdicts move when the action temperature moves (off by default; one command on a finished run).

  python -m experiments.pipeline --config=experiments/configs/darkroom.py --workdir=runs/main \
      --config.experiments.sensitivity.temperatures=argmax,0.3,0.5,0.7

For each temperature (or "argmax") the P1, P2 and P3 stages run again on the finished run's teachers and
imitators (linked, never copied or retrained) under `<workdir>/sensitivity/<label>/`, with the same tasks
and keys; the hybrid is left out (SGD in the loop costs ~100x a frozen step), and so are P2 rows without
headroom (their verdict does not depend on the temperature: the headroom is the teachers'). The run's own
temperature is the column the main table reports. Also shown: the temperature the data-driven rule would
have chosen (the highest competence return, on training tasks, after one truncated history's steps,
averaged over the P2 rows run here), next to the one fixed before the run. Writes
`<workdir>/sensitivity/{summary.json, sensitivity.png}`; the report adds a section.
"""
from __future__ import annotations

import os

import ml_collections
import numpy as np

from cl_limits import comma_list
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import common, layout, outputs
from cl_limits.stages import p1 as p1_stage
from cl_limits.stages import p2 as p2_stage
from cl_limits.stages import p3 as p3_stage
from cl_limits.stages import report_rows as rr
from cl_limits.stages.base import Stage, Step, check


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


def _derived(config, label: str, p2_arms: list[str]):
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.evaluation.greedy = label == "argmax"
  if label != "argmax":
    cfg.evaluation.temperature = float(label)
  cfg.experiments.hybrid.arm = ""
  cfg.experiments.p2.arms = ",".join(p2_arms)
  cfg.experiments.p3.hybrid_tasks = 0
  cfg.lock()
  return cfg


def _link(src: str, dst: str) -> None:
  if os.path.lexists(dst):
    return
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  os.symlink(os.path.abspath(src), dst)


def _rows(cfg, workdir) -> list[dict]:
  return [{k: r[k] for k in ("prediction", "estimate", "verdict")} | {"fmt": r.get("fmt", "{:.2f}")}
          for r in rr.p1_rows(cfg, workdir) + rr.p2_rows(workdir) + rr.p3_rows(cfg, workdir)]


def _competence(workdir) -> float | None:
  s = layout.summary(workdir, "p2")
  ends = [np.mean(e["competence"]["imitator_end"]) for e in (s or {}).get("arms", {}).values()]
  return float(np.mean(ends)) if ends else None


def run(step, log=print) -> None:
  config, workdir = step.config, step.workdir
  main_p2 = layout.summary(workdir, "p2") or {"arms": {}}
  with_headroom = [a for a in p2_stage.arms(config) if main_p2["arms"].get(a, {}).get("headroom", {}).get("ok")]
  skipped = [a for a in p2_stage.arms(config) if a not in with_headroom]
  own = rollout_lib.describe_actions(config.evaluation)
  out = {"fixed": own, "skipped_p2_rows": skipped, "columns": {}}
  out["columns"][own] = {"rows": _rows(config, workdir), "competence": _competence(workdir), "main": True}
  teachers_at = common.teachers_at(config, workdir)
  for lab in labels(config):
    cfg = _derived(config, lab, with_headroom)
    name = rollout_lib.describe_actions(cfg.evaluation)
    if name == own:
      continue
    sub = layout.path(workdir, "sensitivity", lab)
    _link(layout.path(workdir, "imitators"), os.path.join(sub, "imitators"))
    _link(layout.path(teachers_at, "teachers"), os.path.join(sub, "teachers"))
    if os.path.isdir(layout.path(workdir, "histories")):
      _link(layout.path(workdir, "histories"), os.path.join(sub, "histories"))
    for t in [t for t in cfg.experiments.p3.targets if not p3_stage.reuses_teachers(cfg, t)]:
      _link(layout.path(p3_stage.target_dir(workdir, t), "teachers"),
            os.path.join(p3_stage.target_dir(sub, t), "teachers"))
    log(f"[sensitivity] {name}: P1, P2 ({', '.join(with_headroom) or 'no rows with headroom'}, power control), P3")
    for stage in (p1_stage.STAGE, p2_stage.STAGE, p3_stage.STAGE):
      if stage.enabled(cfg) and layout.summary(sub, stage.subdir) is None:
        stage.run(Step(f"sensitivity/{lab}/{stage.name}", stage, cfg, sub), log)
    out["columns"][name] = {"rows": _rows(cfg, sub), "competence": _competence(sub), "main": False}
  out["order"] = list(out["columns"])          # the run's own first (summary.json sorts its keys)
  comp = {k: v["competence"] for k, v in out["columns"].items() if v["competence"] is not None}
  out["rule_choice"] = max(comp, key=comp.get) if comp else None
  outputs.write_json(layout.path(workdir, "sensitivity", layout.SUMMARY), out)
  _plot(out, layout.path(workdir, "sensitivity", "sensitivity.png"))
  log(f"[sensitivity] the data-driven rule would choose: {out['rule_choice']} (fixed: {own})")


def _short(prediction: str) -> str:
  return prediction.split(" (")[0][:60]


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
    ax.set_yticklabels([_short(p) for p in preds], fontsize=6)
    ax.axvline(0, color="gray", lw=0.6)
    ax.set_xlabel("estimate with its 95% interval (each row in its own unit; see the report)")
    ax.set_title("verdict estimates by action temperature", fontsize=9)
    ax.legend(fontsize=6)


def section(workdir) -> list[str]:
  s = layout.summary(workdir, "sensitivity")
  if not s:
    return []
  cols = s["order"]
  preds = [r["prediction"] for r in s["columns"][s["fixed"]]["rows"]]
  lines = ["## Sensitivity to the action temperature", "",
           f"The protocol fixed before the run: {s['fixed']} (the main table). The other columns re-run P1, "
           "P2 and P3 on the same teachers, imitators, tasks and keys"
           + (f"; P2 rows without headroom ({', '.join(s['skipped_p2_rows'])}) are left out, their verdict "
              "does not depend on the temperature" if s["skipped_p2_rows"] else "")
           + f". The data-driven rule (highest competence return on training tasks after one truncated "
           f"history's steps) would have chosen: **{s['rule_choice']}**.", "",
           "| row | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
  for p in preds:
    cells = []
    for c in cols:
      r = next((r for r in s["columns"][c]["rows"] if r["prediction"] == p), None)
      cells.append("" if r is None else f"{rr.ci(r['estimate'], r['fmt'])} {r['verdict']}")
    lines.append(f"| {_short(p)} | " + " | ".join(cells) + " |")
  comp = " | ".join("" if s["columns"][c]["competence"] is None else f"{s['columns'][c]['competence']:.3f}"
                    for c in cols)
  lines += [f"| competence return (rule) | {comp} |", "", "![sensitivity](sensitivity/sensitivity.png)", ""]
  return lines


STAGE = Stage(name="sensitivity", subdir="sensitivity",
              reads=("seed", "experiments", "evaluation", "tasks"), validate=validate, run=run, enabled=enabled)
