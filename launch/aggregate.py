r"""Combines a finished sweep into one table, one figure and TensorBoard hparams, and adds its verdict rows
to the root run's report.

  python -m launch.aggregate --sweep=experiments/configs/capacity.py --root=runs/darkroom

Writes <root>/<sweep>/summary.json (per run: early / late / improvement with rliable CIs, episodes to half
the improvement; comparisons along each axis), <root>/<sweep>/capacity.png (late return vs context
length, one line per model size) and <root>/tb/<sweep>/<run> (hparams: the sweep axes, metrics: the
returns; the run's config as text). Runs that have not finished are listed, not silently dropped.
"""
from __future__ import annotations

from absl import app

from launch import cli, sweep


def aggregate(spec: str, root: str, log=print) -> str | None:
  """The sweep file's aggregation (`AGGREGATE = "gap"`: the gap x streams sweep; else the capacity one)."""
  from launch import capacity, gapsweep  # noqa: PLC0415
  path, preset = sweep.split(spec)
  module = sweep.load_module(path)
  fn = {"gap": gapsweep.aggregate}.get(getattr(module, "AGGREGATE", "capacity"), capacity.aggregate)
  return fn(module, preset, sweep.jobs(spec, root), sweep.sweep_name(path, module), spec, root, log=log)


def main(argv):
  del argv
  aggregate(cli.SWEEP.value, cli.ROOT.value)


if __name__ == "__main__":
  app.run(main)
