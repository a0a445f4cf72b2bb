"""The hybrid learner: act in context as the frozen rollout does, and every `act_steps` environment steps
take `sgd_steps` SGD steps on the imitator's own recent experience, so that what it learned in context is
written into its weights; then act again, and so on.

The objective is self-distillation: the AD loss (cross-entropy of the action it took) on windows of its own
last `buffer_steps` transitions, with each step weighted by the return of the episode it belongs to:
`weighting="top"` keeps the steps of finished episodes whose return is at least the `top_fraction`
quantile of the buffer's finished episodes (return-filtered self-imitation); `"all"` keeps every finished
episode. Steps of unfinished episodes get weight 0 (their return is not known yet).

What SGD changes (`adapter`):
  "none"  every weight of the imitator (AdamW on the full parameter tree);
  "lora"  a low-rank adapter only (Hu et al. 2022): every 2-D Dense kernel W [in, out] of the model is
          used as W + (alpha / rank) * A @ B with A [in, rank] ~ N(0, 1/in) and B [rank, out] = 0 at the
          start, so the first segment acts exactly as the frozen imitator; the base weights are never
          updated (they are returned bit-identical).

After an update the KV cache holds keys and values computed with the old weights; it is rebuilt by
decoding the buffer's last `context_len` tokens with the new weights (with one layer this equals a cache
built by the new weights all along; with L layers the rebuilt cache sees only those `context_len` steps).
With `sgd_steps=0` nothing is updated and nothing rebuilt: the hybrid is then exactly the frozen rollout
(`rollout.make_rollout`, same keys, same actions), which a test checks.

Compiled: `run(params, env_params, key)` is one `lax.scan` over segments, each an inner scan over
`act_steps` environment steps followed by a scan over `sgd_steps` updates; vmap it over tasks and seeds
(every (seed, task) pair adapts its own copy of the weights). The stages run the same segments in chunks
from the host (`chunked.make_chunked_hybrid`: progress, ETA and checkpoints, the same result).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from cl_limits.models.transformer import Tokens, TransitionTransformer
from cl_limits.rollouts.rollout import action_fn, explores, first_tokens, record_episode_end

ADAPTERS = ("none", "lora")
WEIGHTINGS = ("top", "all")


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      act_steps=1_000,        # environment steps between updates (K episodes of a fixed-length env)
      sgd_steps=16,           # M updates after each act phase (0: the frozen imitator)
      batch_size=8, seq_len=80,
      buffer_steps=2_000,     # own recent transitions the updates draw windows from
      lr=1e-4, weight_decay=0.0, max_grad_norm=1.0,
      adapter="none", lora_rank=4, lora_alpha=8.0,
      weighting="top", top_fraction=0.5,
  ))


def validate(cfg, context_len: int) -> None:
  """ValueError naming the field for a malformed hybrid config."""
  def need(ok, field, msg):
    if not ok:
      raise ValueError(f"{field}: {msg}")
  need(int(cfg.act_steps) >= 1, "act_steps", f"must be >= 1 (got {cfg.act_steps})")
  need(int(cfg.sgd_steps) >= 0, "sgd_steps", f"must be >= 0 (got {cfg.sgd_steps})")
  need(int(cfg.batch_size) >= 1, "batch_size", f"must be >= 1 (got {cfg.batch_size})")
  need(int(cfg.seq_len) >= 1, "seq_len", f"must be >= 1 (got {cfg.seq_len})")
  need(int(cfg.buffer_steps) >= max(int(cfg.seq_len), int(context_len)), "buffer_steps",
       f"must be >= seq_len={cfg.seq_len} and >= the model's context_len={context_len} "
       f"(got {cfg.buffer_steps})")
  need(float(cfg.lr) > 0, "lr", f"must be > 0 (got {cfg.lr})")
  need(cfg.adapter in ADAPTERS, "adapter", f"must be one of {ADAPTERS} (got {cfg.adapter!r})")
  need(int(cfg.lora_rank) >= 1, "lora_rank", f"must be >= 1 (got {cfg.lora_rank})")
  need(cfg.weighting in WEIGHTINGS, "weighting", f"must be one of {WEIGHTINGS} (got {cfg.weighting!r})")
  need(0.0 <= float(cfg.top_fraction) < 1.0 or cfg.weighting != "top", "top_fraction",
       f"must be in [0, 1) (got {cfg.top_fraction})")


# ---------------------------------------------------------------------------------------------- LoRA


def _adapted(path, leaf) -> bool:
  return getattr(path[-1], "key", None) == "kernel" and jnp.ndim(leaf) == 2


def lora_init(params, rank: int, key) -> dict:
  """{path: {"a": [in, rank], "b": [rank, out] zeros}} for every 2-D Dense kernel of `params`."""
  adapter = {}
  for i, (path, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(params)[0]):
    if _adapted(path, leaf):
      d_in, d_out = leaf.shape
      a = jax.random.normal(jax.random.fold_in(key, i), (d_in, rank), leaf.dtype) / jnp.sqrt(d_in)
      adapter[jax.tree_util.keystr(path)] = {"a": a, "b": jnp.zeros((rank, d_out), leaf.dtype)}
  return adapter


def lora_merge(params, adapter: dict, scale: float):
  """params with W + scale * A @ B on every adapted kernel (the base tree is not modified)."""
  def merge(path, leaf):
    ab = adapter.get(jax.tree_util.keystr(path))
    return leaf if ab is None else leaf + scale * ab["a"] @ ab["b"]
  return jax.tree_util.tree_map_with_path(merge, params)


# ------------------------------------------------------------------------------------------- the run


def episode_weights(episode, episode_return, weighting: str, top_fraction: float):
  """Per-step weights [B] from each step's episode index [B] (-1: empty) and a ring of episode returns
  (slot e % len; nan until the episode finishes). Unfinished episodes weigh 0; "all" keeps every finished
  one; "top" those whose return is at least the `top_fraction` quantile over the finished steps."""
  ring = episode_return.shape[0]
  ret = jnp.where(episode >= 0, episode_return[jnp.maximum(episode, 0) % ring], jnp.nan)
  finished = ~jnp.isnan(ret)
  if weighting == "all":
    return finished.astype(jnp.float32)
  thr = jnp.nanquantile(jnp.where(finished, ret, jnp.nan), top_fraction)
  return (finished & (ret >= thr)).astype(jnp.float32)


class HybridResult(NamedTuple):
  """episode_return / episode_end / num_episodes as in `rollout.RolloutResult`; params: the final weights
  (the base weights, untouched, when adapter="lora"); adapter: the final adapter ({} without one); loss:
  the mean self-distillation loss of each segment's updates [segments] (nan with sgd_steps=0)."""
  episode_return: jax.Array
  episode_end: jax.Array
  num_episodes: jax.Array
  params: Any
  adapter: Any
  loss: jax.Array


