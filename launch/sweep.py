"""One sweep definition, run the same way on this machine (launch/local.py) or on SLURM (launch/slurm.py).

A sweep file is a config file (`experiments/configs/capacity.py`) that also defines `sweep(preset)` ->
[(name, config preset)]: the axes that change array shapes (context length, model size) as separate runs;
seeds stay vmapped inside each run. Every job is the same absl command,

  python -m experiments.pipeline --config=<file>:<preset> --workdir=<root>/<sweep>/<name>
      --config.teachers_from=<root>

which resumes from its run directory when it is re-run or requeued; a finished job is skipped.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import time


@dataclasses.dataclass(frozen=True)
class Job:
  name: str
  config: str          # "<file>:<preset>"
  workdir: str
  root: str

  def argv(self) -> list[str]:
    return [sys.executable, "-m", "experiments.pipeline", f"--config={self.config}",
            f"--workdir={self.workdir}", f"--config.teachers_from={self.root}"]

  @property
  def log_path(self) -> str:
    return os.path.join(self.workdir, "log.txt")

  def done(self) -> bool:
    from cl_limits.stages import layout  # noqa: PLC0415
    return os.path.exists(os.path.join(self.workdir, "report.md")) and layout.summary(self.workdir, "eval") \
        is not None


def load_module(path: str):
  if not os.path.exists(path):
    raise FileNotFoundError(f"sweep file {path!r} does not exist")
  spec = importlib.util.spec_from_file_location(f"_sweep_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "sweep") or not hasattr(module, "base_config"):
    raise ValueError(f"{path} defines no sweep(preset) / base_config(preset): it is not a sweep file")
  return module


def split(spec: str) -> tuple[str, str]:
  path, _, preset = spec.partition(":")
  return path, preset


def sweep_name(path: str, module) -> str:
  """The directory under the root that a sweep writes to: the file's NAME, else its file name."""
  return getattr(module, "NAME", None) or os.path.splitext(os.path.basename(path))[0]


def jobs(spec: str, root: str) -> list[Job]:
  """The sweep's jobs for a root run directory (which must hold the finished main job's teachers)."""
  path, preset = split(spec)
  module = load_module(path)
  root = os.path.abspath(root)
  name = sweep_name(path, module)
  out = [Job(n, f"{path}:{p}", os.path.join(root, name, n), root) for n, p in module.sweep(preset)]
  if len({j.name for j in out}) != len(out):
    raise ValueError(f"{path}: sweep({preset!r}) names two jobs the same")
  return out


def check_root(spec: str, root: str) -> None:
  """The root holds a finished teacher stage, and every job's config passes its checks (ConfigError names
  the field) before the first job starts."""
  from cl_limits.stages import layout, pipeline  # noqa: PLC0415
  path, preset = split(spec)
  module = load_module(path)
  from cl_limits.stages.base import ConfigError  # noqa: PLC0415
  for job in jobs(spec, root):
    try:
      config = module.get_config(job.config.partition(":")[2])
    except ValueError as e:
      raise ConfigError(f"sweep job {job.name} ({job.config}): {e}") from None
    with config.unlocked():
      config.teachers_from = job.root
    pipeline.validate(pipeline.plan(config, job.workdir))
  if layout.summary(root, "teachers") is None:
    base = f"{path}:{preset}" if preset else path
    raise FileNotFoundError(
        f"{root} holds no finished teacher stage: run the main job there first "
        f"(python -m experiments.pipeline --config=<the base config of {base}> --workdir={root})")


def run_job(job: Job, env: dict | None = None) -> str:
  """Runs one job's command (skipping a finished one), its output appended to <workdir>/log.txt; `env`:
  variables set for it on top of this process's (its device slot, launch/local.py).

  Returns "skipped" or "done"; raises RuntimeError with the log's tail if the command fails.
  """
  if job.done():
    return "skipped"
  os.makedirs(job.workdir, exist_ok=True)
  with open(job.log_path, "a") as log:
    slot = "".join(f"{k}={v} " for k, v in sorted((env or {}).items()))
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {slot}{' '.join(job.argv())}\n")
    log.flush()
    rc = subprocess.call(job.argv(), stdout=log, stderr=subprocess.STDOUT, cwd=_repo_root(),
                         env={**os.environ, **(env or {})} if env else None)
  if rc != 0:
    with open(job.log_path) as f:
      tail = "".join(f.readlines()[-15:])
    raise RuntimeError(f"job {job.name} exited with {rc}; last lines of {job.log_path}:\n{tail}")
  return "done"


def _repo_root() -> str:
  return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def report_failures(results: dict, log=print) -> int:
  """Prints one line per job and the failed ones at the end; returns the number that failed."""
  failed = {k: v for k, v in results.items() if isinstance(v, BaseException)}
  for name, r in results.items():
    if not isinstance(r, BaseException):
      log(f"[sweep] {name}: {r}")
  if failed:
    log(f"[sweep] {len(failed)} of {len(results)} jobs failed:")
    for name, e in failed.items():
      log(f"[sweep]   {name}: {str(e).splitlines()[0]}")
  return len(failed)
