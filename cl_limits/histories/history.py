"""The learning-history pytree and what is computed from it (episode returns, learning curves)."""
from __future__ import annotations

import chex
import numpy as np
from flax import struct

FIELDS = ("obs", "action", "reward", "terminated", "truncated", "episode", "update", "greedy", "epsilon")
# The behaviour policy's record: optional (None in a History that has none, e.g. a frozen rollout's).
BEHAVIOUR_FIELDS = ("greedy", "epsilon")
# The value of every field at a padding step (`keep_every`, `pad_time`); episode -1 marks it for readers.
PAD = dict(obs=0, action=0, reward=0, terminated=False, truncated=False, episode=-1, update=-1, greedy=-1,
           epsilon=float("nan"))
# "Not recorded": what a store made before the behaviour policy was recorded reads as (store.load).
NOT_RECORDED = dict(greedy=-1, epsilon=float("nan"))


@struct.dataclass
class History:
  """One or many env streams in time order; time is the axis just before the per-step feature axes.

  A teacher returns [num_envs, T, ...] per learner; vmapped over seeds and tasks it becomes
  [seeds, tasks, num_envs, T, ...]. Fields:
    obs         the observation the action was taken in
    action      int8/int32 action taken
    reward      float32 reward received for it
    terminated  bool, the episode ended in a terminal state (no bootstrap)
    truncated   bool, the episode hit its time limit (bootstrap)
    episode     int32 index of the episode within the stream, from 0
    update      int32 number of gradient updates the teacher had made before this step
    greedy      int32 the behaviour policy's greedy action at this step (the DQN's argmax Q; AD-epsilon's
                demonstrator action); -1 where not recorded
    epsilon     float32 the behaviour policy's exploration rate at this step: it took `greedy` with
                probability 1 - epsilon, else a uniformly random action (of all of them, `greedy`
                included); NaN where not recorded. Together they are the exact behaviour policy
                (`behaviour_probs`), which the imitators' fidelity is measured against.
  """

  obs: chex.Array
  action: chex.Array
  reward: chex.Array
  terminated: chex.Array
  truncated: chex.Array
  episode: chex.Array
  update: chex.Array
  greedy: chex.Array | None = None
  epsilon: chex.Array | None = None

  @property
  def length(self) -> int:
    return self.action.shape[-1]


def episode_returns(reward, done, env_step_of=None):
  """Returns of the completed episodes of one stream.

  Args: reward [T], done [T] (terminated | truncated); env_step_of [T] optional step stamps.
  Returns: (returns [num_episodes], end_step [num_episodes]) where end_step is the 1-based step count
  (or env_step_of) at which each episode ended. An unfinished last episode is dropped.
  """
  reward = np.asarray(reward, np.float64)
  done = np.asarray(done, bool)
  csum = np.concatenate([[0.0], np.cumsum(reward)])
  ends = np.flatnonzero(done)
  starts = np.concatenate([[0], ends[:-1] + 1])
  rets = csum[ends + 1] - csum[starts]
  steps = ends + 1 if env_step_of is None else np.asarray(env_step_of)[ends]
  return rets, steps


def learner_curve(history: History, num_envs_axis: int = 0):
  """Learning curve of one learner from its streams [E, T]: every completed episode of every stream.

  The x axis is the learner's environment steps (all its streams together): a step t of a stream is
  learner step (t + 1) * E. Returns (env_steps [N], returns [N]) sorted by env step.
  """
  reward = np.asarray(history.reward)
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  num_envs = reward.shape[num_envs_axis]
  xs, ys = [], []
  for e in range(num_envs):
    r, s = episode_returns(reward[e], done[e])
    xs.append(s * num_envs)
    ys.append(r)
  xs, ys = np.concatenate(xs), np.concatenate(ys)
  order = np.argsort(xs, kind="stable")
  return xs[order], ys[order]


