r"""Runs a sweep on this machine with a pool of processes, then aggregates it.

  python -m launch.local --sweep=experiments/configs/capacity.py --root=runs/darkroom [--processes=1]
  python -m launch.local --sweep=... --root=... --processes=4 --devices=0,1,2,3      (one GPU per job)
  python -m launch.local --sweep=... --root=... --processes=4 --devices=0+1,2+3      (two jobs per pair)
  python -m launch.local --sweep=... --root=... --processes=3 --mem_fraction=0.3     (three jobs, one GPU)

Each job is `python -m experiments.pipeline ...` (see launch/sweep.py) in its own process, at most
`--processes` at a time (on a 2-core CPU keep 1). Finished jobs are skipped, a failing job does not stop
the others, and the failures are listed at the end (exit status 1).

Device slots: a JAX process takes 75% of every visible GPU's memory and shards over every visible device,
so jobs on one box would fight. Each of the `--processes` workers is a slot with its own environment:
`--devices` (comma-separated groups, `+` inside a group) gives slot i the group i mod (number of groups)
as `CUDA_VISIBLE_DEVICES`; slots that share a group (or, without `--devices`, all slots when there are
several) get `XLA_PYTHON_CLIENT_MEM_FRACTION` = 0.9 / (slots sharing it) rounded down to 0.01, or
`--mem_fraction` (then for every slot). A job runs in a free slot; its slot's variables head its log.txt entry.
"""
from __future__ import annotations

import collections
import concurrent.futures
import math
import queue
import sys
import time

from absl import app, flags

from cl_limits.stages.base import ConfigError
from launch import aggregate, cli, sweep

_PROCESSES = flags.DEFINE_integer("processes", 1, "Jobs run at the same time.")
_DEVICES = flags.DEFINE_string("devices", "", "GPU groups for the job slots, e.g. '0,1' or '0+1,2+3' "
                               "(CUDA_VISIBLE_DEVICES per slot); '' = every job sees every device.")
_MEM_FRACTION = flags.DEFINE_float("mem_fraction", 0.0, "XLA_PYTHON_CLIENT_MEM_FRACTION for slots that share "
                                   "a device; 0 = 0.9 / (slots sharing it).")


def slots(processes: int, devices: str = "", mem_fraction: float = 0.0) -> list[dict]:
  """The environment of each of `processes` job slots: its `CUDA_VISIBLE_DEVICES` (group i mod groups of
  `devices`) and, where slots share devices, `XLA_PYTHON_CLIENT_MEM_FRACTION` (`mem_fraction`, when given, for every slot)."""
  if processes < 1:
    raise ConfigError(f"--processes must be >= 1 (got {processes})")
  groups = [g.strip() for g in devices.split(",") if g.strip()] if devices else []
  for g in groups:
    if not all(d.strip().isdigit() for d in g.split("+")):
      raise ConfigError(f"--devices: {g!r} is not a device index or a '+'-joined group of them ({devices!r})")
  if not 0.0 <= mem_fraction <= 1.0:
    raise ConfigError(f"--mem_fraction must be in [0, 1] (got {mem_fraction})")
  assign = [groups[i % len(groups)] if groups else None for i in range(processes)]
  sharing = collections.Counter(assign)
  out = []
  for g in assign:
    env = {} if g is None else {"CUDA_VISIBLE_DEVICES": g.replace("+", ",")}
    if sharing[g] > 1 or mem_fraction:
      env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{mem_fraction or math.floor(90 / sharing[g]) / 100:g}"
    out.append(env)
  return out


def run_in_slots(jobs, slot_envs: list[dict], runner, on_done) -> None:
  """Runs `runner(job, env)` for every job, at most one per slot at a time, each in a free slot's env;
  `on_done(job, result or exception)` as each finishes."""
  free = queue.Queue()
  for env in slot_envs:
    free.put(env)

  def one(job):
    env = free.get()
    try:
      return runner(job, env)
    finally:
      free.put(env)
  with concurrent.futures.ThreadPoolExecutor(len(slot_envs)) as pool:
    futures = {pool.submit(one, j): j for j in jobs}
    for f in concurrent.futures.as_completed(futures):
      try:
        result = f.result()
      except Exception as e:  # noqa: BLE001  (one failed job must not stop the others)
        result = e
      on_done(futures[f], result)


def run_local(spec: str, root: str, processes: int = 1, log=print, devices: str = "",
              mem_fraction: float = 0.0) -> int:
  """Runs every job of the sweep; aggregates what finished. Returns the number of failed jobs."""
  envs = slots(processes, devices, mem_fraction)
  sweep.check_root(spec, root)
  jobs = sweep.jobs(spec, root)
  log(f"[sweep] {len(jobs)} jobs, {processes} at a time; logs in <job>/log.txt under {jobs[0].workdir}/..")
  if any(envs):
    log("[sweep] slots: " + "; ".join(" ".join(f"{k}={v}" for k, v in e.items()) or "all devices" for e in envs))
  results, t0 = {}, time.time()

  def done(job, result):
    results[job.name] = result
    status = "failed" if isinstance(result, BaseException) else result
    log(f"[sweep] {len(results)}/{len(jobs)} {job.name}: {status} ({time.time() - t0:.0f}s)")
  run_in_slots(jobs, envs, lambda job, env: sweep.run_job(job, env), done)
  failed = sweep.report_failures({j.name: results[j.name] for j in jobs}, log)
  aggregate.aggregate(spec, root, log=log)
  return failed


def main(argv):
  del argv
  failed = cli.refusing_bad_input(lambda: run_local(cli.SWEEP.value, cli.ROOT.value, _PROCESSES.value,
                                                    devices=_DEVICES.value, mem_fraction=_MEM_FRACTION.value))
  sys.exit(1 if failed else 0)


if __name__ == "__main__":
  app.run(main)
