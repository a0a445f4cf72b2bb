r"""The main job: every stage of the study for one config, resumable, ending in report.md.

  python -m experiments.pipeline --config=experiments/configs/darkroom.py --workdir=runs/darkroom
  python -m experiments.pipeline --config=experiments/configs/darkroom.py:smoke --workdir=runs/smoke
"""
from absl import app, flags
from ml_collections import config_flags

from cl_limits.pipeline import run_pipeline

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; resumed if it holds a run).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  run_pipeline(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
