r"""Does the KV-cache rollout's slid window cost a P2 imitator competence? On a finished run, each
replicate's imitator of `--arm` plays the competence gate's rollout (the first `--tasks` training tasks, one
kept history's steps from an empty context, the stage's action protocol and, by default, its tasks and
keys) twice from the same keys:

- `cached`: the ring-buffer KV cache every stage uses. Once the window has slid, a layer above the first
  attends to keys that were computed from their own windows, so its receptive field reaches
  layers x (context - 1) steps back;
- `naive`: a fresh forward pass over the last `context_len` transitions at every step: the function the
  imitator was trained on when `imitation.train.seq_len` equals the context (every study preset).

Printed per replicate as fractions of each task's optimum: the first and last 10 episodes of each mode,
the data's end on the same tasks, and cached - naive over the last 10 episodes as a t-interval over
replicates. With the stage's tasks and keys the cached rollouts are checked against the P2 stage's saved
competence rollouts (`p2/returns.npz`), so the cached leg is the gate's own. The naive mode costs about
context_len times the compute of the cached one.

  python -m experiments.rollout_modes --config=experiments/configs/one_stream.py:fast,x8,alone \
      --workdir=runs/one_stream_fast_x8_u8k --config.teachers_from=runs/one_stream_fast_x8 \
      --config.imitation.arms.ad_early.updates=8000 --config.imitation.train.num_updates=8000
"""
import os
import time

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory whose imitation stage has finished.")
_CACHE = cli.compile_cache_flag()
_ARM = flags.DEFINE_string("arm", "ad_early", "The imitation arm (a P2 source).")
_TASKS = flags.DEFINE_integer("tasks", 0, "How many of the teachers' training tasks (the first ones; 0: the "
                              "P2 stage's competence tasks, with its keys)")
_LAST = flags.DEFINE_integer("last", 10, "Episodes at the end of the rollout that are compared.")
flags.mark_flags_as_required(["config", "workdir"])


def main(_):
  cli.open_compile_cache(_CACHE)
  from cl_limits.analysis import replicates  # noqa: PLC0415
  from cl_limits.analysis.stats import replicate_interval  # noqa: PLC0415
  from cl_limits.rollouts import rollout  # noqa: PLC0415
  from cl_limits.stages import layout  # noqa: PLC0415

  from experiments import arm_rollouts  # noqa: PLC0415

  config, workdir, name = _CONFIG.value, _WORKDIR.value, _ARM.value
  protocol = arm_rollouts.protocol(config)
  r = arm_rollouts.load(config, workdir, name, int(_TASKS.value))
  if r.opt is None:
    raise app.UsageError(f"env.name={config.env.name}: needs episodes of one fixed length and an optimum")
  model, params, data, n, opt, horizon = r.model, r.params, r.data, r.n, r.opt, r.horizon
  episodes, last = horizon // r.ep_len, int(_LAST.value)
  saved_path = layout.path(workdir, "p2", "returns.npz")
  saved = None
  if n == r.stage_n and os.path.exists(saved_path):
    with np.load(saved_path) as z:
      saved = z[f"{name}/competence_return"] if f"{name}/competence_return" in z.files else None
  # The stage's rollouts per task, each with its own key (its saved rollouts say how many it played).
  m, tasks, keys = arm_rollouts.gate_inputs(config, r, saved.shape[1] // n if saved is not None else None)
  opt = np.tile(opt, m)
  print(f"{name} on {n} training tasks x {m} rollout(s), {horizon} steps ({episodes} episodes), fraction of each task's "
        f"optimum; context {int(model.context_len)}, {int(model.layers)} layers, training windows "
        f"{int(config.imitation.train.seq_len)}")
  print(f"  data's end, per replicate: {' '.join(f'{replicates.data_end(d, True):.3f}' for d in data)}")
  late = {}
  for mode in ("cached", "naive"):
    t0 = time.time()
    fn = rollout.make_batched_rollout(model, r.env, horizon, episodes + 1, mode=mode, **protocol)
    raw = np.asarray(fn(params, tasks, keys).episode_return)[..., :episodes]
    if mode == "cached" and saved is not None:
      same = saved.shape == raw.shape and np.allclose(saved, raw, atol=1e-5, equal_nan=True)
      print(f"  cached rollouts equal the P2 stage's saved competence rollouts: {'yes' if same else 'NO'}")
    rets = replicates.in_unit(raw, opt, task_axis=1)
    first, late[mode] = rets[..., :last].mean((1, 2)), rets[..., -last:].mean((1, 2))
    print(f"  {mode:6s} first {last} episodes {' '.join(f'{v:.3f}' for v in first)} | last {last} "
          f"{' '.join(f'{v:.3f}' for v in late[mode])} ({time.time() - t0:.0f}s)", flush=True)
  d = replicate_interval(late["cached"] - late["naive"])
  print(f"  cached - naive, last {last} episodes: {d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] "
        f"({d['method']})")


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  app.run(main)
