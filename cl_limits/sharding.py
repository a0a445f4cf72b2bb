"""Shard the seed axis across every visible device (one process uses every GPU of a box).

Arrays whose leading axis is the seed axis are placed with `NamedSharding(mesh, P("seeds"))`; jitted
functions vmapped over that axis then run each device's seeds locally, and results equal the unsharded
run. With one device (or a seed count no device count divides) nothing is sharded.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P, SingleDeviceSharding


def seed_mesh(num_seeds: int, devices=None) -> Mesh | None:
  """A 1-D mesh over the largest number of devices that divides `num_seeds`; None if that is 1."""
  devices = list(jax.devices() if devices is None else devices)
  n = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
  if n == 1:
    return None
  return Mesh(np.asarray(devices[:n]), ("seeds",))


def padded_layout(num_models: int, devices=None) -> tuple[int, Mesh | None]:
  """(padded count, mesh) for a model axis of `num_models`: the device count d that puts the fewest models
  on each device (ties: the least padding, then fewer devices), and the count padded to a multiple of d.
  15 models on 2 devices -> 16 (8 each); on 1 device -> 15 and no mesh. The imitation stage pads its
  model axis with copies of the last model whose results are dropped, so that every core of a CPU (one
  virtual device each) or every GPU of a box trains models."""
  devices = list(jax.devices() if devices is None else devices)
  best = min(range(1, len(devices) + 1),
             key=lambda d: (-(-num_models // d), -(-num_models // d) * d - num_models, d))
  padded = -(-num_models // best) * best
  return padded, (None if best == 1 else Mesh(np.asarray(devices[:best]), ("seeds",)))


def shard_seeds(tree, mesh: Mesh | None):
  """Places every leaf's leading (seed) axis across the mesh; identity when mesh is None."""
  if mesh is None:
    return tree
  sharding = NamedSharding(mesh, P("seeds"))
  return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def replicate(tree, mesh: Mesh | None):
  if mesh is None:
    return tree
  sharding = NamedSharding(mesh, P())
  return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def restore_target(abstract, num_seeds: int):
  """`abstract` (a tree of shapes, e.g. from `jax.eval_shape`) placed the way this process places `num_seeds`
  seeds. A checkpoint restored into it loads whatever device layout it was saved from (a run trained on four
  GPUs restores on one CPU); without explicit shardings orbax reuses the saved layout and refuses a
  different device count."""
  mesh = seed_mesh(num_seeds)
  one = SingleDeviceSharding(jax.devices()[0])

  def place(x):
    if mesh is None:
      sharding = one
    else:
      sharding = NamedSharding(mesh, P("seeds") if len(x.shape) and x.shape[0] == num_seeds else P())
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
  return jax.tree.map(place, abstract)
