"""The pipeline: a list of steps (a stage on a config in a run directory), every one validated before the
first runs, each skipped when its results match its fingerprint, re-run with everything downstream when
a field it reads (or an input) changed.

  teachers -> imitation -> evaluation -> p1 -> p2 -> [p3 target DQNs -> p3] -> hybrid -> [sensitivity]
  -> report

A config with a `transplant` section is the MinAtar leave-one-game-out study: teachers per game,
imitation and scoring per held-out game, one report (cl_limits/stages/transplant.py). A killed pipeline
resumes where it stopped; a finished one only prints where its report is.
"""
from __future__ import annotations

import os
import shutil
import time

from cl_limits.stages import common, evaluation, hybrid, imitation, layout, outputs, p1, p2, p3, report, sensitivity
from cl_limits.stages import teachers
from cl_limits.stages import transplant
from cl_limits.stages.base import ConfigError, Step, jsonable, changed_fields, fingerprint, positive_int, read_fields


def plan(config, workdir: str) -> list[Step]:
  """The steps the config asks for, in order."""
  workdir = os.path.abspath(workdir)
  if transplant.enabled(config):
    return _transplant_plan(config, workdir)
  teachers_at = os.path.abspath(common.teachers_at(config, workdir))
  steps = [Step("teachers", teachers.STAGE, config, teachers_at, args={"shared": teachers_at != workdir})]
  if "imitation" not in config:          # a teacher-only config (cartpole.py, minatar.py)
    return steps
  steps += [Step("imitation", imitation.STAGE, config, workdir, ("teachers",)),
            Step("evaluation", evaluation.STAGE, config, workdir, ("imitation", "teachers"))]
  for stage in (p1.STAGE, p2.STAGE):
    if stage.enabled(config):
      steps.append(Step(stage.name, stage, config, workdir, ("imitation", "teachers")))
  if p3.STAGE.enabled(config):
    targets = []
    for name in config.experiments.p3.targets:
      if common.reuses_teachers(config, name):     # the training env itself: its DQN is the main teachers
        targets.append("teachers")
        continue
      steps.append(Step(f"p3/{name}/teachers", teachers.STAGE, p3.target_config(config, name),
                        layout.p3_target_dir(workdir, name)))
      targets.append(steps[-1].id)
    steps.append(Step("p3", p3.STAGE, config, workdir, ("imitation", *dict.fromkeys(targets))))
  if hybrid.STAGE.enabled(config):
    steps.append(Step("hybrid", hybrid.STAGE, config, workdir, ("imitation", "teachers")))
  if sensitivity.STAGE.enabled(config):
    ids = [s.id for s in steps if s.id in ("p1", "p2", "p3")]
    for label, cfg in sensitivity.columns(config):      # P1, P2 and P3 again at another temperature
      links = sensitivity.links(label, cfg, workdir, teachers_at)
      for stage in (p1.STAGE, p2.STAGE, p3.STAGE):
        if stage.enabled(cfg):
          main = next(s for s in steps if s.id == stage.name)
          steps.append(Step(f"sensitivity/{label}/{stage.name}", stage, cfg,
                            layout.sensitivity_dir(workdir, label), main.inputs, args={"links": links}))
          ids.append(steps[-1].id)
    steps.append(Step("sensitivity", sensitivity.STAGE, config, workdir, tuple(ids)))
  steps.append(Step("report", report.STAGE, config, workdir, tuple(s.id for s in steps)))
  return steps


def _transplant_plan(config, workdir):
  steps = [Step(f"games/{g}/teachers", teachers.STAGE, transplant.game_config(config, g),
                layout.game_dir(workdir, g)) for g in transplant.games(config)]
  scores = []
  for g in transplant.heldout_games(config):
    others = tuple(f"games/{o}/teachers" for o in transplant.games(config) if o != g)
    steps.append(Step(f"holdout/{g}/imitation", imitation.STAGE, transplant.holdout_config(config, workdir, g),
                      layout.holdout_dir(workdir, g), others))
    steps.append(Step(f"holdout/{g}/p3", transplant.SCORE, config, layout.holdout_dir(workdir, g),
                      (f"holdout/{g}/imitation", f"games/{g}/teachers"), args={"root": workdir, "game": g}))
    scores.append(steps[-1].id)
  steps.append(Step("transplant", transplant.REPORT, config, workdir, tuple(scores)))
  return steps


