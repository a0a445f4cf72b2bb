"""Imitation learning by next-action prediction, N models in one XLA program.

`make_learner(cfg, model)` gives pure functions over an `ImitatorState` whose every leaf has a leading
model axis [M]. Each model belongs to an *arm* (AD, snapshot BC, DPT, AD-epsilon, a truncated history
set ...) and a seed: all arms' training steps live in one flat `DeviceData`, and arm `a` draws windows
from its own list of valid window starts, `starts[a, :n_starts[a]]`, so arms whose data differ in size
still share one vmapped update.

A training window is `seq_len` consecutive steps of one history (never crossing into another). The model
attends `context_len` steps back in every layer (sliding-window attention, the same function the cached
rollout computes), and the loss is the cross-entropy of every step's label (the recorded action, or a
relabelled one) under the model's logits, over the window's steps that lie inside its history (a window
of a history shorter than `seq_len` is padded and masked). Optimiser: AdamW with global gradient-norm
clipping, its learning rate warming up and decaying over each model's own update budget
(`learning_rate`; an arm that stops early still ran its whole schedule).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from cl_limits.histories import windows
from cl_limits.histories.datasets import DeviceData
from cl_limits.models.transformer import TOKEN_KINDS, Tokens, TransitionTransformer


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      seq_len=160,                 # steps per training window (>= context_len; see docs/imitators.md)
      batch_size=64,               # windows per update, per model
      num_updates=1_000,
      updates_per_segment=100,     # one jitted scan; checkpoint + logs after each
      lr=1e-3, warmup_updates=100, end_lr_fraction=0.1, weight_decay=1e-4, max_grad_norm=1.0,
      b1=0.9, b2=0.99,
      # models_at_once: how many of the program's models one update step computes together. 0: all of them
      # (one vmapped batch: what an accelerator wants); k > 0: k at a time, one group after another
      # (`jax.lax.map`), whose smaller working set stays in a CPU's caches (1.2-1.35x on 2 cores; the CPU
      # study configs set 1). The same updates to float rounding either way.
      models_at_once=0,
  ))


def default_model_config() -> ml_collections.ConfigDict:
  # attention_chunk: query block size of the training pass (`transformer.chunked_attention`; 0: one
  # [T, T] block). It changes speed only, not the function: the logits agree to float rounding.
  # frame_encoder: "linear" (a frame's bits flattened and projected) or "patch" (p x p patches through a
  # shared dense layer and a GELU first; MinAtar frames only, not with augmented arms); see transformer.py.
  # tokens: "step" (obs_t, action_{t-1}, reward_{t-1}, done_{t-1}) or "transition" (obs_{t-1} as well).
  # mark_explore: each token also says whether action_{t-1} was exploratory (not the actor's greedy one).
  return ml_collections.ConfigDict(dict(context_len=80, layers=4, width=64, heads=4, attention_chunk=32,
                                        frame_encoder="linear", patch=2, patch_features=16, tokens="step",
                                        mark_explore=False))


def validate(train_cfg, model_cfg) -> None:
  """ValueError naming the field for malformed training / model settings."""
  def need(ok, field, msg):
    if not ok:
      raise ValueError(f"{field}: {msg}")
  m, t = model_cfg, train_cfg
  need(int(m.context_len) >= 1, "model.context_len", f"must be >= 1 (got {m.context_len})")
  need(int(m.layers) >= 1, "model.layers", f"must be >= 1 (got {m.layers})")
  need(int(m.heads) >= 1 and int(m.width) % int(m.heads) == 0, "model.width",
       f"must be a positive multiple of heads={m.heads} (got {m.width})")
  need(int(t.seq_len) >= int(m.context_len), "train.seq_len",
       f"must be >= model.context_len={m.context_len} (got {t.seq_len}): training windows shorter than "
       "the context never show the model a full context")
  need(str(m.get("tokens", "step")) in TOKEN_KINDS, "model.tokens", f"must be 'step' or 'transition' (got {m.get('tokens')!r})")
  need(int(t.batch_size) >= 1, "train.batch_size", f"must be >= 1 (got {t.batch_size})")
  need(int(t.num_updates) >= 1, "train.num_updates", f"must be >= 1 (got {t.num_updates})")
  need(int(t.updates_per_segment) >= 1 and int(t.num_updates) % int(t.updates_per_segment) == 0,
       "train.updates_per_segment",
       f"must divide num_updates={t.num_updates} (got {t.updates_per_segment})")
  need(float(t.lr) > 0, "train.lr", f"must be > 0 (got {t.lr})")
  need(0 <= int(t.warmup_updates) < int(t.num_updates), "train.warmup_updates",
       f"must be in [0, num_updates) (got {t.warmup_updates})")
  need(int(t.get("models_at_once", 0)) >= 0, "train.models_at_once",
       f"must be >= 0 (0: every model in one batch; got {t.get('models_at_once')})")


def make_model(model_cfg, num_actions: int, obs_nvec=None) -> TransitionTransformer:
  return TransitionTransformer(num_actions=int(num_actions), context_len=int(model_cfg.context_len),
                               layers=int(model_cfg.layers), width=int(model_cfg.width),
                               heads=int(model_cfg.heads),
                               attention_chunk=int(model_cfg.get("attention_chunk", 32)),
                               frame_encoder=str(model_cfg.get("frame_encoder", "linear")),
                               patch=int(model_cfg.get("patch", 2)),
                               patch_features=int(model_cfg.get("patch_features", 16)),
                               tokens=str(model_cfg.get("tokens", "step")),
                               mark_explore=bool(model_cfg.get("mark_explore", False)),
                               obs_nvec=None if obs_nvec is None else tuple(int(n) for n in obs_nvec))


def make_optimizer(cfg) -> optax.GradientTransformation:
  """AdamW under the schedule of `cfg.num_updates` updates (the hybrid's test-time SGD uses it)."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=float(cfg.lr), warmup_steps=int(cfg.warmup_updates),
      decay_steps=int(cfg.num_updates), end_value=float(cfg.lr) * float(cfg.end_lr_fraction))
  chain = [optax.adamw(schedule, b1=float(cfg.b1), b2=float(cfg.b2), weight_decay=float(cfg.weight_decay))]
  if float(cfg.max_grad_norm) > 0:
    chain.insert(0, optax.clip_by_global_norm(float(cfg.max_grad_norm)))
  return optax.chain(*chain)


