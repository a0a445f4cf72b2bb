"""Imitation training data cut from learning histories: portions, the `gap` knob, streams, labels.

An *arm* of an imitation run names what its model is trained on:

  portion   "all" (Algorithm Distillation), "last" (snapshot BC: the teacher at its final skill) or
            "first" (the histories truncated at a fraction of training, for P2); `fraction` sets the size.
            Cuts fall on episode boundaries of each stream.
  start     with portion "first" or "all": drop each stream's episodes that begin before this fraction of
            its steps (e.g. the learner before its first update; 0: keep from the first step).
  gap       keep every `gap`-th episode of each stream (episode index % gap == 0).
  streams   use the first `streams` of each learner's parallel streams (0: all of them).
  labels    "action" (the recorded action), "oracle" (DPT: the env's optimal action for the observed
            state), "teacher" (XLand-100B's relabelling: the final teacher's greedy action) or "greedy"
            (the learner's own greedy action at that step, as recorded: what it knew then, without its
            epsilon; such an imitator acts with `evaluation.epsilon` around its choice).
  augment   True: every training window gets its own random observation projection and action
            permutation (GPICL's task augmentation, `imitation.learner.augment_window`).
  updates   how many of the run's `train.num_updates` this arm's models take (0: all of them); an arm
            that needs less (snapshot BC) leaves the rest of the budget to the ones that need more.

`select` turns [seeds, tasks, streams, T] histories into `FlatData`: the kept steps of every history
concatenated in history order, with each history's length, so that `windows.build_index` can draw
windows that never cross from one history into another. `concat` joins several arms' data into one
flat array set with per-arm offsets (the arms then train side by side in one vmapped program).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from cl_limits.histories.history import History, behaviour_probs

PORTIONS = ("all", "first", "last")
LABELS = ("action", "oracle", "teacher", "greedy")


@dataclasses.dataclass
class FlatData:
  """Host arrays of the kept steps, history after history; lengths [H] sums to N."""
  obs: np.ndarray
  action: np.ndarray
  label: np.ndarray
  reward: np.ndarray
  done: np.ndarray
  lengths: np.ndarray
  episodes: int     # complete episodes kept, over all histories
  time: np.ndarray | None = None      # each step's index in its stream (before selection)
  greedy: np.ndarray | None = None    # the behaviour policy's record (History.greedy / epsilon), -1 / NaN
  epsilon: np.ndarray | None = None   # where not recorded

  @property
  def num_steps(self) -> int:
    return int(self.lengths.sum())


@struct.dataclass
class DeviceData:
  """The flat arrays on device, plus the flat index where each step's history starts."""
  obs: jax.Array
  action: jax.Array
  label: jax.Array
  reward: jax.Array
  done: jax.Array
  history_start: jax.Array
  history_end: jax.Array     # flat index one past the last step of each step's history
  explore: jax.Array         # bool: the recorded action is not the behaviour policy's greedy one (False
                             # where the greedy action is not recorded)


ARM_DEFAULTS = dict(data="teacher", portion="all", fraction=1.0, gap=1, streams=0, labels="action",
                    augment=False, updates=0, start=0.0)


def resolve_arm(arm) -> dict:
  """An arm's fields with ARM_DEFAULTS filled in for the ones it leaves out (a plain dict)."""
  return {k: arm.get(k, d) for k, d in ARM_DEFAULTS.items()}


def validate_arm(name: str, arm) -> None:
  """ValueError naming the field `arms.<name>.<field>` for a malformed arm."""
  where = f"arms.{name}"
  a = resolve_arm(arm)
  if a["data"] not in ("teacher", "ad_eps"):
    raise ValueError(f"{where}.data: must be 'teacher' or 'ad_eps' (got {a['data']!r})")
  if a["portion"] not in PORTIONS:
    raise ValueError(f"{where}.portion: must be one of {PORTIONS} (got {a['portion']!r})")
  if not 0.0 < float(a["fraction"]) <= 1.0:
    raise ValueError(f"{where}.fraction: must be in (0, 1] (got {float(a['fraction'])})")
  start = float(a["start"])
  if not 0.0 <= start < 1.0 or (a["portion"] == "first" and start >= float(a["fraction"])):
    raise ValueError(f"{where}.start: must be in [0, 1) and below {where}.fraction with portion 'first' "
                     f"(got {start:g}, fraction {float(a['fraction']):g})")
  if start and a["portion"] == "last":
    raise ValueError(f"{where}.start: must be 0 with portion 'last' (that portion sets its own start; got {start:g})")
  if int(a["gap"]) < 1:
    raise ValueError(f"{where}.gap: must be >= 1 (got {a['gap']})")
  if int(a["streams"]) < 0:
    raise ValueError(f"{where}.streams: must be >= 0, 0 meaning all (got {a['streams']})")
  if a["labels"] not in LABELS:
    raise ValueError(f"{where}.labels: must be one of {LABELS} (got {a['labels']!r})")
  if int(a["updates"]) < 0:
    raise ValueError(f"{where}.updates: must be >= 0, 0 meaning all of train.num_updates (got {a['updates']})")
  if not isinstance(a["augment"], (bool, np.bool_)):
    raise ValueError(f"{where}.augment: must be True or False (got {a['augment']!r})")


