r"""Train DQN teachers and record their learning histories.

  python -m experiments.teachers --config=experiments/configs/darkroom.py --workdir=runs/darkroom

Re-running the same command resumes a killed run from its last segment and skips a finished one.
"""
from absl import app, flags
from ml_collections import config_flags

from cl_limits.teachers.runner import run_teachers

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; resumed if it holds a run).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  run_teachers(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
