"""The report stage: `<workdir>/report.md` (written by cl_limits/report/), re-written whenever an input
stage re-ran."""
from __future__ import annotations

from cl_limits.report import document
from cl_limits.stages.base import Stage


def run(step, log=print) -> None:
  log(f"[pipeline] report: {document.write(step.config, step.workdir)}")


STAGE = Stage(name="report", subdir=".", reads=("seed", "env", "evaluation", "imitation.model.context_len",
                                                "imitation.num_seeds", "experiments.p1.threshold",
                                                "experiments.p1.max_kl", "experiments.p2.protocol"),
              locations=("teachers_from",),
              validate=lambda config: None, run=run, marker="report.md", record="report.stage.json")
