r"""Runs a sweep on this machine with a pool of processes, then aggregates it.

  python -m launch.local --sweep=experiments/configs/capacity.py --root=runs/darkroom [--processes=1]

Each job is `python -m experiments.pipeline ...` (see launch/sweep.py) in its own process, at most
`--processes` at a time (one GPU box: several jobs share it; on a 2-core CPU keep 1). Finished jobs are
skipped, a failing job does not stop the others, and the failures are listed at the end (exit status 1).
"""
from __future__ import annotations

import concurrent.futures
import sys
import time

from absl import app, flags

from launch import aggregate, cli, sweep

_PROCESSES = flags.DEFINE_integer("processes", 1, "Jobs run at the same time.")


def run_local(spec: str, root: str, processes: int = 1, log=print) -> int:
  """Runs every job of the sweep; aggregates what finished. Returns the number of failed jobs."""
  if processes < 1:
    raise ValueError(f"--processes must be >= 1 (got {processes})")
  sweep.check_root(spec, root)
  jobs = sweep.jobs(spec, root)
  log(f"[sweep] {len(jobs)} jobs, {processes} at a time; logs in <job>/log.txt under {jobs[0].workdir}/..")
  results, t0 = {}, time.time()
  with concurrent.futures.ThreadPoolExecutor(processes) as pool:
    futures = {pool.submit(sweep.run_job, j): j for j in jobs}
    for i, f in enumerate(concurrent.futures.as_completed(futures)):
      job = futures[f]
      try:
        results[job.name] = f.result()
      except Exception as e:  # noqa: BLE001  (one failed job must not stop the others)
        results[job.name] = e
      status = "failed" if isinstance(results[job.name], BaseException) else results[job.name]
      log(f"[sweep] {i + 1}/{len(jobs)} {job.name}: {status} ({time.time() - t0:.0f}s)")
  failed = sweep.report_failures({j.name: results[j.name] for j in jobs}, log)
  aggregate.aggregate(spec, root, log=log)
  return failed


def main(argv):
  del argv
  failed = cli.refusing_bad_input(lambda: run_local(cli.SWEEP.value, cli.ROOT.value, _PROCESSES.value))
  sys.exit(1 if failed else 0)


if __name__ == "__main__":
  app.run(main)