def validate(steps) -> None:
  """Every step's config checks, before anything runs (ConfigError names the field). The study configs'
  `replicates` knob, which sets both num_seeds fields and is read by no stage, is named with both."""
  seen = set()
  for s in steps:
    if id(s.config) not in seen and "replicates" in s.config:
      seen.add(id(s.config))
      try:
        positive_int(s.config, "replicates")
      except ConfigError as e:
        raise ConfigError(str(e).replace("replicates:", "replicates (teacher.num_seeds and imitation.num_seeds):", 1)) \
            from None
    key = (s.stage.name, id(s.config))
    if key not in seen:
      seen.add(key)
      s.stage.validate(s.spec())


def _paths(step):
  return (layout.path(step.workdir, step.stage.marker_path), layout.path(step.workdir, step.stage.record_path))


def decide(steps) -> dict:
  """{step id: (action, reason, fingerprint, reads)}; action is "reuse", "run" (fresh or resuming) or
  "rerun" (results of another config: cleared first)."""
  fps, out = {}, {}
  for s in steps:
    reads = read_fields(s.config, s.stage.reads, s.stage.ignores)
    inputs = {i: fps[i] for i in s.inputs}
    fp = fingerprint(reads, inputs)
    fps[s.id] = fp
    marker, record_path = _paths(s)
    record = layout.read_json(record_path)
    if record is None:
      action, reason = ("reuse", "made before fingerprints") if os.path.exists(marker) else ("run", "")
    elif record.get("fingerprint") == fp:
      action, reason = ("reuse", "") if os.path.exists(marker) else ("run", "resuming")
    else:
      fields = changed_fields(record.get("reads", {}), reads)
      ins = [i for i in inputs if record.get("inputs", {}).get(i) != inputs[i]]
      reason = ", ".join([f"{f} changed" for f in fields] + [f"its input {i} changed" for i in ins])
      action = "rerun"
      if s.args.get("shared"):
        raise ConfigError(f"teachers_from: the teachers in {s.workdir} were made with a different config "
                          f"({reason or 'fingerprint differs'}); point it at a run of the same base config")
    out[s.id] = (action, reason, fp, reads, inputs)
  return out


def _clear(step, steps) -> None:
  """Removes what a stale step wrote, keeping the directories of other steps nested inside its own."""
  st = step.stage
  if st.subdir == ".":
    targets = [layout.path(step.workdir, st.marker_path)]
  else:
    targets = [layout.path(step.workdir, st.subdir)] + [layout.path(step.workdir, p) for p in st.extra_outputs]
  keep = {layout.path(o.workdir, o.stage.subdir) for o in steps if o is not step and o.stage.subdir != "."}
  for t in targets:
    _remove(t, keep)


def _remove(path, keep):
  if path in keep or not os.path.lexists(path):
    return
  if os.path.islink(path):          # a link to another step's results: the link goes, never its target
    os.remove(path)
    return
  if os.path.isdir(path) and any(k.startswith(path + os.sep) for k in keep):
    for child in os.listdir(path):
      _remove(os.path.join(path, child), keep)
  elif os.path.isdir(path):
    shutil.rmtree(path)
  else:
    os.remove(path)