def window_sums(values, steps, window: int, num_windows: int, clip: bool = False):
  """(sums, counts) [..., num_windows] of values [..., N] by the environment step [..., N] (1-based) at
  which each was recorded; window i covers steps (i * window, (i + 1) * window]. Non-finite values and
  steps <= 0 are skipped; steps past the last window are skipped, or with clip=True counted in it."""
  values = np.asarray(values, np.float64)
  steps = np.broadcast_to(np.asarray(steps), values.shape)
  lead = values.shape[:-1]
  ok = np.isfinite(values) & (steps > 0)
  b = (steps - 1) // window
  if clip:
    b = np.minimum(b, num_windows - 1)
  else:
    ok &= b < num_windows
  rows = int(np.prod(lead))
  idx = (np.arange(rows, dtype=np.int64).reshape(lead + (1,)) * num_windows + b)[ok]
  size = rows * num_windows
  sums = np.bincount(idx, weights=values[ok], minlength=size).reshape(lead + (num_windows,))
  counts = np.bincount(idx, minlength=size).reshape(lead + (num_windows,))
  return sums, counts


def moving_average(x, window: int):
  """Trailing mean over `window` points (shorter at the start). x [N] -> [N]."""
  x = np.asarray(x, np.float64)
  if x.size == 0:
    return x
  c = np.cumsum(np.concatenate([[0.0], x]))
  idx = np.arange(1, x.size + 1)
  lo = np.maximum(idx - window, 0)
  return (c[idx] - c[lo]) / (idx - lo)


def keep_every(history: History, gap: int, time_axis: int = 3) -> History:
  """The steps of every `gap`-th episode of each stream (episode index % gap == 0), packed to the front
  of the time axis in order; streams that keep fewer steps are padded at the end with `episode = -1`
  (zero obs, action, reward; `update = -1`), which every reader skips. Applied at record time, it bounds
  the store at about 1 / gap of the steps. Host arrays [..., T, ...] -> [..., T', ...], T' = the longest
  kept stream."""
  if gap <= 1:
    return history
  episode = np.asarray(history.episode)
  keep = (episode % gap == 0) & (episode >= 0)
  length = max(int(keep.sum(axis=time_axis).max()), 1)
  order = np.argsort(~keep, axis=time_axis, kind="stable")
  order = np.take(order, np.arange(length), axis=time_axis)
  valid = np.take_along_axis(keep, order, axis=time_axis)

  def pick(x, pad):
    x = np.asarray(x)
    idx = order.reshape(order.shape + (1,) * (x.ndim - order.ndim))
    out = np.take_along_axis(x, idx, axis=time_axis)
    v = valid.reshape(valid.shape + (1,) * (x.ndim - valid.ndim))
    return np.where(v, out, np.asarray(pad, out.dtype))

  return History(**{f: _maybe(pick, getattr(history, f), PAD[f]) for f in FIELDS})


def pad_time(history: History, length: int, time_axis: int = 3) -> History:
  """Pads the time axis to `length` with padding steps (episode -1, as `keep_every` pads), so stores of
  different lengths can be joined along another axis."""
  n = int(np.asarray(history.action).shape[time_axis])
  if length < n:
    raise ValueError(f"cannot pad a history of {n} steps to {length}")
  if length == n:
    return history

  def pad(x, value):
    x = np.asarray(x)
    width = [(0, 0)] * x.ndim
    width[time_axis] = (0, length - n)
    return np.pad(x, width, constant_values=np.asarray(value, x.dtype))

  return History(**{f: _maybe(pad, getattr(history, f), PAD[f]) for f in FIELDS})


def _maybe(fn, x, pad):
  return None if x is None else fn(x, pad)


def behaviour_recorded(history: History) -> bool:
  """Whether every kept step's behaviour policy is on record (greedy >= 0 and a finite epsilon)."""
  if history.greedy is None or history.epsilon is None:
    return False
  real = np.asarray(history.episode) >= 0
  return bool(np.all(np.asarray(history.greedy)[real] >= 0) and np.all(np.isfinite(np.asarray(history.epsilon)[real])))


def behaviour_probs(greedy, epsilon, num_actions: int):
  """The behaviour policy's action probabilities [..., num_actions] from greedy [...] and epsilon [...]:
  epsilon / A everywhere, plus 1 - epsilon on the greedy action."""
  import jax.numpy as jnp  # noqa: PLC0415
  eps = jnp.asarray(epsilon, jnp.float32)[..., None]
  onehot = (jnp.arange(num_actions) == jnp.asarray(greedy)[..., None]).astype(jnp.float32)
  return eps / num_actions + (1.0 - eps) * onehot
