"""Fidelity: how far an imitator is from the exact policy that made its data, in nats, on held-out data.

Every recorded step carries its behaviour policy (`History.greedy`, `History.epsilon`: epsilon-greedy
around the DQN's greedy action, or AD-epsilon's demonstrator with its noise), so for every held-out step

  KL(behaviour || imitator) = CE(behaviour, imitator) - H(behaviour)     (nats, >= 0, 0 = exact imitation)

is computed exactly, not sampled: CE(b, pi) = -sum_a b(a) log pi(a), H(b) = -sum_a b(a) log b(a). The
imitator's negative log-likelihood of the recorded action (NLL) is its sampled estimate of CE.

Actions with the same effect are one action here: an env may declare `action_classes` (MinAtar: the
actions a game lacks act as its no-op) or, where the effect depends on the state, `action_classes_at(obs)`
(DarkRoom: a move into a wall stays put, as the stay action does; Breakout: left with the paddle at the
left wall, right at the right wall), and kl / ce / entropy are then taken over the classes (b and pi
summed within each class). A DQN's argmax among equivalent actions is decided by noise in its Q-values (in
Breakout four of the six actions are the no-op, and 45% of the teachers' greedy actions fall among them;
in DarkRoom 28% of the held-out steps of snapshot BC's data stand on a goal by a wall, where stay and the
moves into the wall are one action), which no imitator can or should reproduce; `kl_actions` keeps the KL
over the raw actions beside it.

Held-out data are each learner's last stream(s), never trained on, cut like the training streams (the same
portion, fraction and gap). They are tiled into consecutive windows of `seq_len` steps (the last one of a
history padded and masked), the distribution the training windows are drawn from, so a step's context
reaches back to its window's start. Long held-out sets are subsampled to at most `max_windows` evenly
spaced windows per model.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from cl_limits.histories import datasets, windows
from cl_limits.histories.history import behaviour_probs

STATS = ("kl", "ce", "entropy", "nll", "kl_actions")
POSITIONS = ("early", "middle", "late")     # thirds of each kept history


def tile_starts(lengths, seq_len: int, max_windows: int) -> np.ndarray:
  """Flat starts of consecutive, non-overlapping windows of `seq_len` over histories of `lengths` (flat
  order); at most `max_windows` of them, evenly spaced (0: all)."""
  lengths = np.asarray(lengths, np.int64)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  starts = np.concatenate([np.arange(offsets[h], offsets[h + 1], seq_len) for h in range(len(lengths))]
                          or [np.zeros((0,), np.int64)])
  if max_windows and starts.size > max_windows:
    starts = starts[np.unique(np.linspace(0, starts.size - 1, max_windows).round().astype(np.int64))]
  return starts


@dataclasses.dataclass
class HeldOut:
  """Every window group's held-out data in one flat set (group g: arm a, replicate r)."""
  data: datasets.DeviceData
  greedy: jax.Array            # [N] int32
  epsilon: jax.Array           # [N] float32
  starts: np.ndarray           # [G, W] flat window starts, padded with 0
  n_windows: np.ndarray        # [G]
  position: np.ndarray         # [N] float: fraction of the way through its kept history, in [0, 1)
  time: np.ndarray             # [N] int: the step's index in its stream (before selection)
  recorded: np.ndarray         # [G] bool: the behaviour policy is on record for every step of the group
  steps: np.ndarray            # [G] held-out steps of the group (before subsampling)


def held_out(parts: list, seq_len: int, max_windows: int) -> HeldOut:
  """parts: one FlatData per window group (its held-out streams)."""
  flat, _ = datasets.concat(parts)
  offset, per_group = 0, []
  for fd in parts:
    per_group.append(tile_starts(fd.lengths, seq_len, max_windows) + offset)
    offset += fd.num_steps
  n = np.array([len(s) for s in per_group], np.int32)
  starts = np.zeros((len(parts), max(int(n.max()), 1)), np.int32)
  for g, s in enumerate(per_group):
    starts[g, :len(s)] = s
  position = np.concatenate([np.arange(length) / length for length in flat.lengths]) if flat.num_steps else np.zeros(0)
  recorded = np.array([fd.num_steps > 0 and bool(np.all(fd.greedy >= 0) and np.all(np.isfinite(fd.epsilon)))
                       for fd in parts])
  greedy = np.where(flat.greedy >= 0, flat.greedy, 0)
  eps = np.where(np.isfinite(flat.epsilon), flat.epsilon, 1.0)
  return HeldOut(data=datasets.to_device(flat), greedy=jnp.asarray(greedy, jnp.int32),
                 epsilon=jnp.asarray(eps, jnp.float32), starts=starts, n_windows=n, position=position,
                 time=np.asarray(flat.time), recorded=recorded,
                 steps=np.array([fd.num_steps for fd in parts], np.int64))