class _Buffer(NamedTuple):
  tokens: Tokens        # [B, ...] what the model saw at each step
  action: jax.Array     # [B] int32 what it did
  episode: jax.Array    # [B] int32 global episode index (-1: empty slot)


def make_hybrid_parts(model: TransitionTransformer, env, cfg, num_segments: int, max_episodes: int,
                      greedy: bool = False, temperature: float = 1.0, epsilon: float = 0.0,
                      epsilon_decay: int = 0):
  """The hybrid cut into (init, advance, finish), so it can run as one scan (`make_hybrid`) or in chunks of
  segments from the host (`chunked.make_chunked_hybrid`) with the same result:
    init(params, env_params, key) -> carry
    advance(params, env_params, key, carry, s0, length, masked) -> carry   (segments s0 .. s0 + length - 1;
      masked: segments past the last one leave the carry as it is)
    finish(params, carry) -> HybridResult
  Segment s's keys do not depend on how the segments are chunked."""
  validate(cfg, model.context_len)
  if num_segments < 1 or max_episodes < 1:
    raise ValueError(f"num_segments and max_episodes must be >= 1 (got {num_segments}, {max_episodes})")
  act_steps, sgd_steps = int(cfg.act_steps), int(cfg.sgd_steps)
  buf_len, seq_len, batch = int(cfg.buffer_steps), int(cfg.seq_len), int(cfg.batch_size)
  ring = buf_len + 1                     # episode-return slots: the buffer never holds more episodes
  ctx, num_actions = model.context_len, model.num_actions
  horizon = num_segments * act_steps
  use_lora = cfg.adapter == "lora"
  scale = float(cfg.lora_alpha) / int(cfg.lora_rank)
  top_q = float(cfg.top_fraction)
  chain = [optax.adamw(float(cfg.lr), weight_decay=float(cfg.weight_decay))]
  if float(cfg.max_grad_norm) > 0:
    chain.insert(0, optax.clip_by_global_norm(float(cfg.max_grad_norm)))
  opt = optax.chain(*chain)

  def effective(base, trainable):
    return lora_merge(base, trainable, scale) if use_lora else trainable

  act = action_fn(greedy, temperature, epsilon, epsilon_decay)
  fit_choice = explores(epsilon, epsilon_decay)

  def loss_fn(trainable, base, buf, weight, key):
    starts = jax.random.randint(key, (batch,), 0, buf_len - seq_len + 1)
    idx = starts[:, None] + jnp.arange(seq_len)[None]
    toks = jax.tree.map(lambda x: x[idx], buf.tokens)
    valid = buf.episode[idx] >= 0
    w = weight[idx]
    params = effective(base, trainable)
    logits = jax.vmap(model.apply, in_axes=(None, 0, 0))(params, toks, valid)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, buf.action[idx])
    return (w * ce).sum() / jnp.maximum(w.sum(), 1.0)

  def update(carry, key, base, buf, weight):
    trainable, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(trainable, base, buf, weight, key)
    upd, opt_state = opt.update(grads, opt_state, trainable)
    return (optax.apply_updates(trainable, upd), opt_state), loss

  def prefill(params, buf: _Buffer):
    """A fresh cache holding the buffer's last `ctx` (valid) tokens, keys computed with `params`."""
    toks = jax.tree.map(lambda x: x[-ctx:], buf.tokens)
    valid = buf.episode[-ctx:] >= 0

    def one(cache, inp):
      tok, ok = inp
      _, new = model.apply(params, tok, cache, method=TransitionTransformer.decode)
      return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, cache), None
    return jax.lax.scan(one, model.init_cache(), (toks, valid))[0]

  def keys_of(key):
    """(k_reset, k_adapter, step keys [num_segments, act_steps], SGD keys [num_segments])."""
    k_reset, k_steps = jax.random.split(key)
    k_adapter, k_sgd = jax.random.split(jax.random.fold_in(k_reset, 1))
    return (k_reset, k_adapter, jax.random.split(k_steps, horizon).reshape(num_segments, act_steps),
            jax.random.split(k_sgd, num_segments))

  def init(params, env_params, key):
    k_reset, k_adapter, _, _ = keys_of(key)
    obs, env_state = env.reset(k_reset, env_params)
    tok = first_tokens(obs, num_actions)
    trainable = lora_init(params, int(cfg.lora_rank), k_adapter) if use_lora else params
    opt_state = opt.init(trainable)
    buf = _Buffer(tokens=jax.tree.map(lambda x: jnp.zeros((buf_len,) + jnp.shape(x), jnp.asarray(x).dtype), tok),
                  action=jnp.zeros((buf_len,), jnp.int32), episode=jnp.full((buf_len,), -1, jnp.int32))
    return (trainable, opt_state, model.init_cache(), tok, env_state, jnp.float32(0.0), jnp.int32(0),
            jnp.full((max_episodes,), jnp.nan, jnp.float32), jnp.full((max_episodes,), -1, jnp.int32),
            jnp.full((ring,), jnp.nan, jnp.float32), buf, jnp.full((num_segments,), jnp.nan, jnp.float32))

  def advance(params, env_params, key, carry, s0, length: int, masked: bool):
    def env_step(carry, inp):
      eff, cache, tok, env_state, ep_ret, n_ep, rets, ends, ring_ret = carry
      t, k = inp
      k_act, k_env = jax.random.split(k)
      logits, cache = model.apply(eff, tok, cache, method=TransitionTransformer.decode)
      action, choice = act(logits, k_act, t)
      obs, env_state, reward, term, trunc, _ = env.step(k_env, env_state, action, env_params)
      done = jnp.logical_or(term, trunc)
      ep_ret = ep_ret + reward
      ring_ret = jnp.where(done, ring_ret.at[n_ep % ring].set(ep_ret), ring_ret)
      # What SGD fits: the action taken, or with epsilon > 0 (or decaying) the choice it explored around
      # (the greedy choice a model of greedy labels predicts).
      rec = (tok, choice if fit_choice else action, n_ep)
      ep_ret, n_next, rets, ends = record_episode_end(t, done, ep_ret, n_ep, rets, ends, max_episodes)
      tok = Tokens(obs=obs, prev_action=action, prev_reward=reward.astype(jnp.float32), prev_done=done,
                   prev_explore=action != choice)
      carry = (eff, cache, tok, env_state, ep_ret, n_next, rets, ends, ring_ret)
      return carry, rec

    def segment(carry, inp):
      trainable, opt_state, cache, tok, env_state, ep_ret, n_ep, rets, ends, ring_ret, buf, losses = carry
      s, ks, k_upd = inp
      ts = s * act_steps + jnp.arange(act_steps, dtype=jnp.int32)
      eff = effective(params, trainable)
      inner = (eff, cache, tok, env_state, ep_ret, n_ep, rets, ends, ring_ret)
      inner, (rtok, ract, rep) = jax.lax.scan(env_step, inner, (ts, ks))
      _, cache, tok, env_state, ep_ret, n_ep, rets, ends, ring_ret = inner
      buf = _Buffer(*jax.tree.map(lambda old, new: jnp.concatenate([old, new])[-buf_len:],
                                  tuple(buf), (rtok, ract, rep)))
      if sgd_steps:
        weight = episode_weights(buf.episode, ring_ret, cfg.weighting, top_q)
        (trainable, opt_state), step_losses = jax.lax.scan(
            lambda c, k: update(c, k, params, buf, weight), (trainable, opt_state),
            jax.random.split(k_upd, sgd_steps))
        cache = prefill(effective(params, trainable), buf)
        losses = losses.at[s].set(step_losses.mean())
      return (trainable, opt_state, cache, tok, env_state, ep_ret, n_ep, rets, ends, ring_ret, buf, losses), None

    _, _, step_keys, sgd_keys = keys_of(key)
    ss = s0 + jnp.arange(length, dtype=jnp.int32)
    if not masked:
      inp = (ss, jax.lax.dynamic_slice_in_dim(step_keys, s0, length),
             jax.lax.dynamic_slice_in_dim(sgd_keys, s0, length))
      return jax.lax.scan(segment, carry, inp)[0]
    # The last chunk where the chunk length does not divide the segments: segments past the last leave the
    # carry as it is (s0 is the same for every vmapped run, so this stays a real branch under vmap).
    last = jnp.minimum(ss, num_segments - 1)
    return jax.lax.scan(lambda c, i: jax.lax.cond(i[0] < num_segments, segment, lambda c, _: (c, None), c, i),
                        carry, (ss, step_keys[last], sgd_keys[last]))[0]

  def finish(params, carry):
    trainable, n_ep, rets, ends, losses = carry[0], carry[6], carry[7], carry[8], carry[11]
    return HybridResult(episode_return=rets, episode_end=ends, num_episodes=n_ep,
                        params=params if use_lora else trainable, adapter=trainable if use_lora else {},
                        loss=losses)

  return init, advance, finish


