r"""Finished runs of one study with different base seeds, side by side per verdict row.

  python -m experiments.compare_seeds runs/darkroom_s0 runs/darkroom_s1
  python -m experiments.compare_seeds runs/darkroom_s0 runs/darkroom_s1 --out=runs/darkroom_seeds.md
  python -m experiments.compare_seeds runs/breakout_s0 runs/breakout_s1 --compact     (the README's tables)

A row whose verdicts differ between the runs reads "unsettled" (cl_limits/report/seeds.py). Prints the
markdown table and how many rows are settled; --out also writes it to a file.
"""
from absl import app, flags, logging

_OUT = flags.DEFINE_string("out", "", "also write the table (markdown) to this file")
_COMPACT = flags.DEFINE_bool("compact", False, "one cell per run and short row heads (the README's tables)")


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  from cl_limits.report import seeds  # noqa: PLC0415
  from experiments.cli import emit, fail  # noqa: PLC0415
  dirs = argv[1:]
  if len(dirs) < 2:
    fail("name at least two run directories")
  try:
    lines, n = seeds.table(dirs, compact=_COMPACT.value)
  except ValueError as e:
    fail(e)
  emit("\n".join(lines) + f"\n\n{n['settled']} of {n['rows']} rows give the same verdict in every run.\n",
       _OUT.value)


if __name__ == "__main__":
  app.run(main)
