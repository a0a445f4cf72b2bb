r"""Frozen-rollout speed: the compiled KV-cache rollout against a naive one that recomputes the window.

  python benchmarks/rollout_throughput.py                      # contexts 64, 256, 1024; H=2000 and 10H
  python benchmarks/rollout_throughput.py --contexts=256 --horizon=1000 --batch=4
  python benchmarks/rollout_throughput.py --shapes=breakout --contexts=256 --horizon=2000 --batch=14 --models

One line per (context, horizon):
  context=256 horizon=20000 cached_steps_per_s=... naive_steps_per_s=... seconds=...
`seconds` is the cached rollout's wall time at that horizon (compilation excluded, best of --repeats);
steps/s count environment steps over all `--batch` parallel rollouts (vmapped over DarkRoom tasks). The
model is the DarkRoom config's (4 layers, width 64, 4 heads) with random weights: speed does not depend
on what the weights are. The naive rollout costs a full forward pass over `context` transitions every
step whatever the horizon, so its rate is measured once per context over `--naive_steps` steps (one
timed run after compiling) and printed on both horizons' lines; the cached rollout is timed at H and 10H.
`--shapes=breakout`: MinAtar Breakout and the Breakout study's model (experiments/configs/breakout.py).
`--models`: each rollout has its own weights, as in the stages (one imitator per replicate); without it one
model is shared by every rollout, which reads its weights once per step for the whole batch.
`--groups=1,2`: with `--models`, also the stages' driver (`chunked.run_chunked`, one chunk) with the models in
that many threaded groups (`experiments.rollout.groups`), at the short horizon, one line per count:
  groups=2 horizon=2000 steps_per_s=... seconds=... same_returns=True
(`same_returns`: every episode return equals the one-group run's).
gflop_per_s / gb_per_s: one cached step's FLOPs and bytes from `compiled.cost_analysis()` (a one-step
rollout: its scan body is counted once) times the cached steps/s, with their fractions of this machine's
measured matmul rate and memory bandwidth (benchmarks/machine.py).
"""
from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from cl_limits import envs
from cl_limits.imitation import learner as learner_lib
from cl_limits.models.transformer import Tokens
from cl_limits.rollouts import chunked
from cl_limits.rollouts import rollout as rollout_lib
import machine  # benchmarks/machine.py, beside this script
from experiments.configs import breakout, darkroom

_CONTEXTS = flags.DEFINE_list("contexts", ["64", "256", "1024"], "Context lengths (transitions).")
_HORIZON = flags.DEFINE_integer("horizon", 2000, "H: the short horizon; 10H is measured too.")
_BATCH = flags.DEFINE_integer("batch", 8, "Parallel rollouts (tasks), vmapped.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed runs per measurement (best is reported).")
_NAIVE_STEPS = flags.DEFINE_integer("naive_steps", 400, "Steps over which the naive rollout is timed.")
_SHAPES = flags.DEFINE_enum("shapes", "darkroom", ["darkroom", "breakout"], "whose env and model")
_GROUPS = flags.DEFINE_list("groups", [], "with --models: threaded model groups to time through run_chunked")
_MODELS = flags.DEFINE_bool("models", False, "one model per rollout (the stages' layout: a replicate's own "
                            "imitator), instead of one model shared by every rollout")


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
  peak, bw, line = machine.describe()
  print(line)
  if _SHAPES.value == "darkroom":
    env = envs.make("DarkRoom", size=9, episode_len=20)
    tasks = envs.select_tasks(env.all_tasks(), np.arange(_BATCH.value))
    cfg = darkroom.get_config().imitation.model
  else:
    env = envs.make("MinAtar-Breakout")
    tasks = jax.tree.map(lambda x: np.repeat(np.asarray(x)[None], _BATCH.value, 0), env.default_params)
    cfg = breakout.get_config().imitation.model
  obs0, _ = env.reset(jax.random.key(0), env.default_params)
  print(f"# devices: {jax.devices()}; batch={_BATCH.value} {env.name} rollouts; model layers={cfg.layers} "
        f"width={cfg.width} heads={cfg.heads}")
  for ctx in (int(c) for c in _CONTEXTS.value):
    mcfg = cfg.copy_and_resolve_references()
    mcfg.context_len = ctx
    model = learner_lib.make_model(mcfg, env.num_actions, getattr(env, "obs_nvec", None))
    # prev_explore: read by a model with mark_explore (the Breakout study's), ignored otherwise.
    tok = Tokens(obs=np.repeat(np.asarray(obs0)[None], 4, 0), prev_action=np.zeros(4, np.int32),
                 prev_reward=np.zeros(4, np.float32), prev_done=np.zeros(4, bool), prev_explore=np.zeros(4, bool))
    keys = jax.random.split(jax.random.key(1), _BATCH.value)
    if _MODELS.value:
      # One model per rollout, as the stages roll out one imitator per replicate: weights vmapped with the rollouts.
      params = jax.vmap(lambda k: model.init(k, tok))(jax.random.split(jax.random.key(0), _BATCH.value))
      axes = (0, 0, 0)
    else:
      params, axes = model.init(jax.random.key(0), tok), (None, 0, 0)

    def rate(mode, horizon, repeats):
      one = rollout_lib.make_rollout(model, env, horizon, rollout_lib.episodes_for(env, horizon), mode=mode)
      fn = jax.jit(jax.vmap(one, in_axes=axes))
      secs = _time(fn, params, tasks, keys, repeats=repeats)
      return horizon * _BATCH.value / secs, secs

    one = rollout_lib.make_rollout(model, env, 1, 1, mode="cached")
    flops, nbytes = machine.cost(jax.jit(jax.vmap(one, in_axes=axes)).lower(params, tasks, keys).compile())
    naive, _ = rate("naive", _NAIVE_STEPS.value, 1)
    for horizon in (_HORIZON.value, 10 * _HORIZON.value):
      cached, secs = rate("cached", horizon, _REPEATS.value)
      per_s = cached / _BATCH.value          # vmapped steps per second
      print(f"context={ctx} horizon={horizon} cached_steps_per_s={cached:.0f} "
            f"naive_steps_per_s={naive:.0f} seconds={secs:.3f} gflop_per_s={flops * per_s / 1e9:.3f} "
            f"({flops * per_s / peak:.1%} of matmul) gb_per_s={nbytes * per_s / 1e9:.2f} "
            f"({nbytes * per_s / bw:.0%} of bandwidth)", flush=True)
    if _MODELS.value and _GROUPS.value:
      _time_groups(model, env, tasks, params, keys)


def _time_groups(model, env, tasks, params, keys):
  """The stages' driver on [models, 1 task]: one group against `--groups` threaded groups."""
  h = _HORIZON.value
  roll = chunked.make_chunked_rollout(model, env, h, rollout_lib.episodes_for(env, h), chunks=1)
  one_task = jax.tree.map(lambda x: np.asarray(x)[:1], tasks)
  keys2 = keys[:, None]
  base = None
  for g in [1] + [int(x) for x in _GROUPS.value if int(x) != 1]:
    run = lambda g=g: chunked.run_chunked(roll, params, one_task, keys2, groups=g)
    secs = _time(run, repeats=_REPEATS.value)
    ret = np.asarray(jax.device_get(run().episode_return))
    base = ret if base is None else base
    print(f"groups={g} horizon={h} steps_per_s={h * _BATCH.value / secs:.0f} seconds={secs:.3f} "
          f"same_returns={np.array_equal(ret, base, equal_nan=True)}", flush=True)


if __name__ == "__main__":
  app.run(main)
