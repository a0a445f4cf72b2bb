r"""Draw a finished run's P2 figures again (p2/curves.png, p2/gap.png) from its stored returns, without
a rollout: for figure changes after a run, and for runs whose returns.npz predates the figures' axis
arrays (`p2_figures.axis_arrays`, read then from the run's histories and written back).

  python -m experiments.redraw_p2 runs/breakout14_s0 runs/breakout14_s1

The run's own config.json is read (`layout.read_config`: fields added to the configs since are filled in
at the defaults it ran with).
"""
import os

import numpy as np
from absl import app, flags, logging


def redraw(config, workdir: str, log=print) -> list[str]:
  """The P2 figures of a finished run again; returns their paths."""
  from cl_limits.analysis import replicates  # noqa: PLC0415
  from cl_limits.histories import datasets  # noqa: PLC0415
  from cl_limits.stages import artifacts, common, layout, outputs, p2, p2_figures  # noqa: PLC0415
  summary = layout.summary(workdir, "p2")
  if not summary:
    raise ValueError(f"{workdir}: no finished P2 stage (p2/summary.json)")
  npz = layout.path(workdir, "p2", "returns.npz")
  with np.load(npz) as f:
    arrays = dict(f)
  env = common.env_of(config)
  sources = {"teacher": artifacts.load_teacher_histories(config, workdir)}
  if p2.control(config):
    sources["ad_eps"] = layout.load_histories(layout.path(workdir, "histories", "ad_eps"))
  for arm_name, kind in p2.rows(config):
    name = common.p2_row_name(arm_name, kind)
    e = summary["arms"].get(name)
    if e is None or "skipped" in e or f"{name}/axis_x0" in arrays:
      continue
    arm = datasets.resolve_arm(config.imitation.arms[arm_name])
    history, manifest = sources[arm["data"]]
    # The axis reads where the kept data begin and end, not returns: no task optimum needed.
    data = replicates.data_per_replicate(history, manifest, arm, int(config.experiments.p2.ceiling_window), None)
    arrays.update(p2_figures.axis_arrays(name, kind, arm, data))
    log(f"[redraw_p2] {name}: its axis read from the histories")
  outputs.write_npz(npz, **arrays)
  _, train_ids = common.teacher_tasks(config, env)
  _, task_ids = common.heldout_tasks(config, env, int(config.experiments.p2.num_tasks))
  paths = [layout.path(workdir, "p2", "curves.png"), layout.path(workdir, "p2", "gap.png")]
  for path in paths:                  # a figure with no row to draw is not written
    if os.path.exists(path):
      os.remove(path)
  p2_figures.plot(summary, arrays, paths[0], p2_figures.title(config, task_ids, train_ids))
  p2_figures.plot_gap(summary, arrays, int(sources["teacher"][1]["streams_per_learner"]), paths[1])
  return [p for p in paths if os.path.exists(p)]


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  import ml_collections  # noqa: PLC0415
  from cl_limits.stages import layout  # noqa: PLC0415
  from experiments.cli import fail  # noqa: PLC0415
  if len(argv) < 2:
    fail("name at least one run directory")
  for workdir in argv[1:]:
    raw = layout.read_config(workdir)
    if raw is None:
      fail(f"{workdir}: no config.json (not a run directory)")
    try:
      paths = redraw(ml_collections.ConfigDict(raw), workdir)
    except ValueError as e:
      fail(e)
    print("\n".join(paths))


if __name__ == "__main__":
  app.run(main)
