r"""Two finished runs on the same teachers, paired replicate by replicate: did the change help?

  python -m experiments.compare_runs runs/one_stream_fast_x8 runs/one_stream_fast_x8_u8k
  python -m experiments.compare_runs runs/a runs/b --arms=ad_early --out=runs/a_vs_b.md

For budget and model comparisons (updates, width, context) made with `--config.teachers_from`: both runs'
imitators learned from the same histories with the same base seed, so replicate r of A and replicate r of
B are paired. Prints what differs between the two configs, then per arm the held-out KL, the competence
gate's figures, learning in the data and the P2 late return of each run with its interval, and B - A with
a paired t-interval over replicates and each replicate's difference (cl_limits/report/pairs.py). Runs
that are not paired (different teachers, seed, replicates or competence tasks) get a one-line error.
"""
from absl import app, flags, logging

_ARMS = flags.DEFINE_list("arms", [], "arms to compare (default: every P2 arm both runs have)")
_OUT = flags.DEFINE_string("out", "", "also write the comparison (markdown) to this file")


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  from cl_limits.report import pairs  # noqa: PLC0415
  from cl_limits.stages.base import ConfigError  # noqa: PLC0415
  from experiments.cli import emit, fail  # noqa: PLC0415
  dirs = argv[1:]
  if len(dirs) != 2:
    fail("name exactly two run directories (A, then B)")
  try:
    lines = pairs.table(dirs[0], dirs[1], _ARMS.value or None)
  except (ValueError, ConfigError) as e:
    fail(e)
  emit("\n".join(lines) + "\n", _OUT.value)


if __name__ == "__main__":
  app.run(main)