def make_hybrid(model: TransitionTransformer, env, cfg, num_segments: int, max_episodes: int,
                greedy: bool = False, temperature: float = 1.0, epsilon: float = 0.0, epsilon_decay: int = 0):
  """`run(params, env_params, key) -> HybridResult` over num_segments * cfg.act_steps environment steps."""
  init, advance, finish = make_hybrid_parts(model, env, cfg, num_segments, max_episodes, greedy, temperature,
                                            epsilon, epsilon_decay)

  def run(params, env_params, key):
    return finish(params, advance(params, env_params, key, init(params, env_params, key), 0, num_segments, False))

  return run


def make_batched_hybrid(model, env, cfg, num_segments: int, max_episodes: int, greedy: bool = False,
                        temperature: float = 1.0, epsilon: float = 0.0, epsilon_decay: int = 0):
  """`fn(params [M, ...], env_params [K], keys [M, K]) -> HybridResult [M, K, ...]`, jitted. The final
  weights are dropped (each (model, task) pair has its own copy); use `make_hybrid` to keep them."""
  one = make_hybrid(model, env, cfg, num_segments, max_episodes, greedy=greedy, temperature=temperature,
                    epsilon=epsilon, epsilon_decay=epsilon_decay)

  def slim(params, env_params, key):
    r = one(params, env_params, key)
    return r._replace(params=None, adapter=None)
  return jax.jit(jax.vmap(jax.vmap(slim, in_axes=(None, 0, 0)), in_axes=(0, None, 0)))
