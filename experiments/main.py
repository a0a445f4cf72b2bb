"""What every absl main shares: `--config` (ml_collections file, locked) and `--workdir`, then one call.

A config or input the user can fix (cl_limits.stages.base.ConfigError, a bad history store) exits with
status 2 and one line, `error: <field>: <what is wrong> (got <value>)`, before anything trains."""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; resumed if it holds a run).")
_CACHE = cli.compile_cache_flag()
flags.mark_flags_as_required(["config", "workdir"])


def run(only: tuple[str, ...] = ()) -> None:
  """Parses the flags and runs the pipeline (only the stages named in `only`, when given)."""
  def main(argv):
    del argv
    from cl_limits.histories.store import HistoryStoreError  # noqa: PLC0415
    from cl_limits.stages import pipeline  # noqa: PLC0415
    from cl_limits.stages.base import ConfigError  # noqa: PLC0415
    if not flags.FLAGS["verbosity"].present:   # progress is printed; library INFO logs (orbax) are noise
      logging.set_verbosity(logging.WARNING)
    cli.open_compile_cache(_CACHE)
    try:
      out = pipeline.run(_CONFIG.value, _WORKDIR.value, only=only, log=lambda line: print(line, flush=True))
    except (ConfigError, HistoryStoreError) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    if not only and out.endswith("report.md") and os.path.exists(out):     # the answer, last on the screen
      from cl_limits.report import document  # noqa: PLC0415
      lines = document.verdict_lines(out)
      if lines:
        print("\nverdicts (" + out + " has what each row measured and its rule):", flush=True)
        for line in lines:
          print("  " + line, flush=True)
  app.run(main)
