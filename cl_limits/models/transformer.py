"""A causal transformer over transitions, with a one-step decode over a ring-buffer KV cache.

One token per environment step t embeds (obs_t, action_{t-1}, reward_{t-1}, done_{t-1}) and predicts
action_t; with `tokens="transition"` it also embeds obs_{t-1} (its own tables), so the token carries the
whole transition (obs_{t-1}, action_{t-1}, reward_{t-1}, obs_t) and one attention hop from "this cell"
to "a step that left this cell" reads the action taken there (with step tokens that takes a
previous-token head and an induction head in two layers). Positions enter only as ALiBi biases on relative distance (Press et al. 2022), so a window that
has slid past the training length looks exactly like one that has not. Every layer attends to the last
`context_len` steps (sliding-window attention): `decode` over a ring buffer of `context_len` keys and
values gives the same logits as `__call__` (same mask) over the whole stream. With one layer, or before
the window slides, that is also a fresh pass over the last `context_len` transitions; with L layers the
receptive field reaches L * (context_len - 1) steps back (see docs/imitators.md).

Both paths work on one stream (no batch axis); vmap them for batches.
"""
from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

NEG_INF = -1e9
TOKEN_KINDS = ("step", "transition")     # see TransitionTransformer.tokens


@struct.dataclass
class Tokens:
  """One stream's inputs: obs [T, ...], prev_action [T] int32 (num_actions = none yet), prev_reward [T],
  prev_done [T] bool; prev_explore [T] bool: action_{t-1} was not the actor's own greedy choice (in the
  histories: recorded action != the DQN's argmax; in rollouts: sampled action != the imitator's argmax).
  Only a model with `mark_explore` reads it; None is allowed everywhere else."""
  obs: chex.Array
  prev_action: chex.Array
  prev_reward: chex.Array
  prev_done: chex.Array
  prev_explore: chex.Array | None = None


@struct.dataclass
class KVCache:
  """Ring buffer of the last `context_len` steps: keys/values [layers, C, heads, head_dim]; slot_pos [C]
  holds the absolute step stored in each slot (-1 when empty); pos is the next step's absolute index;
  prev_obs [width]: the last step's observation through the previous-observation tables (transition
  tokens; unused, zeros, with step tokens)."""
  k: chex.Array
  v: chex.Array
  slot_pos: chex.Array
  pos: chex.Array
  prev_obs: chex.Array


def alibi_slopes(heads: int) -> np.ndarray:
  return 2.0 ** (-8.0 * (np.arange(heads) + 1) / heads)


