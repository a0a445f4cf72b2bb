"""What every absl main shares: `--config` (ml_collections file, locked) and `--workdir`, then one call."""
from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; resumed if it holds a run).")
flags.mark_flags_as_required(["config", "workdir"])


def run(fn) -> None:
  """Parses the flags and calls fn(config, workdir)."""
  def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)   # progress is printed; library INFO logs (orbax) are noise
    fn(_CONFIG.value, _WORKDIR.value)
  app.run(main)
