"""The training data of every imitation arm, built from history stores: joined sources, AD-epsilon
histories, label relabelling, portion / gap / stream selection, window starts.

Library code: it takes the arms (resolved field dicts), the histories and the sizes it needs; the
imitation stage (cl_limits/stages/imitation.py) decides where the stores live.
"""
from __future__ import annotations

import time

import jax
import numpy as np

from cl_limits import envs as envs_lib
from cl_limits.histories import adeps, datasets, store, windows
from cl_limits.histories import history as history_lib


def join_stores(loaded: list, names: list[str]):
  """(History, manifest) of several stores [(History, manifest)] joined along the task axis: their
  learners must have the same seeds, streams, steps and observation spec; shorter stores are padded in
  time (padding is skipped by every reader). HistoryStoreError names the store that does not fit."""
  first = loaded[0][1]
  for (_, m), d in zip(loaded, names):
    for k in ("num_seeds", "streams_per_learner", "env_steps_per_learner"):
      if m.get(k) != first.get(k):
        raise store.HistoryStoreError(f"imitation.sources: {d} has {k}={m.get(k)}, {names[0]} has "
                                      f"{first.get(k)}; joined sources need the same learners")
    spec = lambda man: (man["fields"]["obs"]["dtype"], man["fields"]["obs"]["shape"][4:])
    if spec(m) != spec(first):
      raise store.HistoryStoreError(f"imitation.sources: {d} holds observations {spec(m)}, "
                                    f"{names[0]} {spec(first)}")
  length = max(int(h.action.shape[3]) for h, _ in loaded)
  padded = [history_lib.pad_time(h, length) for h, _ in loaded]
  history = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *padded)
  manifest = {**first, "env": [m["env"] for _, m in loaded], "sources": list(names),
              "task_ids": [t for _, m in loaded for t in m["task_ids"]],
              "record_gap": [m.get("record_gap", 1) for _, m in loaded]}
  return history, manifest


def ad_eps_store(directory: str, env, tasks, task_ids, meta: dict, seed: int, log=print):
  """AD-epsilon histories for the tasks [K], generated once into `directory` and read back from it.
  `meta`: steps, streams_per_learner, eps_floor, decay_fraction (and anything else that must match)."""
  if store.is_complete(directory):
    history, manifest = store.load(directory)
    if all(manifest.get(k) == v for k, v in meta.items()):
      return history, manifest
    raise store.HistoryStoreError(f"{directory} holds AD-epsilon histories of different settings; "
                                  "use a new workdir or delete it")
  gen = adeps.make_generate(env, int(meta["steps"]), int(meta["streams_per_learner"]),
                            float(meta["eps_floor"]), float(meta["decay_fraction"]))
  keys = jax.random.split(jax.random.key(seed + 7), len(task_ids))
  t0 = time.time()
  hist = jax.device_get(jax.jit(jax.vmap(gen))(keys, tasks))
  hist = jax.tree.map(lambda x: np.asarray(x)[None], hist)      # one "seed" axis
  writer = store.HistoryWriter(directory, {**meta, "task_ids": np.asarray(task_ids).tolist(),
                                           "num_seeds": 1, "axes": ["seed", "task", "stream", "time"]})
  writer.write_chunk(0, hist)
  writer.finalize(1)
  log(f"[imitation] AD-epsilon histories: {len(task_ids)} tasks x {meta['streams_per_learner']} streams x "
      f"{meta['steps']} steps ({time.time() - t0:.1f}s)")
  return store.load(directory)


def build(arms: dict, sources: dict, seq_len: int, env=None, teacher_labels=None):
  """(DeviceData, starts [A, max_n], n_starts [A], data manifest) for every arm.

  arms: {name: resolved arm}; sources: {"teacher" | "ad_eps": (History, manifest)} (each source an arm
  names); teacher_labels(history) -> labels, for arms with labels='teacher'."""
  from cl_limits.imitation import learner as learner_lib  # noqa: PLC0415
  parts, per_arm, arms_meta, offset = [], [], {}, 0
  for name, arm in arms.items():
    history, manifest = sources[arm["data"]]
    label = None
    if arm["labels"] == "oracle":
      label = datasets.oracle_labels(env, history, envs_lib.tasks_at(env, np.asarray(manifest["task_ids"])))
    elif arm["labels"] == "teacher":
      if arm["data"] != "teacher":
        raise ValueError(f"imitation.arms.{name}.labels: 'teacher' relabelling needs data='teacher'")
      label = teacher_labels(history)
    fd = datasets.select(history, portion=arm["portion"], fraction=float(arm["fraction"]),
                         gap=int(arm["gap"]), streams=int(arm["streams"]), label=label)
    try:
      index = windows.build_index(fd.lengths, seq_len)
    except ValueError as e:
      raise ValueError(f"imitation.arms.{name}: {e}; its histories after portion/gap selection are too "
                       f"short for train.seq_len={seq_len}") from None
    per_arm.append(np.asarray(index.starts) + offset)
    offset += fd.num_steps
    parts.append(fd)
    arms_meta[name] = {**arm, "source_streams_per_learner": int(manifest["streams_per_learner"]),
                       "source_env_steps_per_learner": int(manifest["env_steps_per_learner"]),
                       "histories": int(len(fd.lengths)), "steps": fd.num_steps,
                       "episodes": fd.episodes, "windows": int(len(index.starts)),
                       "mean_return_per_episode": float(fd.reward.sum() / max(fd.episodes, 1))}
  flat, _ = datasets.concat(parts)
  starts, n_starts = learner_lib.pad_starts(per_arm)
  meta = {"seq_len": seq_len, "arms": arms_meta}
  if "teacher" in sources:
    m = sources["teacher"][1]
    meta["teacher_histories"] = {"env": m["env"], "record_gap": m.get("record_gap", 1),
                                 "sources": m.get("sources", [])}
  return datasets.to_device(flat), starts, n_starts, meta
