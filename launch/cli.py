"""The flags every launch/ main shares."""
from absl import flags

SWEEP = flags.DEFINE_string("sweep", None, "Sweep file[:base preset], e.g. experiments/configs/capacity.py.")
ROOT = flags.DEFINE_string("root", None, "Main-job run directory: its teachers are reused; results go under it.")
flags.mark_flags_as_required(["sweep", "root"])


def refusing_bad_input(fn):
  """Runs fn(); a config or input the user can fix (ConfigError, a missing root) exits with status 2 and one
  line `error: ...` instead of a traceback."""
  import sys  # noqa: PLC0415

  from cl_limits.stages.base import ConfigError  # noqa: PLC0415
  try:
    return fn()
  except (ConfigError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
