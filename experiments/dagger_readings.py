r"""The registered readings (a)-(d) of finished DAgger runs (`experiments/dagger.py --out=DIR`).

  python -m experiments.dagger_readings runs/dagger_ge_r10_s1
  python -m experiments.dagger_readings runs/dagger_ge_r10 runs/dagger_ge_r10_s1 --out=runs/dagger_seeds.md

One column per run, read from its rounds.json, p2.json and p2_x10.json by the rules fixed in BUILD_NOTES
(cl_limits/report/dagger_readings.py); with two or more runs a reading that differs between them reads
"unsettled". Also prints each run's rounds (competence of both models and their paired difference).
"""
from absl import app, flags, logging

_OUT = flags.DEFINE_string("out", "", "also write the table (markdown) to this file")


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  from cl_limits.report import dagger_readings  # noqa: PLC0415
  from experiments.cli import emit, fail  # noqa: PLC0415
  dirs = argv[1:]
  if not dirs:
    fail("name at least one DAgger --out directory")
  try:
    lines, n = dagger_readings.table(dirs)
    rounds = [dagger_readings.round_lines(d) for d in dirs]
  except ValueError as e:
    fail(e)
  text = "\n".join(lines) + "\n"
  if len(dirs) > 1:
    text += f"\n{n['settled']} of {n['readings']} readings are the same in every run.\n"
  for d, rl in zip(dirs, rounds):
    text += f"\n{d}:\n" + "\n".join(rl) + "\n"
  emit(text, _OUT.value)


if __name__ == "__main__":
  app.run(main)
