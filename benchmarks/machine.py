"""This machine's measured matmul rate and memory bandwidth: the denominators of the benchmarks' fractions.

  python benchmarks/machine.py

`matmul_peak()`: float32 FLOP/s of an n x n @ n x n product (best of a few); `memory_bandwidth()`: bytes/s
of `x = 0.5 x + 1`, in place, over an array far larger than the caches (one read and one write per element).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp


def _best(fn, *args, repeats=3):
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t0)
  return best


def matmul_peak(n: int = 2048) -> float:
  a = jnp.ones((n, n), jnp.float32)
  return 2 * n ** 3 / _best(jax.jit(lambda x, y: x @ y), a, a)


def memory_bandwidth(mib: int = 256, passes: int = 10) -> float:
  """In place inside one program (a loop carry), so no fresh output buffer's page faults are timed."""
  x = jnp.ones((mib * 2 ** 20 // 4,), jnp.float32)
  fn = jax.jit(lambda v: jax.lax.fori_loop(0, passes, lambda i, u: u * 0.5 + 1.0, v))
  return 2 * x.nbytes * passes / _best(fn, x)


def cost(compiled) -> tuple[float, float]:
  """(FLOPs, bytes accessed) XLA counts for a compiled program (a scan's body once)."""
  ca = compiled.cost_analysis()
  ca = ca[0] if isinstance(ca, (list, tuple)) else ca
  ca = ca or {}
  return float(ca.get("flops", 0.0)), float(ca.get("bytes accessed", 0.0))


def describe() -> tuple[float, float, str]:
  peak, bw = matmul_peak(), memory_bandwidth()
  return peak, bw, (f"# {jax.devices()[0].platform} x{jax.device_count()}: measured matmul {peak / 1e9:.1f} GFLOP/s, "
                    f"memory bandwidth {bw / 1e9:.1f} GB/s")


if __name__ == "__main__":
  print(describe()[2])