def make_direction(cfg) -> optax.GradientTransformation:
  """AdamW's update direction without the learning rate (clip, Adam, decoupled weight decay): the
  imitation learner scales it by each model's own schedule (`learning_rate`)."""
  chain = [optax.scale_by_adam(b1=float(cfg.b1), b2=float(cfg.b2)),
           optax.add_decayed_weights(float(cfg.weight_decay))]
  if float(cfg.max_grad_norm) > 0:
    chain.insert(0, optax.clip_by_global_norm(float(cfg.max_grad_norm)))
  return optax.chain(*chain)


def warmup_for(cfg, budget):
  """An arm's warmup: the config's warmup_updates scaled to the arm's budget (the global schedule's shape
  on the arm's own length), at least 1 update when the config has any warmup."""
  w = np.round(float(cfg.warmup_updates) * np.asarray(budget, np.float64) / float(cfg.num_updates))
  return np.where(float(cfg.warmup_updates) > 0, np.maximum(w, 1), 0).astype(np.int32)


def learning_rate(cfg, update, budget, warmup):
  """The learning rate of 1-based update `update` of a model whose schedule is `budget` updates long with
  `warmup` of them warming up: linear from lr / warmup to lr at update `warmup`, then cosine to
  lr * end_lr_fraction at update `budget` (and held there)."""
  peak, end = float(cfg.lr), float(cfg.lr) * float(cfg.end_lr_fraction)
  u = jnp.asarray(update, jnp.float32)
  w = jnp.asarray(warmup, jnp.float32)
  b = jnp.asarray(budget, jnp.float32)
  warm = peak * u / jnp.maximum(w, 1.0)
  frac = jnp.clip((u - w) / jnp.maximum(b - w, 1.0), 0.0, 1.0)
  decay = end + (peak - end) * 0.5 * (1.0 + jnp.cos(np.pi * frac))
  return jnp.where(u <= w, warm, decay)


@struct.dataclass
class ImitatorState:
  params: Any
  opt_state: Any
  step: chex.Array       # int32 updates done
  rng: chex.Array        # raw key data (orbax cannot restore typed keys)


