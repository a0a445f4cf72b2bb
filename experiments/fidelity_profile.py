r"""Where in a window an imitator departs from its behaviour policy: the held-out KL (nats, over distinct
actions) of every arm of a finished imitation run, by the step's position in its context window and, for
envs with a fixed episode length, by its step within the episode.

  python -m experiments.fidelity_profile --config=experiments/configs/bc_budget.py:darkroom \
      --workdir=runs/bc_darkroom --config.teachers_from=runs/darkroom

The same held-out windows, behaviour policy and kept weights as the imitation stage's fidelity check
(cl_limits/imitation/fidelity.py); prints one row per arm (the replicates' mean, then each replicate).
"""
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory whose imitation stage has finished.")
_CACHE = cli.compile_cache_flag()
_BINS = flags.DEFINE_integer("bins", 10, "Ranges of window positions.")
flags.mark_flags_as_required(["config", "workdir"])


def _means(kl, valid, keys, n):
  """[M, n]: mean KL of each model over the scored steps whose key (an int per step) is k."""
  out = np.full((kl.shape[0], n), np.nan)
  for k in range(n):
    m = valid & (keys == k)
    out[:, k] = np.where(m.sum((1, 2)) > 0, (kl * m).sum((1, 2)) / np.maximum(m.sum((1, 2)), 1), np.nan)
  return out


def main(argv):
  cli.open_compile_cache(_CACHE)
  del argv
  from cl_limits.stages import common  # noqa: PLC0415
  from cl_limits.stages import imitation as imitation_stage  # noqa: PLC0415
  from cl_limits.stages.base import ConfigError  # noqa: PLC0415
  logging.set_verbosity(logging.WARNING)       # orbax INFO lines are noise here
  config, workdir = _CONFIG.value, _WORKDIR.value
  try:
    env, _, heldout, stats, arms, num_seeds = imitation_stage.finished_fidelity(config, workdir)
  except ConfigError as e:
    raise SystemExit(f"error: {e}") from None
  seq_len = int(config.imitation.train.seq_len)
  kl, valid = np.asarray(stats.kl, np.float64), np.asarray(stats.valid)
  t = np.broadcast_to(np.arange(seq_len), kl.shape)
  bins = min(_BINS.value, seq_len)
  by_pos = _means(kl, valid, (t * bins) // seq_len, bins)
  edges = [f"{b * seq_len // bins}-{(b + 1) * seq_len // bins - 1}" for b in range(bins)]
  ep = common.episode_length(env)
  by_ep = None
  if ep:
    by_ep = _means(kl, valid, np.asarray(heldout.time)[np.asarray(stats.idx)] % ep, ep)
  for i, a in enumerate(arms):
    g = slice(i * num_seeds, (i + 1) * num_seeds)
    print(f"{a}: held-out KL {np.nanmean(by_pos[g]):.3f} nats; by position in the {seq_len}-step window:")
    print("  " + "  ".join(f"{e}: {v:.3f}" for e, v in zip(edges, np.nanmean(by_pos[g], 0))))
    if by_ep is not None:
      print(f"  by step within the {ep}-step episode:")
      print("  " + "  ".join(f"{k}: {v:.3f}" for k, v in enumerate(np.nanmean(by_ep[g], 0))))
    for r in range(num_seeds):
      print(f"  replicate {r}: " + " ".join(f"{v:.3f}" for v in by_pos[g][r]))


if __name__ == "__main__":
  app.run(main)