def _from_episode_start(done: np.ndarray, t: np.ndarray, at: int) -> np.ndarray:
  """Bool [..., T]: the steps from the first episode of each stream that begins at or after step `at`."""
  starts = np.concatenate([np.ones(done.shape[:-1] + (1,), bool), done[..., :-1]], -1)
  return t >= np.where(starts & (t >= at), t, done.shape[-1]).min(-1, keepdims=True)


def keep_mask(done: np.ndarray, episode: np.ndarray, portion: str, fraction: float, gap: int,
              streams: int, first_stream: int = 0, start: float = 0.0) -> np.ndarray:
  """Bool [S, K, E, T]: which steps an arm keeps. done/episode are [S, K, E, T]. start > 0 (portions "first"
  and "all"): only whole episodes that begin at or after step floor(start * T) of their stream."""
  done = np.asarray(done, bool)
  t_len = done.shape[-1]
  t = np.arange(t_len)
  keep = np.asarray(episode) >= 0      # episode -1: padding of a store recorded with a record-time gap
  if portion == "first":
    # Whole episodes that end within the first `fraction` of the stream's steps.
    cut = int(np.floor(fraction * t_len))
    ends = np.where(done & (t < cut), t, -1)
    last_end = ends.max(-1, keepdims=True)
    keep &= t <= last_end
  elif portion == "last":
    # Whole episodes that start at or after step (1 - fraction) * T.
    keep &= _from_episode_start(done, t, int(np.ceil((1.0 - fraction) * t_len)))
  if start > 0 and portion != "last":
    keep &= _from_episode_start(done, t, int(np.floor(start * t_len)))
  if gap > 1:
    keep &= (np.asarray(episode) % gap) == 0   # composes with a record-time gap: episode ids are kept
  if streams:
    keep[:, :, streams:] = False
  if first_stream:
    keep[:, :, :first_stream] = False
  return keep


def arm_keep(done: np.ndarray, episode: np.ndarray, arm: dict, gap: int | None = None) -> np.ndarray:
  """`keep_mask` for an arm (its fields, ARM_DEFAULTS for those it leaves out): its portion, fraction, gap
  (or `gap` instead), streams and start."""
  a = resolve_arm(arm)
  return keep_mask(done, episode, a["portion"], float(a["fraction"]),
                   int(a["gap"]) if gap is None else int(gap), int(a["streams"]), start=float(a["start"]))


def select(history: History, *, portion: str = "all", fraction: float = 1.0, gap: int = 1,
           streams: int = 0, label=None, first_stream: int = 0, start: float = 0.0) -> FlatData:
  """Flat training data of one arm from histories [S, K, E, T, ...]; label [S, K, E, T] or None (actions).
  streams: keep streams [first_stream, streams) of each learner (streams 0: up to the last one); the cuts
  (portion, gap) are the same whichever streams are kept, so a held-out stream is cut like the others."""
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  lead = done.shape
  if streams > lead[2]:
    raise ValueError(f"streams={streams} but the histories have only {lead[2]} streams per learner")
  keep = keep_mask(done, np.asarray(history.episode), portion, fraction, gap, streams, first_stream, start)
  rows = keep.reshape(-1, lead[-1])
  lengths = rows.sum(-1)
  flat = lambda x: np.asarray(x).reshape((-1,) + np.asarray(x).shape[4:])[keep.reshape(-1)]
  action = flat(history.action).astype(np.int32)
  time = np.broadcast_to(np.arange(lead[-1], dtype=np.int32), lead)
  behaviour = lambda x, fill, dtype: (np.full(int(keep.sum()), fill, dtype) if x is None
                                      else flat(x).astype(dtype))
  return FlatData(obs=flat(history.obs), action=action,
                  label=action if label is None else flat(label).astype(np.int32),
                  reward=flat(history.reward).astype(np.float32), done=flat(done),
                  lengths=lengths[lengths > 0], episodes=int((done & keep).sum()), time=flat(time),
                  greedy=behaviour(history.greedy, -1, np.int32),
                  epsilon=behaviour(history.epsilon, np.nan, np.float32))


