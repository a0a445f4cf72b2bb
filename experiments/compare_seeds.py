r"""Finished runs of one study with different base seeds, side by side per verdict row.

  python -m experiments.compare_seeds runs/darkroom_s0 runs/darkroom_s1
  python -m experiments.compare_seeds runs/darkroom_s0 runs/darkroom_s1 --out=runs/darkroom_seeds.md
  python -m experiments.compare_seeds runs/breakout_s0 runs/breakout_s1 --compact     (the README's tables)
  python -m experiments.compare_seeds runs/breakout_s0 runs/breakout_s1 --power       (and the P2 gates' power)

A row whose verdicts differ between the runs reads "unsettled" (cl_limits/report/seeds.py). Prints the
markdown table and how many rows are settled; --out also writes it to a file. --power adds, per P2 row and
gate, the chance that the gate passes at the runs' replicate count and the replicates it needs to pass with
probability 0.8 (cl_limits/report/power.py), so an unsettled row can be told from a gate without power.
"""
from absl import app, flags, logging

_OUT = flags.DEFINE_string("out", "", "also write the table (markdown) to this file")
_COMPACT = flags.DEFINE_bool("compact", False, "one cell per run and short row heads (the README's tables)")
_POWER = flags.DEFINE_bool("power", False, "also the P2 gates' power on the runs' pooled replicates")


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  from cl_limits.report import power, seeds  # noqa: PLC0415
  from experiments.cli import emit, fail  # noqa: PLC0415
  dirs = argv[1:]
  if len(dirs) < 2:
    fail("name at least two run directories")
  try:
    lines, n = seeds.table(dirs, compact=_COMPACT.value)
    gates = power.table(dirs) if _POWER.value else []
  except ValueError as e:
    fail(e)
  text = "\n".join(lines) + f"\n\n{n['settled']} of {n['rows']} rows give the same verdict in every run.\n"
  if gates:
    text += ("\nThe P2 gates' power (a normal model of each gate's per-replicate values, pooled within runs; "
             "cl_limits/analysis/power.py):\n\n" + "\n".join(gates) + "\n")
  emit(text, _OUT.value)


if __name__ == "__main__":
  app.run(main)
