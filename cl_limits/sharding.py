"""Shard the seed axis across every visible device (one process uses every GPU of a box).

Arrays whose leading axis is the seed axis are placed with `NamedSharding(mesh, P("seeds"))`; jitted
functions vmapped over that axis then run each device's seeds locally, and results equal the unsharded
run. With one device (or a seed count no device count divides) nothing is sharded.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def seed_mesh(num_seeds: int, devices=None) -> Mesh | None:
  """A 1-D mesh over the largest number of devices that divides `num_seeds`; None if that is 1."""
  devices = list(jax.devices() if devices is None else devices)
  n = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
  if n == 1:
    return None
  return Mesh(np.asarray(devices[:n]), ("seeds",))


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