@struct.dataclass
class StepStats:
  """Per model, window and step [M, W, T]: the statistics (kl, ce, entropy over action classes; nll of the
  recorded action; kl_actions over the raw actions), whether the step counts, its flat index."""
  kl: jax.Array
  ce: jax.Array
  entropy: jax.Array
  nll: jax.Array
  valid: jax.Array
  idx: jax.Array
  kl_actions: jax.Array


def class_matrix(num_actions: int, action_classes=None) -> np.ndarray:
  """[A, K] 0/1: action a belongs to class action_classes[a] (identity when None)."""
  classes = np.arange(num_actions) if action_classes is None else np.asarray(action_classes, np.int64)
  if classes.shape != (num_actions,) or classes.min() < 0:
    raise ValueError(f"action_classes must give a class >= 0 to each of {num_actions} actions (got {classes})")
  return (classes[:, None] == np.arange(int(classes.max()) + 1)[None, :]).astype(np.float32)


def class_ids(num_actions: int, action_classes=None) -> np.ndarray:
  """[A] int: the class of each action (`class_matrix` as ids)."""
  return np.argmax(class_matrix(num_actions, action_classes), -1)


def classes_of(env):
  """The env's `action_classes_at` (each action's class at an observation, where effects depend on the
  state), or None (its fixed `action_classes` then hold everywhere)."""
  return getattr(env, "action_classes_at", None)


def classes_rule(env) -> str:
  """The env's `action_classes_rule`: one line saying which actions count as one at which states ('' when
  its classes are fixed)."""
  return str(getattr(env, "action_classes_rule", "") or "")


def for_env(model, seq_len: int, env, flatten_obs: bool = False, explores=None):
  """`make_fidelity` with the env's classes: fixed (`action_classes`) and by state (`action_classes_at`)."""
  return make_fidelity(model, seq_len, model.num_actions, flatten_obs=flatten_obs,
                       action_classes=getattr(env, "action_classes", None), classes_at=classes_of(env),
                       explores=explores)


def make_fidelity(model, seq_len: int, num_actions: int, flatten_obs: bool = False, action_classes=None,
                  classes_at=None, explores=None):
  """`run(params [M, ...], heldout, group [M]) -> StepStats [M, W, T]` (jitted): model m is scored on
  group[m]'s held-out windows. flatten_obs: the models were trained on observations flattened to float
  (a run with augmented arms: `learner.augment_window`'s plain path). action_classes: the class of each
  action (actions of one class have the same effect); classes_at: `fn(obs [W, T, ...]) -> int32 [W, T, A]`,
  the class of each action at each step's observation (`classes_of(env)`; overrides action_classes);
  kl, ce and entropy are over classes. explores: optional bool per group [G], the groups whose models
  predict the learner's greedy choice (labels "greedy") and act epsilon-greedily around it: their policy
  at a step is (1 - epsilon) softmax(logits) + epsilon / A with the step's recorded epsilon, the policy
  they would act with if they knew the learner's exploration rate there."""
  from cl_limits.imitation import learner as learner_lib  # noqa: PLC0415
  fixed = jnp.asarray(class_ids(num_actions, action_classes), jnp.int32)   # [A]

  explores = None if explores is None else jnp.asarray(np.asarray(explores, bool))

  def one(params, data, greedy, eps, starts, n_windows, explore):
    w = starts.shape[0]
    idx, valid = windows.window_at(starts, data.history_end, seq_len)             # [W, T]
    valid = valid & (jnp.arange(w) < n_windows)[:, None]
    tokens, _ = learner_lib.gather(data, idx, num_actions)
    if flatten_obs:
      tokens = tokens.replace(obs=tokens.obs.reshape(tokens.obs.shape[:2] + (-1,)).astype(jnp.float32))
    logp = jax.nn.log_softmax(jax.vmap(model.apply, in_axes=(None, 0))(params, tokens), axis=-1)
    e = jnp.where(explore, jnp.nan_to_num(eps[idx]), 0.0)[..., None]
    logp = jnp.where(explore, jnp.log((1.0 - e) * jnp.exp(logp) + e / num_actions), logp)
    b = behaviour_probs(greedy[idx], eps[idx], num_actions)
    kl_actions = jnp.maximum(jnp.sum(jax.scipy.special.xlogy(b, b) - b * logp, -1), 0.0)
    cls = classes_at(data.obs[idx]) if classes_at is not None else jnp.broadcast_to(fixed, idx.shape + fixed.shape)
    merge = jax.nn.one_hot(cls, num_actions, dtype=b.dtype)         # [W, T, A, K]: action a in class k here
    bk = jnp.einsum("wta,wtak->wtk", b, merge)                      # [W, T, K] per class
    logq = jnp.log(jnp.maximum(jnp.einsum("wta,wtak->wtk", jnp.exp(logp), merge), 1e-30))
    entropy = -jnp.sum(jax.scipy.special.xlogy(bk, bk), -1)
    ce = -jnp.sum(bk * logq, -1)
    nll = -jnp.take_along_axis(logp, data.action[idx][..., None], -1)[..., 0]
    return StepStats(kl=jnp.maximum(ce - entropy, 0.0), ce=ce, entropy=entropy, nll=nll, valid=valid, idx=idx,
                     kl_actions=kl_actions)

  @jax.jit
  def run(params, data, greedy, eps, starts, n_windows, group):
    explore = jnp.zeros(group.shape, bool) if explores is None else explores[group]
    return jax.vmap(one, in_axes=(0, None, None, None, 0, 0, 0))(params, data, greedy, eps, starts[group],
                                                                  n_windows[group], explore)

  def score(params, heldout: HeldOut, group):
    return jax.device_get(run(params, heldout.data, heldout.greedy, heldout.epsilon,
                              jnp.asarray(heldout.starts), jnp.asarray(heldout.n_windows), jnp.asarray(group)))
  return score


