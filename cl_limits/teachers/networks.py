"""Q-networks: an MLP torso for vector observations, MinAtar's one-conv torso for image observations."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class PatchConv(nn.Module):
  """A stride-1 VALID convolution written as one matmul over extracted patches (im2col).

  The same function and parameters (`kernel` [k, k, C, F], `bias` [F]) as `nn.Conv(F, (k, k),
  padding="VALID")`. On CPU, XLA's convolution and, more so, its gradient with respect to the kernel are
  slow at MinAtar's shapes (10x10x7 frames, 16 filters); as a matmul the DQN's update runs 2.2x faster
  (benchmarks/teacher_throughput.py, docs/measurements.md "MinAtar teacher throughput").
  """

  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x):
    k, c = self.kernel_size, x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, c, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    h, w = x.shape[-3] - k + 1, x.shape[-2] - k + 1
    patches = jnp.concatenate([x[..., i:i + h, j:j + w, :] for i in range(k) for j in range(k)], axis=-1)
    return patches @ kernel.reshape(k * k * c, self.features) + bias


class QNetwork(nn.Module):
  """features [..., F] (mlp) or [..., H, W, C] (conv) -> Q-values [..., num_actions]."""

  num_actions: int
  hidden: Sequence[int] = (120, 84)
  torso: str = "mlp"
  conv_channels: int = 16

  @nn.compact
  def __call__(self, x):
    x = x.astype(jnp.float32)
    if self.torso == "conv":
      # MinAtar's DQN baseline (Young & Tian 2019): one 3x3 conv with 16 channels, then dense layers.
      x = nn.relu(PatchConv(self.conv_channels, 3, name="Conv_0")(x))
      x = x.reshape(x.shape[:-3] + (-1,))
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_actions)(x)
