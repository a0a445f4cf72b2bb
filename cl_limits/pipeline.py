"""The pipeline: every stage in order, each skipped when its outputs already exist and validate.

Stages: teachers (DQN learning histories) -> imitation (AD / BC / ... arms x seeds, trained together) ->
evaluation (frozen rollouts on held-out tasks) -> p1 (the snapshot imitator on the teachers' own tasks)
-> p2 (imitators of truncated histories rolled out far
past their data, against the data's ceiling) -> p3 (the same imitators in grid worlds they never saw,
against a DQN learning them from scratch) -> hybrid (test-time SGD on own experience, P2 protocol) -> report.md (verdict table first). A killed pipeline resumes
where it stopped; a finished one only prints where its report is.
"""
from __future__ import annotations

import json
import os

import numpy as np

from cl_limits import transplant
from cl_limits.analysis import hybrid_stage
from cl_limits.analysis import p1 as p1_lib
from cl_limits.analysis import p2 as p2_lib
from cl_limits.analysis import p3 as p3_lib
from cl_limits.analysis import report as report_lib
from cl_limits.histories import store
from cl_limits.imitation.runner import run_imitation
from cl_limits.rollouts import evaluation
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.teachers.runner import run_teachers, teachers_dir

STAGES = ("teachers", "imitation", "evaluation", "p1", "p2", "p3", "hybrid")
_MARKERS = {"teachers": "teachers/summary.json", "imitation": "imitators/summary.json",
            "evaluation": "eval/summary.json", "p1": "p1/summary.json", "p2": "p2/summary.json",
            "p3": "p3/summary.json", "hybrid": "hybrid/summary.json"}


def stages_done(config, workdir: str) -> dict:
  """Which stages have finished in workdir (p2 counts as done when the config names no P2 arms)."""
  root = os.path.abspath(workdir)
  done = {k: os.path.exists(os.path.join(root, v)) for k, v in _MARKERS.items()}
  done["teachers"] = os.path.exists(os.path.join(teachers_dir(config, workdir), "summary.json"))
  if not p2_lib.p2_arms(config):
    done["p2"] = True
  if not str(config.experiments.p1.arm or ""):
    done["p1"] = True
  if not p3_lib.enabled(config):
    done["p3"] = True
  if not hybrid_stage.enabled(config):
    done["hybrid"] = True
  return done


def run_pipeline(config, workdir: str, log=print) -> str:
  """Runs (or resumes, or skips) every stage; returns the path of report.md. A config with a `transplant`
  section is the MinAtar leave-one-game-out experiment (cl_limits/transplant.py)."""
  if transplant.enabled(config):
    return transplant.run_transplant(config, workdir, log=log)
  report = os.path.join(os.path.abspath(workdir), "report.md")
  if all(stages_done(config, workdir).values()) and os.path.exists(report):
    log(f"[pipeline] finished run; report: {report}")
    return report
  os.makedirs(workdir, exist_ok=True)
  teachers = run_teachers(config, workdir, log=log)
  run_imitation(config, workdir, log=log)
  evaluation.run_evaluation(config, workdir, log=log)
  p1_lib.run_p1(config, workdir, log=log)
  p2_lib.run_p2(config, workdir, log=log)
  p3_lib.run_p3(config, workdir, log=log)
  hybrid_stage.run_hybrid(config, workdir, log=log)
  report = write_report(config, workdir)
  log(f"[pipeline] report: {report}")
  return report


def write_report(config, workdir: str) -> str:
  """(Re)writes workdir/report.md from what the finished stages left (and a capacity sweep, if any)."""
  tdir = teachers_dir(config, workdir)
  teachers = {"dir": tdir, "histories": os.path.join(tdir, "histories"),
              "summary": os.path.join(tdir, "summary.json")}
  return report_lib.write_report(config, workdir,
                                 _report(config, teachers, workdir) + _imitation_report(config, workdir))


