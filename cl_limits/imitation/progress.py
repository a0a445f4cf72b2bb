"""The imitation run's state between segments beyond the weights: each arm's held-out fidelity curve and
early-stopping record (`Progress`, saved beside every checkpoint so a resumed run follows the same rule),
each arm's best held-out weights on disk, and the model-axis surgery that trains only some arms."""
from __future__ import annotations

import io
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits import sharding
from cl_limits.histories import store


class Progress:
  """Which arms have stopped, each arm's held-out fidelity curve and its updates: saved beside every
  checkpoint, so a resumed run continues the same stopping rule."""

  def __init__(self, curve, stopped, best, since, updates_done, best_update):
    self.curve, self.stopped, self.best, self.since, self.updates_done = curve, stopped, best, since, updates_done
    self.best_update = best_update

  @classmethod
  def new(cls, arms):
    return cls({a: [] for a in arms}, {}, {a: None for a in arms}, {a: 0 for a in arms}, {a: 0 for a in arms},
               {a: None for a in arms})

  @classmethod
  def load(cls, path, arms, segment):
    d = None
    if os.path.exists(path):
      with open(path) as f:
        d = json.load(f)
    if d is None or int(d.get("segment", -1)) != int(segment):
      raise ValueError(f"{path}: missing or not at checkpoint segment {segment}; delete the imitators "
                       "directory to retrain")
    return cls(d["curve"], d["stopped"], d["best"], d["since"], d["updates_done"], d["best_update"])

  def save(self, path, segment):
    _write_json(path, {"segment": int(segment), "curve": self.curve, "stopped": self.stopped,
                              "best": self.best, "since": self.since, "updates_done": self.updates_done,
                              "best_update": self.best_update})

  def stopped_mask(self, arms):
    return np.array([a in self.stopped for a in arms])

  def record(self, update, running, stats, arms, patience, min_improvement, at_cap):
    """Adds one check of the running arms; returns (the arms that stop now for lack of improvement, the
    arms whose check is their best so far). The criterion is the replicates' mean KL, or the mean NLL of
    the recorded action when the behaviour policy is not on record."""
    now, improved = [], []
    for a in running:
      i = arms.index(a)
      kl = stats["kl"][i]
      crit = float(np.mean(kl)) if np.isfinite(kl).all() else float(np.mean(stats["nll"][i]))
      self.curve[a].append({"update": int(update), "criterion": crit,
                            **{k: [float(x) for x in v[i]] for k, v in stats.items()}})
      if self.best[a] is None or crit < self.best[a]:
        improved.append(a)
        self.best_update[a] = int(update)
      if self.best[a] is None or crit < self.best[a] - min_improvement:
        self.best[a], self.since[a] = crit, 0
      else:
        self.since[a] += 1
        self.best[a] = min(self.best[a], crit)
      if patience and self.since[a] >= patience and not at_cap[i]:
        self.stopped[a] = int(update)
        now.append(a)
    return now, improved


def best_path(out_dir, arm):
  return os.path.join(out_dir, "best", f"{arm}.npz")


def save_best(out_dir, arm, params) -> None:
  """An arm's best held-out weights [S, ...] (leaves in tree order), written atomically."""
  buf = io.BytesIO()
  np.savez(buf, *[np.asarray(x) for x in jax.tree.leaves(params)])
  os.makedirs(os.path.dirname(best_path(out_dir, arm)), exist_ok=True)
  store.atomic_write_bytes(best_path(out_dir, arm), buf.getvalue())


def load_best(out_dir, arm):
  """The leaves saved by `_save_best` (a list; `_put_models` takes it as the params' leaves in order)."""
  path = best_path(out_dir, arm)
  if not os.path.exists(path):
    raise ValueError(f"{path} is missing: the imitation run cannot resume its early stopping; delete "
                     f"{os.path.dirname(os.path.dirname(path))} to retrain")
  with np.load(path) as z:
    return [z[f"arr_{i}"] for i in range(len(z.files))]


def put_models(params, arm_params, first: int, pad_idx, mesh):
  """params [padded, ...] with the models first .. first + S (and their padding copies) set to arm_params
  [S, ...] (a pytree like params, or its leaves in order)."""
  leaves, treedef = jax.tree.flatten(params)
  new = arm_params if isinstance(arm_params, list) else jax.tree.leaves(arm_params)
  n = np.asarray(new[0]).shape[0]
  pos = np.flatnonzero((pad_idx >= first) & (pad_idx < first + n))
  out = [x.at[jnp.asarray(pos)].set(jnp.asarray(np.asarray(b)[pad_idx[pos] - first])) for x, b in zip(leaves, new)]
  return sharding.shard_seeds(jax.tree.unflatten(treedef, out), mesh)


def partial_segment(segment, state, active, num_models, data, starts, n_starts, group):
  """One segment of updates for the models `active` only (the others keep their state); metrics of the
  others are NaN."""
  idx = jnp.asarray(active)
  sub = jax.tree.map(lambda x: x[idx], state)
  sub, m = segment(sub, data, starts, n_starts, group[idx])
  state = jax.tree.map(lambda x, y: x.at[idx].set(y), state, sub)
  m = jax.device_get(m)
  full = lambda v: np.full((num_models,) + np.shape(v)[1:], np.nan, np.float32)
  loss, acc, lr = full(m.loss), full(m.accuracy), full(m.lr)
  loss[active], acc[active], lr[active] = m.loss, m.accuracy, m.lr
  return state, type(m)(loss=loss, accuracy=acc, lr=lr)



def _write_json(path, obj) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  store.atomic_write_json(path, obj)