def behaviour_floor(epsilon, num_actions: int) -> dict | None:
  """What no imitator can beat, in expectation, on steps of an epsilon-greedy behaviour policy it did not
  train on: {"entropy": the policy's mean entropy in nats (the least expected cross-entropy of any
  prediction of its actions), "accuracy": the mean of its largest action probability (the most any
  prediction can expect to match), "steps"}, over the steps whose epsilon is recorded; None where none is.
  A training loss below the entropy (or accuracy above it) means the imitator predicts the exploration
  noise of the very streams it was trained on: memorisation, not imitation."""
  from scipy.special import xlogy  # noqa: PLC0415
  eps = np.asarray(epsilon, np.float32)
  eps = eps[np.isfinite(eps)]
  if not eps.size:
    return None
  # The greedy action does not change either quantity: the policy's probabilities are the same up to order.
  p = np.asarray(behaviour_probs(np.zeros(eps.shape, np.int32), eps, int(num_actions)), np.float64)
  return {"entropy": float(-xlogy(p, p).sum(-1).mean()), "accuracy": float(p.max(-1).mean()),
          "steps": int(eps.size)}


def concat(parts: list[FlatData]) -> tuple[FlatData, np.ndarray]:
  """One FlatData of all parts in order, and the number of histories before each part [P + 1]."""
  cat = lambda f: (None if any(getattr(p, f) is None for p in parts)
                   else np.concatenate([getattr(p, f) for p in parts], 0))
  hist_offsets = np.concatenate([[0], np.cumsum([len(p.lengths) for p in parts])])
  return FlatData(obs=cat("obs"), action=cat("action"), label=cat("label"), reward=cat("reward"),
                  done=cat("done"), lengths=cat("lengths"),
                  episodes=sum(p.episodes for p in parts), time=cat("time"), greedy=cat("greedy"),
                  epsilon=cat("epsilon")), hist_offsets


def to_device(data: FlatData) -> DeviceData:
  offsets = np.concatenate([[0], np.cumsum(data.lengths)])
  hist_start = np.repeat(offsets[:-1], data.lengths).astype(np.int32)
  hist_end = np.repeat(offsets[1:], data.lengths).astype(np.int32)
  if data.num_steps >= np.iinfo(np.int32).max:
    raise ValueError(f"{data.num_steps} training steps do not fit int32 indices; use a larger gap")
  return DeviceData(obs=jnp.asarray(data.obs), action=jnp.asarray(data.action),
                    label=jnp.asarray(data.label), reward=jnp.asarray(data.reward),
                    done=jnp.asarray(data.done), history_start=jnp.asarray(hist_start),
                    history_end=jnp.asarray(hist_end), explore=jnp.asarray(explore_of(data.action, data.greedy)))


def explore_of(action, greedy) -> np.ndarray:
  """bool, action's shape: each step's action differs from its behaviour policy's greedy action (an
  exploratory step); False where the greedy action is not recorded (greedy None or -1)."""
  if greedy is None:
    return np.zeros(np.shape(action), bool)
  greedy = np.asarray(greedy)
  return (greedy >= 0) & (np.asarray(action) != greedy)


def oracle_labels(env, history: History, tasks):
  """DPT labels: the env's optimal action for every recorded observation. tasks: params [K]."""
  if not hasattr(env, "optimal_action_from_obs"):
    raise ValueError(f"env {env.name} has no oracle (optimal_action_from_obs); use labels='teacher'")
  fn = jax.jit(jax.vmap(jax.vmap(jax.vmap(jax.vmap(env.optimal_action_from_obs, (0, None)), (0, None)),
                                 (0, 0)), (0, None)))
  return np.asarray(fn(jnp.asarray(history.obs), tasks))


def teacher_labels(greedy_action, teacher_params, history: History):
  """XLand-100B-style labels: the final teacher's greedy action for every recorded observation.

  greedy_action(params, obs [..., obs]) -> actions; teacher_params have leading [S, K] axes."""
  fn = jax.jit(jax.vmap(jax.vmap(greedy_action)))
  return np.asarray(fn(teacher_params, jnp.asarray(history.obs)))
