r"""Imitation training speed (predicted tokens per second) at the DarkRoom or the Breakout study's shapes.

  python benchmarks/imitation_throughput.py                 # the config's arms x seeds in one program
  python benchmarks/imitation_throughput.py --models=1
  python benchmarks/imitation_throughput.py --shapes=breakout
  python benchmarks/imitation_throughput.py --shapes=breakout --models=15 --models_at_once=0,config

Trains the DarkRoom config's transformer (imitation.model, imitation.train) on DarkRoom-shaped random
histories (speed does not depend on the data's content) and prints one line per model count:
  models=6 tokens_per_s=... updates_per_s=... seconds_per_segment=... compile_s=...
tokens_per_s counts predicted tokens (batch_size x seq_len per update) over all models. gflop_per_s and
gb_per_s: FLOPs and bytes of one update from `compiled.cost_analysis()` (a one-update segment, compiled
separately) times updates/s, and their fractions of this machine's measured matmul rate and memory
bandwidth (benchmarks/machine.py).
"""
from __future__ import annotations

import sys
import time

import jax

# Before anything imports gymnax (which starts a JAX backend): --cpu_devices virtual CPU devices.
jax.config.update("jax_num_cpu_devices", next((int(a.split("=", 1)[1]) for a in sys.argv
                                                if a.startswith("--cpu_devices=")), 1))
import jax.numpy as jnp
import numpy as np
from absl import app, flags

_CPU = flags.DEFINE_integer("cpu_devices", 1, "virtual CPU devices (jax_num_cpu_devices) to shard the models over "
                            "(the pipeline runs on one)")
from cl_limits import sharding
from cl_limits.histories import datasets, windows
from cl_limits.imitation import learner as learner_lib
import machine  # benchmarks/machine.py, beside this script
from cl_limits.envs import minatar
from experiments.configs import breakout, darkroom

_MODELS = flags.DEFINE_list("models", [], "Model counts (default: arms x seeds of the config, and 1).")
_UPDATES = flags.DEFINE_integer("updates", 20, "Updates per timed segment.")
_SHAPES = flags.DEFINE_enum("shapes", "darkroom", ["darkroom", "breakout"], "whose config and observations")
_ENCODERS = flags.DEFINE_list("frame_encoders", ["config"],
                               "frame encoders to time ('linear', 'patch'; 'config': the config's)")
_CHUNKS = flags.DEFINE_list("attention_chunks", ["0", "config"],
                            "training-pass attention blocks to time side by side: 0 is one [T, T] block (the "
                            "path before chunked attention), 'config' the config's imitation.model.attention_chunk")
_AT_ONCE = flags.DEFINE_list("models_at_once", ["config"],
                             "imitation.train.models_at_once values to time side by side (0: every model in one "
                             "vmapped batch; k: k at a time; 'config': the config's)")


def main(argv):
  del argv
  config = (darkroom if _SHAPES.value == "darkroom" else breakout).get_config()
  im = config.imitation
  default = len(im.arms) * int(im.num_seeds)
  counts = [int(m) for m in _MODELS.value] or [1, default]
  train = im.train.copy_and_resolve_references()
  train.updates_per_segment = _UPDATES.value
  train.num_updates = 10 * _UPDATES.value
  train.warmup_updates = 0
  rng = np.random.default_rng(0)
  n, length = 400_000, 10_000
  if _SHAPES.value == "darkroom":
    obs, n_act, nvec = rng.integers(0, 9, (n, 2)).astype(np.int8), 5, (9, 9)
  else:
    n = 100_000
    obs, n_act, nvec = rng.random((n, 10, 10, minatar.NUM_CHANNELS)) < 0.05, minatar.NUM_ACTIONS, None
  fd = datasets.FlatData(obs=obs, action=rng.integers(0, n_act, n).astype(np.int32),
                         label=rng.integers(0, n_act, n).astype(np.int32),
                         reward=(rng.random(n) < 0.3).astype(np.float32), done=rng.random(n) < 0.05,
                         lengths=np.full(n // length, length), episodes=0)
  data = datasets.to_device(fd)
  starts, n_starts = windows.pad_starts([np.asarray(windows.build_index(fd.lengths, train.seq_len).starts)])
  tokens = learner_lib.example_tokens(data, int(train.seq_len), n_act)
  peak, bw, line = machine.describe()
  print(line)
  print(f"# {_SHAPES.value} shapes; devices: {jax.devices()}; model layers={im.model.layers} width={im.model.width} "
        f"context={im.model.context_len}; seq_len={train.seq_len} batch={train.batch_size}")
  chunks = [int(im.model.attention_chunk) if c == "config" else int(c) for c in _CHUNKS.value]
  encoders = [str(im.model.frame_encoder) if e == "config" else e for e in _ENCODERS.value]
  if nvec is not None:
    encoders = encoders[:1]          # integer observations: the frame encoder does not apply
  at_once = [int(train.models_at_once) if a == "config" else int(a) for a in _AT_ONCE.value]
  for enc, chunk, group, m in [(e, c, g, m) for e in encoders for c in chunks for g in at_once for m in counts]:
    train.models_at_once = group
    padded, mesh = sharding.padded_layout(m)
    model_cfg = im.model.copy_and_resolve_references()
    model_cfg.attention_chunk = chunk
    model_cfg.frame_encoder = enc
    model = learner_lib.make_model(model_cfg, n_act, nvec)
    learner = learner_lib.make_learner(train, model)
    one = train.copy_and_resolve_references()
    # Costed vmapped whatever models_at_once is: XLA's cost analysis counts a loop's body once, and the
    # arithmetic of an update is the same either way.
    one.updates_per_segment, one.num_updates, one.models_at_once = 1, 10, 0
    one_update = learner_lib.make_learner(one, model)
    keys = sharding.shard_seeds(jax.random.split(jax.random.key(0), padded), mesh)
    state = jax.jit(jax.vmap(learner.init, in_axes=(0, None)))(keys, tokens)
    seg = jax.jit(learner.segment)
    arm = sharding.shard_seeds(jnp.zeros((padded,), jnp.int32), mesh)
    data_r, starts_r, n_starts_r = sharding.replicate((data, jnp.asarray(starts), jnp.asarray(n_starts)), mesh)
    t0 = time.perf_counter()
    state, out = seg(state, data_r, starts_r, n_starts_r, arm)
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - t0
    best = np.inf
    for _ in range(2):
      t0 = time.perf_counter()
      state, out = seg(state, data_r, starts_r, n_starts_r, arm)
      jax.block_until_ready(out)
      best = min(best, time.perf_counter() - t0)
    tok = m * learner.tokens_per_update * _UPDATES.value          # the real models' tokens (padding excluded)
    flops, nbytes = machine.cost(jax.jit(one_update.segment).lower(state, data_r, starts_r, n_starts_r, arm).compile())
    flops *= m / padded
    nbytes *= m / padded
    ups = _UPDATES.value / best
    print(f"frame_encoder={enc} attention_chunk={chunk} models_at_once={group} models={m} "
          f"devices={mesh.devices.size if mesh else 1} "
          f"tokens_per_s={tok / best:.0f} updates_per_s={ups:.2f} "
          f"seconds_per_segment={best:.2f} compile_s={compile_s:.1f} gflop_per_s={flops * ups / 1e9:.2f} "
          f"({flops * ups / peak:.0%} of matmul) gb_per_s={nbytes * ups / 1e9:.2f} ({nbytes * ups / bw:.0%} of "
          "bandwidth)", flush=True)


if __name__ == "__main__":
  app.run(main)
