"""Q-networks: an MLP torso for vector observations, MinAtar's one-conv torso for image observations."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


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
      x = nn.relu(nn.Conv(self.conv_channels, (3, 3), padding="VALID")(x))
      x = x.reshape(x.shape[:-3] + (-1,))
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_actions)(x)