class _Block(nn.Module):
  width: int
  heads: int
  mlp_ratio: int = 4

  def setup(self):
    self.ln1, self.ln2 = nn.LayerNorm(), nn.LayerNorm()
    self.qkv = nn.Dense(3 * self.width, use_bias=False)
    self.out = nn.Dense(self.width)
    self.mlp_in = nn.Dense(self.mlp_ratio * self.width)
    self.mlp_out = nn.Dense(self.width)

  def _qkv(self, x):
    q, k, v = jnp.split(self.qkv(self.ln1(x)), 3, axis=-1)
    shape = x.shape[:-1] + (self.heads, self.width // self.heads)
    return q.reshape(shape), k.reshape(shape), v.reshape(shape)

  def _finish(self, x, att):
    x = x + self.out(att.reshape(att.shape[:-2] + (self.width,)))
    return x + self.mlp_out(nn.gelu(self.mlp_in(self.ln2(x))))

  @staticmethod
  def _attend(q, k, v, bias):
    """q [Tq, H, D], k/v [Tk, H, D], bias [H, Tq, Tk] -> [Tq, H, D]."""
    logits = jnp.einsum("qhd,khd->hqk", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype) + bias
    return jnp.einsum("hqk,khd->qhd", jax.nn.softmax(logits, axis=-1), v)

  def __call__(self, x, bias):
    q, k, v = self._qkv(x)
    return self._finish(x, self._attend(q, k, v, bias))

  def step(self, x, k_cache, v_cache, slot, bias):
    """x [width]; caches [C, H, D]; writes this step's key/value at `slot`, attends over the cache."""
    q, k, v = self._qkv(x[None])
    k_cache = jax.lax.dynamic_update_slice(k_cache, k, (slot, 0, 0))
    v_cache = jax.lax.dynamic_update_slice(v_cache, v, (slot, 0, 0))
    att = self._attend(q, k_cache, v_cache, bias[:, None, :])
    return self._finish(x[None], att)[0], k_cache, v_cache


def chunked_attention(q, k, v, slopes, context_len: int, valid=None, chunk: int = 32):
  """Causal sliding-window attention with ALiBi biases, one stream: q/k/v [T, H, D] -> [T, H, D].

  Query t attends to keys t - context_len + 1 .. t (and only to those marked `valid`), with bias
  -slope_h * (t - s). Queries are processed in blocks of `chunk` steps; block i multiplies only the key
  blocks its window reaches, so on a causal window about half of the [T, T] logits (and their gradients)
  are never computed. The blocks are a static Python loop (T / chunk of them). Each block's weights are
  normalised after they multiply the values (the same function as softmax then product, to float
  rounding), which saves a pass over the [chunk, keys] weights."""
  n = q.shape[0]
  chunk = n if int(chunk) <= 0 else min(int(chunk), n)     # 0: one block, the plain [T, T] product
  scale = 1.0 / np.sqrt(q.shape[-1])
  slopes = jnp.asarray(slopes, jnp.float32)
  q, k, v = (jnp.swapaxes(a, 0, 1) for a in (q * scale, k, v))      # [H, T, D]
  outs = []
  for lo in range(0, n, chunk):
    hi = min(lo + chunk, n)
    k_lo = max(0, lo - context_len + 1)          # the first key any query of this block reaches
    dist = np.arange(lo, hi)[:, None] - np.arange(k_lo, hi)[None, :]
    allowed = jnp.asarray((dist >= 0) & (dist < context_len))
    if valid is not None:
      allowed = allowed & valid[k_lo:hi][None, :]
    bias = jnp.where(allowed[None], -slopes[:, None, None] * jnp.asarray(dist, jnp.float32)[None], NEG_INF)
    logits = jnp.einsum("hqd,hkd->hqk", q[:, lo:hi], k[:, k_lo:hi]) + bias
    # softmax(logits) @ v with the normalisation after the product: one division per output entry [q, D]
    # instead of one per weight [q, keys]. The row max only keeps exp in range; its gradient cancels.
    p = jnp.exp(logits - jax.lax.stop_gradient(logits.max(axis=-1, keepdims=True)))
    outs.append(jnp.einsum("hqk,hkd->hqd", p, v[:, k_lo:hi]) / p.sum(axis=-1)[..., None])
  return jnp.swapaxes(jnp.concatenate(outs, axis=1), 0, 1)


class TransitionTransformer(nn.Module):
  """Causal transformer over transitions -> action logits.

  Attributes:
    num_actions: size of the action set.
    context_len: attention window in transitions (the KV cache size).
    obs_nvec: cardinalities of integer observation entries (grid worlds: each entry gets its own
      embedding table, summed, e.g. separate x and y embeddings); None for float/bool observations,
      which are flattened and projected by a dense layer (frame_encoder "linear") or, for frames
      [H, W, C] (MinAtar), cut into `patch` x `patch` patches that share a dense layer of
      `patch_features` and a GELU before that projection (frame_encoder "patch"). Observations may have fewer entries than
      obs_nvec (the missing ones read as 0), so one model serves a family of grid worlds.
    tokens: "step" (obs_t and transition t-1 without its observation) or "transition" (obs_{t-1} too, through
      tables of its own; a learned "none" vector where there is no previous step: the stream's or the
      window's first step, or after padding).
    mark_explore: the token also embeds `prev_explore` (was the previous action exploration, not the
      actor's greedy choice?), so an exploratory action in the context need not read as ignorance.
  """

  num_actions: int
  context_len: int
  layers: int = 4
  width: int = 64
  heads: int = 4
  obs_nvec: Sequence[int] | None = None
  attention_chunk: int = 32
  frame_encoder: str = "linear"
  patch: int = 2
  patch_features: int = 16
  tokens: str = "step"
  mark_explore: bool = False

  def setup(self):
    if self.tokens not in TOKEN_KINDS:
      raise ValueError(f"tokens must be 'step' or 'transition' (got {self.tokens!r})")
    if self.width % self.heads:
      raise ValueError(f"model width {self.width} is not divisible by heads {self.heads}")
    if self.obs_nvec is not None:
      self.obs_embed = [nn.Embed(int(n), self.width) for n in self.obs_nvec]
    else:
      if self.frame_encoder not in ("linear", "patch"):
        raise ValueError(f"frame_encoder must be 'linear' or 'patch' (got {self.frame_encoder!r})")
      if self.frame_encoder == "patch":
        self.patch_proj = nn.Dense(self.patch_features)
      self.obs_proj = nn.Dense(self.width)
    if self.tokens == "transition":
      if self.obs_nvec is not None:
        self.prev_obs_embed = [nn.Embed(int(n), self.width) for n in self.obs_nvec]
      else:
        self.prev_obs_proj = nn.Dense(self.width)
      self.no_prev_obs = self.param("no_prev_obs", nn.initializers.normal(0.02), (self.width,))
    self.action_embed = nn.Embed(self.num_actions + 1, self.width)
    self.reward_proj = nn.Dense(self.width)
    self.done_embed = nn.Embed(2, self.width)
    if self.mark_explore:
      self.explore_embed = nn.Embed(2, self.width)
    self.blocks = [_Block(self.width, self.heads) for _ in range(self.layers)]
    self.ln_f = nn.LayerNorm()
    self.head = nn.Dense(self.num_actions)
    self.slopes = jnp.asarray(alibi_slopes(self.heads), jnp.float32)

  def _encode_obs(self, obs, lead: int, prev: bool = False):
    """Observations [lead..., obs...] -> [lead..., width] through the current (or previous-step) tables."""
    if self.obs_nvec is not None:
      obs = obs.astype(jnp.int32)
      # An observation with fewer entries than obs_nvec (a smaller env of the same family, e.g. DarkRoom's
      # (x, y) under DarkKeyToDoor's (x, y, has_key)) reads its missing trailing entries as 0.
      zero = jnp.zeros(obs.shape[:-1], jnp.int32)
      tables = self.prev_obs_embed if prev else self.obs_embed
      return sum(emb(obs[..., i] if i < obs.shape[-1] else zero) for i, emb in enumerate(tables))
    proj = self.prev_obs_proj if prev else self.obs_proj
    if self.frame_encoder == "patch":
      return proj(self._patches(obs.astype(jnp.float32), lead))
    return proj(obs.reshape(obs.shape[:lead] + (-1,)).astype(jnp.float32))

  def embed(self, t: Tokens):
    """Token embeddings [..., width] for inputs with any leading shape (without obs_{t-1}: `__call__` and
    `decode` add it for transition tokens)."""
    x = self._encode_obs(t.obs, t.prev_action.ndim)
    x = x + self.action_embed(t.prev_action.astype(jnp.int32))
    x = x + self.reward_proj(t.prev_reward.astype(jnp.float32)[..., None])
    if self.mark_explore:
      if t.prev_explore is None:
        raise ValueError("mark_explore=True needs Tokens.prev_explore (was each previous action exploratory?)")
      x = x + self.explore_embed(t.prev_explore.astype(jnp.int32))
    return x + self.done_embed(t.prev_done.astype(jnp.int32))

  def _patches(self, obs, lead: int):
    """The patch frame encoder: a frame [..., H, W, C] cut into p x p patches, each through one shared
    dense layer of `patch_features` and a GELU, concatenated in place (the second dense layer, `obs_proj`,
    sees where each patch is)."""
    if obs.ndim - lead != 3:
      raise ValueError(f"frame_encoder='patch' needs frames [H, W, C]; got observations {obs.shape[lead:]}")
    h, w, c = obs.shape[lead:]
    p = int(self.patch)
    if h % p or w % p:
      raise ValueError(f"frame_encoder='patch': patch {p} does not divide the frame {h} x {w}")
    head = obs.shape[:lead]
    x = obs.reshape(head + (h // p, p, w // p, p, c))
    x = jnp.moveaxis(x, lead + 2, lead + 1).reshape(head + ((h // p) * (w // p), p * p * c))
    return nn.gelu(self.patch_proj(x)).reshape(head + (-1,))

  def __call__(self, t: Tokens, valid=None):
    """Full causal pass over one stream [T] (window `context_len`). Returns logits [T, num_actions].

    valid: optional bool [T]; steps marked False are never attended to (padding).

    Attention runs in query blocks of `attention_chunk` steps, each against only the key blocks its
    window reaches (`chunked_attention`): the same logits as one masked [T, T] product, without computing
    (and differentiating) the masked half.
    """
    x = self.embed(t)
    if self.tokens == "transition":     # step s's observation enters step s + 1's token
      prev = self._encode_obs(t.obs, 1, prev=True)
      has = jnp.arange(x.shape[0]) > 0
      if valid is not None:
        has = has & jnp.concatenate([jnp.zeros((1,), bool), valid[:-1]])
      x = x + jnp.where(has[:, None], jnp.roll(prev, 1, axis=0), self.no_prev_obs)
    for block in self.blocks:
      q, k, v = block._qkv(x)
      att = chunked_attention(q, k, v, self.slopes, self.context_len, valid, self.attention_chunk)
      x = block._finish(x, att)
    return self.head(self.ln_f(x))

  def decode(self, t: Tokens, cache: KVCache):
    """One step: inputs without a time axis. Returns (logits [num_actions], updated cache)."""
    x = self.embed(t)
    prev_obs = cache.prev_obs
    if self.tokens == "transition":
      x = x + jnp.where(cache.pos > 0, cache.prev_obs, self.no_prev_obs)
      prev_obs = self._encode_obs(t.obs, 0, prev=True)
    slot = cache.pos % self.context_len
    slot_pos = cache.slot_pos.at[slot].set(cache.pos)
    dist = cache.pos - slot_pos
    bias = jnp.where((slot_pos >= 0)[None], -self.slopes[:, None] * dist[None], NEG_INF)
    ks, vs = [], []
    for i, block in enumerate(self.blocks):
      x, k, v = block.step(x, cache.k[i], cache.v[i], slot, bias)
      ks.append(k)
      vs.append(v)
    cache = KVCache(k=jnp.stack(ks), v=jnp.stack(vs), slot_pos=slot_pos, pos=cache.pos + 1, prev_obs=prev_obs)
    return self.head(self.ln_f(x)), cache

  def init_cache(self) -> KVCache:
    shape = (self.layers, self.context_len, self.heads, self.width // self.heads)
    return KVCache(k=jnp.zeros(shape), v=jnp.zeros(shape),
                   slot_pos=jnp.full((self.context_len,), -1, jnp.int32), pos=jnp.int32(0),
                   prev_obs=jnp.zeros((self.width,)))
