r"""Frozen-rollout speed: the compiled KV-cache rollout against a naive one that recomputes the window.

  python benchmarks/rollout_throughput.py                      # contexts 64, 256, 1024; H=2000 and 10H
  python benchmarks/rollout_throughput.py --contexts=256 --horizon=1000 --batch=4

One line per (context, horizon):
  context=256 horizon=20000 cached_steps_per_s=... naive_steps_per_s=... seconds=...
`seconds` is the cached rollout's wall time at that horizon (compilation excluded, best of --repeats);
steps/s count environment steps over all `--batch` parallel rollouts (vmapped over DarkRoom tasks). The
model is the DarkRoom config's (4 layers, width 64, 4 heads) with random weights: speed does not depend
on what the weights are. The naive rollout costs a full forward pass over `context` transitions every
step whatever the horizon, so its rate is measured once per context over `--naive_steps` steps (one
timed run after compiling) and printed on both horizons' lines; the cached rollout is timed at H and 10H.
"""
from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from cl_limits import envs
from cl_limits.imitation import learner as learner_lib
from cl_limits.models.transformer import Tokens
from cl_limits.rollouts import rollout as rollout_lib
from experiments.configs import darkroom

_CONTEXTS = flags.DEFINE_list("contexts", ["64", "256", "1024"], "Context lengths (transitions).")
_HORIZON = flags.DEFINE_integer("horizon", 2000, "H: the short horizon; 10H is measured too.")
_BATCH = flags.DEFINE_integer("batch", 8, "Parallel rollouts (tasks), vmapped.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed runs per measurement (best is reported).")
_NAIVE_STEPS = flags.DEFINE_integer("naive_steps", 400, "Steps over which the naive rollout is timed.")


def _time(fn, *args, repeats):
  jax.block_until_ready(fn(*args))               # compile
  best = np.inf
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t0)
  return best


def main(argv):
  del argv
  env = envs.make("DarkRoom", size=9, episode_len=20)
  tasks = envs.select_tasks(env.all_tasks(), np.arange(_BATCH.value))
  cfg = darkroom.get_config().imitation.model
  print(f"# devices: {jax.devices()}; batch={_BATCH.value} DarkRoom rollouts; model layers={cfg.layers} "
        f"width={cfg.width} heads={cfg.heads}")
  for ctx in (int(c) for c in _CONTEXTS.value):
    mcfg = cfg.copy_and_resolve_references()
    mcfg.context_len = ctx
    model = learner_lib.make_model(mcfg, env.num_actions, env.obs_nvec)
    tok = Tokens(obs=np.zeros((4, 2), np.int8), prev_action=np.zeros(4, np.int32),
                 prev_reward=np.zeros(4, np.float32), prev_done=np.zeros(4, bool))
    params = model.init(jax.random.key(0), tok)
    keys = jax.random.split(jax.random.key(1), _BATCH.value)

    def rate(mode, horizon, repeats):
      one = rollout_lib.make_rollout(model, env, horizon, rollout_lib.episodes_for(env, horizon), mode=mode)
      fn = jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))
      secs = _time(fn, params, tasks, keys, repeats=repeats)
      return horizon * _BATCH.value / secs, secs

    naive, _ = rate("naive", _NAIVE_STEPS.value, 1)
    for horizon in (_HORIZON.value, 10 * _HORIZON.value):
      cached, secs = rate("cached", horizon, _REPEATS.value)
      print(f"context={ctx} horizon={horizon} cached_steps_per_s={cached:.0f} "
            f"naive_steps_per_s={naive:.0f} seconds={secs:.3f}", flush=True)


if __name__ == "__main__":
  app.run(main)
