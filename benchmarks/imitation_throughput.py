r"""Imitation training speed (predicted tokens per second) for the DarkRoom config.

  python benchmarks/imitation_throughput.py                 # the config's arms x seeds in one program
  python benchmarks/imitation_throughput.py --models=1

Trains the DarkRoom config's transformer (imitation.model, imitation.train) on DarkRoom-shaped random
histories (speed does not depend on the data's content) and prints one line per model count:
  models=6 tokens_per_s=... updates_per_s=... seconds_per_segment=... compile_s=...
tokens_per_s counts predicted tokens (batch_size x seq_len per update) over all models.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from cl_limits.histories import datasets, windows
from cl_limits.imitation import learner as learner_lib
from experiments.configs import darkroom

_MODELS = flags.DEFINE_list("models", [], "Model counts (default: arms x seeds of the config, and 1).")
_UPDATES = flags.DEFINE_integer("updates", 20, "Updates per timed segment.")


def main(argv):
  del argv
  config = darkroom.get_config()
  im = config.imitation
  default = len(im.arms) * int(im.num_seeds)
  counts = [int(m) for m in _MODELS.value] or [1, default]
  train = im.train.copy_and_resolve_references()
  train.updates_per_segment = _UPDATES.value
  train.num_updates = 10 * _UPDATES.value
  rng = np.random.default_rng(0)
  n, length = 400_000, 10_000
  fd = datasets.FlatData(obs=rng.integers(0, 9, (n, 2)).astype(np.int8),
                         action=rng.integers(0, 5, n).astype(np.int32),
                         label=rng.integers(0, 5, n).astype(np.int32),
                         reward=(rng.random(n) < 0.3).astype(np.float32), done=rng.random(n) < 0.05,
                         lengths=np.full(n // length, length), episodes=0)
  data = datasets.to_device(fd)
  starts, n_starts = learner_lib.pad_starts([np.asarray(windows.build_index(fd.lengths, train.seq_len).starts)])
  model = learner_lib.make_model(im.model, 5, (9, 9))
  learner = learner_lib.make_learner(train, model)
  tokens = learner_lib.example_tokens(data, int(train.seq_len), 5)
  print(f"# devices: {jax.devices()}; model layers={im.model.layers} width={im.model.width} "
        f"context={im.model.context_len}; seq_len={train.seq_len} batch={train.batch_size}")
  for m in counts:
    state = jax.jit(jax.vmap(learner.init, in_axes=(0, None)))(jax.random.split(jax.random.key(0), m), tokens)
    seg = jax.jit(learner.segment)
    arm = jnp.zeros((m,), jnp.int32)
    t0 = time.perf_counter()
    state, out = seg(state, data, starts, n_starts, arm)
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - t0
    best = np.inf
    for _ in range(2):
      t0 = time.perf_counter()
      state, out = seg(state, data, starts, n_starts, arm)
      jax.block_until_ready(out)
      best = min(best, time.perf_counter() - t0)
    tok = m * learner.tokens_per_update * _UPDATES.value
    print(f"models={m} tokens_per_s={tok / best:.0f} updates_per_s={_UPDATES.value / best:.2f} "
          f"seconds_per_segment={best:.2f} compile_s={compile_s:.1f}", flush=True)


if __name__ == "__main__":
  app.run(main)