def summarize(stats: StepStats, heldout: HeldOut, group) -> dict:
  """Per model [M]: the mean of each statistic over its held-out steps, and the same over each third of
  the kept history ({stat}_{early|middle|late}); NaN where the behaviour policy is not recorded (nll
  needs no record)."""
  valid = np.asarray(stats.valid)
  idx = np.asarray(stats.idx)
  pos = np.minimum((heldout.position[idx] * len(POSITIONS)).astype(np.int64), len(POSITIONS) - 1)
  recorded = heldout.recorded[np.asarray(group)]
  out = {}
  for name in STATS:
    x = np.asarray(getattr(stats, name), np.float64)
    mean = lambda mask: np.where(mask.sum((1, 2)) > 0, (x * mask).sum((1, 2)) / np.maximum(mask.sum((1, 2)), 1), np.nan)
    keep = recorded if name != "nll" else np.ones_like(recorded)
    out[name] = np.where(keep, mean(valid), np.nan)
    for p, label in enumerate(POSITIONS):
      out[f"{name}_{label}"] = np.where(keep, mean(valid & (pos == p)), np.nan)
  out["steps_scored"] = valid.sum((1, 2))
  return out


def by_env_step(stats: StepStats, heldout: HeldOut, streams_per_learner: int, bins: int = 10):
  """(env_steps [B], kl [M, B]): mean KL per model in `bins` equal ranges of the learner's environment
  steps (stream step t is learner step (t + 1) * streams_per_learner), at each range's centre; NaN
  where a range holds no scored step."""
  valid = np.asarray(stats.valid)
  step = (heldout.time[np.asarray(stats.idx)] + 1) * int(streams_per_learner)
  lo, hi = float(step[valid].min()) if valid.any() else 0.0, float(step[valid].max()) if valid.any() else 1.0
  edges = np.linspace(lo, hi + 1, bins + 1)
  b = np.clip(np.searchsorted(edges, step, side="right") - 1, 0, bins - 1)
  kl = np.asarray(stats.kl, np.float64)
  out = np.full((kl.shape[0], bins), np.nan)
  for j in range(bins):
    m = valid & (b == j)
    cnt = m.sum((1, 2))
    out[:, j] = np.where(cnt > 0, (kl * m).sum((1, 2)) / np.maximum(cnt, 1), np.nan)
  return (edges[:-1] + edges[1:]) / 2, out


def _span(values) -> str:
  """'lo to hi' of values at 3 decimals, one figure where they agree; a rounding -0.000 reads 0.000 (a
  deterministic policy's entropy)."""
  lo, hi = (f"{v:.3f}".replace("-0.000", "0.000") for v in (np.min(values), np.max(values)))
  return lo if lo == hi else f"{lo} to {hi}"


def memorising(arms, data_meta, final_loss, log) -> dict:
  """{arm: [bool per replicate]}: its last training loss below the entropy of the behaviour policy that
  made its data (`datasets.behaviour_floor`, in the arms' data manifest), which no imitator can beat on
  streams it has not seen. Logs one line per arm that has a floor."""
  out = {}
  for i, a in enumerate(arms):
    floors = data_meta["arms"][a].get("behaviour_floor")
    if not floors or any(f is None for f in floors):
      continue
    ent = np.asarray([f["entropy"] for f in floors])
    loss = np.asarray(final_loss[i], np.float64)
    out[a] = (loss < ent).tolist()
    log(f"[imitation] {a}: last training loss {_span(loss)} over replicates, the behaviour "
        f"policy's entropy on its data {_span(ent)} nats"
        + (f": {int((loss < ent).sum())} of {len(loss)} replicates below it, fitting the exploration noise of "
           "their own streams (memorisation, not imitation)" if (loss < ent).any() else ""))
  return out
