"""The pipeline: every stage in order, each skipped when its outputs already exist and validate.

Stages so far: teachers (DQN learning histories). `run_pipeline` ends by writing `report.md` in the run
directory, which states what was run and measured.
"""
from __future__ import annotations

import json
import os

import numpy as np

from cl_limits.histories import store
from cl_limits.teachers.runner import run_teachers

STAGES = ("teachers",)


def run_pipeline(config, workdir: str, log=print) -> str:
  """Runs (or resumes, or skips) every stage; returns the path of report.md."""
  os.makedirs(workdir, exist_ok=True)
  teachers = run_teachers(config, workdir, log=log)
  report = os.path.join(os.path.abspath(workdir), "report.md")
  store.atomic_write_bytes(report, _report(config, teachers).encode())
  log(f"[pipeline] report: {report}")
  return report


def _report(config, teachers) -> str:
  summary = json.load(open(teachers["summary"]))
  manifest = store.read_manifest(teachers["histories"])
  curves = np.load(os.path.join(teachers["dir"], "curves.npz"))
  lines = [f"# cl_limits report: {config.env.name}", "",
           "## Teachers", "",
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
            "![teacher learning curves](teachers/teacher_curves.png)", "",
            f"Histories: `{os.path.relpath(teachers['histories'], os.path.dirname(teachers['dir']))}`; "
            "TensorBoard: `teachers/tb`.", ""]
  return "\n".join(lines)