class Metrics(NamedTuple):
  loss: jax.Array        # [updates] mean cross-entropy of the batch (its steps inside their histories)
  accuracy: jax.Array    # [updates] argmax == label
  lr: jax.Array          # [updates] the learning rate this update was applied with


def gather(data: DeviceData, idx, num_actions: int):
  """Tokens and labels at flat indices idx [..., T]; a history's first step has no previous transition."""
  has_prev = idx > data.history_start[idx]
  prev = jnp.where(has_prev, idx - 1, idx)
  tokens = Tokens(obs=data.obs[idx],
                  prev_action=jnp.where(has_prev, data.action[prev], num_actions),
                  prev_reward=jnp.where(has_prev, data.reward[prev], 0.0),
                  prev_done=jnp.where(has_prev, data.done[prev], True),
                  prev_explore=has_prev & data.explore[prev])
  return tokens, data.label[idx]


def draw_windows(key, data: DeviceData, starts, n_starts, group, batch: int, seq_len: int):
  """(idx, valid) [batch, seq_len] of `batch` windows drawn uniformly from group `group`'s legal starts
  `starts[group, :n_starts[group]]` (windows.legal_starts): steps past the history's end are not valid."""
  pick = jax.random.randint(key, (batch,), 0, n_starts[group])
  return windows.window_at(starts[group, pick], data.history_end, seq_len)


def example_tokens(data: DeviceData, seq_len: int, num_actions: int) -> Tokens:
  idx = jnp.minimum(jnp.arange(seq_len), data.action.shape[0] - 1)
  return gather(data, idx, num_actions)[0]


@struct.dataclass
class Learner:
  init: Any = struct.field(pytree_node=False)       # (key, tokens) -> ImitatorState (one model)
  segment: Any = struct.field(pytree_node=False)    # (state [M], data, starts, n_starts, group [M]) -> (state, Metrics [M, U])
  model: Any = struct.field(pytree_node=False)
  optimizer: Any = struct.field(pytree_node=False)
  tokens_per_update: int = struct.field(pytree_node=False)


def augment_window(key, tokens: Tokens, labels, num_actions: int, on):
  """GPICL-style task augmentation of one window (Kirsch et al. 2022): when `on`, the flattened
  observations go through a random Gaussian projection (in_dim x in_dim, entries N(0, 1/in_dim)) and the
  actions through a random permutation, both fixed for the window, as if it came from a new task
  (cl_limits.envs.RandomProjection over ActionPermutation, with action a of the new task playing
  recorded action perm[a]). When not `on`, the observations are only flattened to float (same shapes, so
  augmented and plain arms train in one vmapped program)."""
  t = tokens.prev_action.shape[0]
  obs = tokens.obs.reshape((t, -1)).astype(jnp.float32)
  k_m, k_p = jax.random.split(key)
  in_dim = obs.shape[-1]
  matrix = jax.random.normal(k_m, (in_dim, in_dim), jnp.float32) / jnp.sqrt(jnp.float32(in_dim))
  perm = jax.random.permutation(k_p, num_actions)
  inv = jnp.argsort(perm)                          # recorded action b is new-task action inv[b]
  prev = tokens.prev_action
  aug = tokens.replace(obs=obs @ matrix,
                       prev_action=jnp.where(prev < num_actions, inv[jnp.minimum(prev, num_actions - 1)], prev))
  plain = tokens.replace(obs=obs)
  out = jax.tree.map(lambda a, b: jnp.where(on, a, b), aug, plain)
  return out, jnp.where(on, inv[labels], labels)