def _report(config, teachers, workdir) -> str:
  summary = json.load(open(teachers["summary"]))
  manifest = store.read_manifest(teachers["histories"])
  curves = np.load(os.path.join(teachers["dir"], "curves.npz"))
  lines = ["## Teachers", "",
           f"DQN teachers on {config.env.name} {dict(config.env.kwargs)}: {manifest['num_seeds']} seeds x "
           f"{len(manifest['task_ids'])} tasks, {manifest['env_steps_per_learner']} environment steps per "
           f"learner over {manifest['streams_per_learner']} streams.", ""]
  if "greedy_return" in summary:
    greedy = np.asarray(summary["greedy_return"])
    lines += ["| measure | value |", "|---|---|",
              f"| final greedy return, mean over seeds and tasks | {greedy.mean():.2f} |"]
    if "optimal_return" in summary:
      opt = np.asarray(summary["optimal_return"])
      frac = greedy / opt[None]
      lines += [f"| optimal return (oracle), mean over tasks | {opt.mean():.2f} |",
                f"| tasks where every seed reaches 90% of optimal | {(frac >= 0.9).all(0).sum()} of "
                f"{frac.shape[1]} |"]
    ret = curves["returns"]
    with np.errstate(all="ignore"):
      first, last = np.nanmean(ret[..., 0]), np.nanmean(ret[..., -1])
    lines += [f"| training return, first {curves['env_steps'][0]} steps | {first:.2f} |",
              f"| training return, last {curves['env_steps'][0]} steps | {last:.2f} |", ""]
  lines += ["Greedy return: one episode per (seed, task) with the final Q-network, argmax actions.",
            "Training return: episodes completed in each window, epsilon-greedy as trained.", "",
            f"![teacher learning curves]({os.path.relpath(teachers['dir'], os.path.abspath(workdir))}"
            "/teacher_curves.png)", "",
            f"Histories: `{os.path.relpath(teachers['histories'], os.path.dirname(teachers['dir']))}`; "
            "TensorBoard: `teachers/tb`.", ""]
  return "\n".join(lines)


def _imitation_report(config, workdir) -> str:
  ev = evaluation.load_summary(workdir)
  data = json.load(open(os.path.join(os.path.abspath(workdir), "imitators", "data.json")))
  p = ev["protocol"]
  lines = ["## Frozen imitators on held-out tasks (P1 protocol)", "",
           f"Protocol: {rollout_lib.actions_phrase(p['actions'])}, {p['episodes']} episodes ({ev['horizon_steps']} environment "
           f"steps) per rollout, context {p['context']}, {len(ev['task_ids'])} held-out tasks; "
           f"{config.imitation.num_seeds} model seeds per arm. Intervals: {p['ci']}.", "",
           f"| arm | data | episodes 1-{p['early_episodes']} | last {p['late_episodes']} episodes "
           "| last / teachers' final |", "|---|---|---|---|---|"]
  for arm, s in ev["arms"].items():
    d = data["arms"][arm]
    desc = (f"{d['data']}, portion {d['portion']} {d['fraction']:g}, gap {d['gap']}, labels {d['labels']}, "
            f"{d['steps']:,} steps")
    ratio = f"{s['late_over_teacher']:.2f}" if "late_over_teacher" in s else "n/a"
    lines.append(f"| {arm} | {desc} | {s['early'][0]:.2f} [{s['early'][1]:.2f}, {s['early'][2]:.2f}] | "
                 f"{s['late'][0]:.2f} [{s['late'][1]:.2f}, {s['late'][2]:.2f}] | {ratio} |")
  lines.append("")
  if ev.get("teacher_final_return") is not None:
    lines.append(f"Teachers' final return (training return in their last logging window, on their own "
                 f"tasks): {ev['teacher_final_return']:.2f}.")
  for c in ev["comparisons"]:
    lines.append(f"{c['a']} minus {c['b']}, {c['measure']}: {c['diff'][0]:.2f} "
                 f"[{c['diff'][1]:.2f}, {c['diff'][2]:.2f}].")
  lines += ["", "![imitator curves](eval/curves.png)", "",
            "TensorBoard: `imitators/tb` (loss, accuracy, tokens/s, held-out early/late return during "
            "training).", ""]
  return "\n".join(lines)