def run(config, workdir: str, log=print, only: tuple[str, ...] = ()) -> str:
  """Validates every step, then runs the ones whose results are missing or stale; returns the path of the
  last step's output (report.md). `only`: stage names to run (their upstream steps must be finished)."""
  steps = plan(config, workdir)
  if only:     # a step id ("teachers": the main teachers), else every step of that stage (the transplant's)
    chosen = [s for s in steps if s.id in only] or [s for s in steps if s.stage.name in only]
    if not chosen:
      raise ConfigError(f"{','.join(only)}: no such stage in this config's pipeline ({[s.id for s in steps]})")
    only = tuple(s.id for s in chosen)
  validate([s for s in steps if not only or s.id in only])
  actions = decide(steps)
  last = steps[-1]
  reports = last.stage in (report.STAGE, transplant.REPORT)
  final = layout.path(workdir, "report.md") if reports else layout.path(last.workdir, last.stage.marker_path)
  if not only and reports and all(a[0] == "reuse" for a in actions.values()):
    for s in steps:
      if actions[s.id][1]:         # made before fingerprints: record them now
        _record(s, actions[s.id])
    log(f"[pipeline] finished run; report: {layout.path(workdir, 'report.md')}")
    return layout.path(workdir, "report.md")
  needed = _upstream(steps, list(only)) if only else None
  runs = [s for s in steps if actions[s.id][0] != "reuse" and (not only or s.id in only)]
  prov, record = None, None
  if runs:          # something will run: say what made it (an invocation that only reuses writes nothing)
    log = outputs.tee(log, layout.path(workdir, layout.LOG))
    prov = outputs.provenance()
    outputs.write_json(layout.path(workdir, layout.CONFIG), jsonable(config))
    record = layout.read_json(layout.path(workdir, layout.PROVENANCE)) or {}
    record = {"latest": prov, "steps": record.get("steps", {})}
    outputs.write_json(layout.path(workdir, layout.PROVENANCE), record)
    log(f"[pipeline] commit {prov['commit'][:12]}{' (uncommitted changes)' if prov['dirty'] else ''}, "
        f"jax {prov['versions']['jax']}, {prov['device']['count']} x {prov['device']['kind']}; "
        f"config: {layout.path(workdir, layout.CONFIG)}")
  t_start, n_done = time.time(), 0
  for s in steps:
    action, reason, *_ = actions[s.id]
    if needed is not None and s.id not in needed:
      continue
    if only and s.id not in only:
      if action != "reuse":
        raise ConfigError(f"{s.id}: not finished in {s.workdir} (run the {s.stage.name} stage first)")
      continue
    if action == "reuse":
      log(f"[pipeline] {s.id}: reused" + (f" ({reason})" if reason else ""))
      if s.stage is teachers.STAGE:
        layout.manifest(layout.histories_dir(s.workdir))     # a corrupt store fails here, not later
      if reason:
        _record(s, actions[s.id])
      continue
    if action == "rerun":
      log(f"[pipeline] {s.id}: re-run ({reason})")
      _clear(s, steps)
    elif reason:
      log(f"[pipeline] {s.id}: {reason}")
    _record(s, actions[s.id])
    record["steps"][s.id] = prov
    outputs.write_json(layout.path(workdir, layout.PROVENANCE), record)
    layout.link(s.args.get("links", {}))
    t0 = time.time()
    s.stage.run(s.scoped(), log)
    n_done, now = n_done + 1, time.time()
    record["steps"][s.id] = {**prov, "wall_s": round(now - t0, 1)}     # the invocation that finished it
    outputs.write_json(layout.path(workdir, layout.PROVENANCE), record)
    log(f"[pipeline] {s.id}: done in {outputs.minutes(now - t0)} (step {n_done} of {len(runs)} to run; "
        f"{outputs.minutes(now - t_start)} since the first)")
  return final


def _upstream(steps, ids) -> set:
  """The ids and every step they read from, transitively."""
  by_id, out, todo = {s.id: s for s in steps}, set(), list(ids)
  while todo:
    i = todo.pop()
    if i not in out:
      out.add(i)
      todo += list(by_id[i].inputs)
  return out


def _record(step, decision) -> None:
  _, _, fp, reads, inputs = decision
  outputs.write_json(_paths(step)[1], {"stage": step.stage.name, "step": step.id, "fingerprint": fp,
                                       "reads": reads, "inputs": inputs})


def run_stage(config, workdir: str, name: str, log=print) -> str:
  """Runs one stage of the config's pipeline (its upstream steps must be finished); `experiments.teachers`,
  `experiments.imitate` and `experiments.evaluate` are this for their stage."""
  return run(config, workdir, log=log, only=(name,))