def make_learner(cfg, model: TransitionTransformer, augment=None, budgets=None) -> Learner:
  """augment: optional bool per window group [G] (a group is the rows `starts[g]` a model draws from: one
  arm's data, or one arm's data of one replicate); the windows of a group marked True are augmented
  (`augment_window`), and every group's observations are then flattened to float.
  budgets: optional update budget per group [G] (default: cfg.num_updates for every group): a model of
  group g warms up and decays its learning rate over budgets[g] updates (`learning_rate`), so arms with
  different budgets each run their whole schedule in one vmapped program.
  cfg.models_at_once: models per step of the segment (0: all, vmapped; k: k at a time, `lax.map`)."""
  direction = make_direction(cfg)
  seq_len, batch = int(cfg.seq_len), int(cfg.batch_size)
  num_actions = model.num_actions
  augment = None if augment is None or not np.any(augment) else jnp.asarray(np.asarray(augment, bool))
  budgets_np = None if budgets is None else np.asarray(budgets, np.int32)
  budget_of = (lambda g: jnp.int32(int(cfg.num_updates))) if budgets_np is None else (
      lambda g: jnp.asarray(budgets_np)[g])
  warmup_of = (lambda g: jnp.int32(int(warmup_for(cfg, int(cfg.num_updates))))) if budgets_np is None else (
      lambda g: jnp.asarray(warmup_for(cfg, budgets_np))[g])

  def init(key, tokens) -> ImitatorState:
    k_init, k_rng = jax.random.split(key)
    params = model.init(k_init, tokens)
    return ImitatorState(params=params, opt_state=direction.init(params), step=jnp.int32(0),
                         rng=jax.random.key_data(k_rng))

  def loss_fn(params, tokens, labels, valid):
    logits = jax.vmap(model.apply, in_axes=(None, 0))(params, tokens)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    acc = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    w = valid.astype(jnp.float32)
    n = jnp.maximum(w.sum(), 1.0)
    return (ce * w).sum() / n, (acc * w).sum() / n

  def update(state: ImitatorState, data, starts, n_starts, arm):
    key = jax.random.wrap_key_data(state.rng)
    key, k_pick = jax.random.split(key)
    idx, valid = draw_windows(k_pick, data, starts, n_starts, arm, batch, seq_len)
    tokens, labels = gather(data, idx, num_actions)
    if augment is not None:
      key, k_aug = jax.random.split(key)
      tokens, labels = jax.vmap(augment_window, in_axes=(0, 0, 0, None, None))(
          jax.random.split(k_aug, batch), tokens, labels, num_actions, augment[arm])
    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, tokens, labels, valid)
    updates, opt_state = direction.update(grads, state.opt_state, state.params)
    lr = learning_rate(cfg, state.step + 1, budget_of(arm), warmup_of(arm))
    params = jax.tree.map(lambda p, u: p - lr * u, state.params, updates)
    state = ImitatorState(params=params, opt_state=opt_state, step=state.step + 1,
                          rng=jax.random.key_data(key))
    return state, Metrics(loss=loss, accuracy=acc, lr=lr)

  def one_model_segment(state, data, starts, n_starts, arm):
    return jax.lax.scan(lambda s, _: update(s, data, starts, n_starts, arm), state, None,
                        length=int(cfg.updates_per_segment))

  at_once = int(cfg.get("models_at_once", 0))
  if at_once <= 0:
    segment = jax.vmap(one_model_segment, in_axes=(0, None, None, None, 0))
  else:
    def segment(state, data, starts, n_starts, arm):
      return jax.lax.map(lambda sa: one_model_segment(sa[0], data, starts, n_starts, sa[1]), (state, arm),
                         batch_size=at_once)
  return Learner(init=init, segment=segment, model=model, optimizer=direction,
                 tokens_per_update=seq_len * batch)


def widened_obs_nvec(nvec, others):
  """Per-entry cardinalities one embedding must cover: `nvec` widened to every one of `others` (entries an
  observation lacks read as 0), so one imitator can act in several envs. None when nvec is None."""
  if nvec is None:
    return None
  nvec = list(nvec)
  for other in others:
    nvec += [0] * (len(other) - len(nvec))
    nvec = [max(a, b) for a, b in zip(nvec, list(other) + [0] * (len(nvec) - len(other)))]
  return tuple(nvec)


def model_keys(seed: int, num_arms: int, num_seeds: int):
  """Keys [A * S]: seed s of every arm gets fold_in(key(seed + 1), s), the same for every arm, so arms are
  compared pairwise from the same initial weights."""
  base = jax.random.key(seed + 1)
  return jnp.stack([jax.random.fold_in(base, s) for _ in range(num_arms) for s in range(num_seeds)])


def arm_params(params, arms, name: str, num_seeds: int):
  """The seeds of one arm from params stacked arm-major over models [A * S, ...] -> [S, ...]."""
  i = list(arms).index(name)
  return jax.tree.map(lambda x: x[i * num_seeds:(i + 1) * num_seeds], params)
