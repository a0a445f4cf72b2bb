"""The flags every launch/ main shares."""
from absl import flags

SWEEP = flags.DEFINE_string("sweep", None, "Sweep file[:base preset], e.g. experiments/configs/capacity.py.")
ROOT = flags.DEFINE_string("root", None, "Main-job run directory: its teachers are reused; results go under it.")
flags.mark_flags_as_required(["sweep", "root"])
