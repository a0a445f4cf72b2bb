r"""Runs a sweep as a SLURM job array through submitit, then aggregates it.

  python -m launch.slurm --sweep=experiments/configs/capacity.py:gpu --root=/scratch/runs/darkroom \
      --partition=gpu --gpus_per_job=1 --timeout_min=240

Every array task runs the same absl command as launch/local.py (launch/sweep.py) and resumes from its run
directory; a preempted or timed-out task is requeued (submitit checkpointing) and continues where its
checkpoints stop. Finished jobs are not submitted. `--cluster=local` runs the array as local processes and
`--cluster=debug` in this process (both used by the tests).
"""
from __future__ import annotations

import os
import sys

import submitit
from absl import app, flags

from launch import aggregate, cli, sweep

_CLUSTER = flags.DEFINE_enum("cluster", None, ["slurm", "local", "debug"], "submitit cluster (default: auto).")
_PARTITION = flags.DEFINE_string("partition", None, "SLURM partition.")
_GPUS = flags.DEFINE_integer("gpus_per_job", 1, "GPUs per array task.")
_CPUS = flags.DEFINE_integer("cpus_per_job", 8, "CPUs per array task.")
_TIMEOUT = flags.DEFINE_integer("timeout_min", 240, "Time limit per task (minutes); requeued past it.")
_PARALLEL = flags.DEFINE_integer("array_parallelism", 16, "Array tasks running at once.")


class JobTask(submitit.helpers.Checkpointable):
  """One sweep job; on preemption / timeout submitit requeues it and the command resumes."""

  def __call__(self, job: sweep.Job) -> str:
    return sweep.run_job(job)


def run_slurm(spec: str, root: str, cluster: str | None = None, log=print, **params) -> int:
  sweep.check_root(spec, root)
  jobs = [j for j in sweep.jobs(spec, root)]
  todo = [j for j in jobs if not j.done()]
  results = {j.name: "skipped" for j in jobs if j.done()}
  if todo:
    folder = os.path.join(os.path.dirname(todo[0].workdir), "submitit", "%j")
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(timeout_min=int(params.get("timeout_min", 240)),
                               slurm_array_parallelism=int(params.get("array_parallelism", 16)))
    if executor.cluster == "slurm":
      executor.update_parameters(slurm_partition=params.get("partition"),
                                 gpus_per_node=int(params.get("gpus_per_job", 1)),
                                 cpus_per_task=int(params.get("cpus_per_job", 8)),
                                 slurm_additional_parameters={"requeue": True})
    submitted = executor.map_array(JobTask(), todo)
    log(f"[sweep] submitted {len(todo)} jobs ({executor.cluster}): "
        + ", ".join(f"{j.name}={s.job_id}" for j, s in zip(todo, submitted)))
    for job, s in zip(todo, submitted):
      try:
        results[job.name] = s.result()
      except Exception as e:  # noqa: BLE001  (a failed task must not stop the others)
        results[job.name] = e
  failed = sweep.report_failures({j.name: results[j.name] for j in jobs}, log)
  aggregate.aggregate(spec, root, log=log)
  return failed


def main(argv):
  del argv
  failed = cli.refusing_bad_input(lambda: run_slurm(
      cli.SWEEP.value, cli.ROOT.value, _CLUSTER.value, partition=_PARTITION.value, gpus_per_job=_GPUS.value,
      cpus_per_job=_CPUS.value, timeout_min=_TIMEOUT.value, array_parallelism=_PARALLEL.value))
  sys.exit(1 if failed else 0)


if __name__ == "__main__":
  app.run(main)
