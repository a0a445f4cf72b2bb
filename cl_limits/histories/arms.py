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
        raise store.HistoryStoreError(f"sources: {d} has {k}={m.get(k)}, {names[0]} has "
                                      f"{first.get(k)}; joined sources need the same learners")
    spec = lambda man: (man["fields"]["obs"]["dtype"], man["fields"]["obs"]["shape"][4:])
    if spec(m) != spec(first):
      raise store.HistoryStoreError(f"sources: {d} holds observations {spec(m)}, "
                                    f"{names[0]} {spec(first)}")
  length = max(int(h.action.shape[3]) for h, _ in loaded)
  padded = [history_lib.pad_time(h, length) for h, _ in loaded]
  history = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *padded)
  manifest = {**first, "env": [m["env"] for _, m in loaded], "sources": list(names),
              "task_ids": [t for _, m in loaded for t in m["task_ids"]],
              "record_gap": [m.get("record_gap", 1) for _, m in loaded]}
  return history, manifest


# Settings added to the AD-epsilon store's manifest after stores were written, at the value those stores were
# made with: a manifest without one reads as that value.
ADDED_META = {"search_detour": 0}


def ad_eps_store(directory: str, env, tasks, task_ids, meta: dict, seed: int, log=print, replicates: int = 1,
                 demonstrator=None):
  """AD-epsilon histories for the tasks [K] of every replicate [R] (their own keys), generated once into
  `directory` and read back from it.
  `meta`: steps, streams_per_learner, eps_floor, decay_fraction (and anything else that must match).
  demonstrator: None (the env's oracle), "searcher" (the env's scripted searcher, `adeps.make_generate`) or
  (fn(params, obs) -> action, params [R, K, ...]): replicate r's streams on task k follow params [r, k]
  (each replicate's own final DQN)."""
  meta = {**meta, "num_seeds": int(replicates)}
  if store.is_complete(directory):
    history, manifest = store.load(directory)
    if all(manifest.get(k, ADDED_META.get(k)) == v for k, v in meta.items()):
      return history, manifest
    raise store.HistoryStoreError(f"{directory} holds AD-epsilon histories of different settings; "
                                  "use a new workdir or delete it")
  named = demonstrator is None or isinstance(demonstrator, str)     # the env's own policy: no params to map
  gen = adeps.make_generate(env, int(meta["steps"]), int(meta["streams_per_learner"]),
                            float(meta["eps_floor"]), float(meta["decay_fraction"]),
                            demonstrator=demonstrator if named else demonstrator[0])
  k = len(task_ids)
  keys = jax.random.split(jax.random.key(seed + 7), int(replicates) * k).reshape(int(replicates), k)
  t0 = time.time()
  if named:
    hist = jax.device_get(jax.jit(jax.vmap(jax.vmap(gen), in_axes=(0, None)))(keys, tasks))
  else:
    hist = jax.device_get(jax.jit(jax.vmap(jax.vmap(gen), in_axes=(0, None, 0)))(keys, tasks, demonstrator[1]))
  hist = jax.tree.map(np.asarray, hist)                          # [R, K, streams, T]
  writer = store.HistoryWriter(directory, {**meta, "task_ids": np.asarray(task_ids).tolist(),
                                           "axes": ["seed", "task", "stream", "time"]})
  writer.write_chunk(0, hist)
  writer.finalize(1)
  log(f"[imitation] AD-epsilon histories: {replicates} replicates x {len(task_ids)} tasks x {meta['streams_per_learner']} streams x "
      f"{meta['steps']} steps ({time.time() - t0:.1f}s)")
  return store.load(directory)


def replicate_data(history, arm: dict, r: int, train_streams: int, label=None, heldout: bool = False):
  """Replicate r's training data of `arm` (resolved) as FlatData: learner r's histories cut by the arm's
  portion and gap, its first `streams` (0: all `train_streams`), relabelled by `label` [R, ...] (None: the
  recorded actions); heldout: the streams from `train_streams` on instead, with their recorded actions."""
  one = jax.tree.map(lambda x: np.asarray(x)[r:r + 1], history)
  cut = dict(portion=arm["portion"], fraction=float(arm["fraction"]), gap=int(arm["gap"]), start=float(arm["start"]))
  if heldout:
    return datasets.select(one, **cut, first_stream=train_streams)
  return datasets.select(one, **cut, streams=int(arm["streams"]) or train_streams,
                         label=None if label is None else np.asarray(label)[r:r + 1])


def build(arms: dict, sources: dict, seq_len: int, env=None, teacher_labels=None, replicates: int = 1,
          heldout_streams: int = 0, mark_explore: bool = False):
  """(DeviceData, starts [A * R, max_n], n_starts [A * R], data manifest, held-out parts) for every arm
  and replicate.

  arms: {name: resolved arm}; sources: {"teacher" | "ad_eps": (History, manifest)} (each source an arm
  names); teacher_labels(history) -> labels, for arms with labels='teacher'. replicates: R, the number of
  independent runs. Every store then holds R learners on its seed axis, and window group a * R + r (the
  model of arm a, seed r) draws only from learner r's histories: replicate r's imitators never see another
  replicate's data. heldout_streams: each learner's last streams, cut like the others but never trained
  on; their FlatData per group (in group order) is the last item (empty list when 0), for the fidelity
  measurement (`imitation.fidelity`). Window starts are `windows.legal_starts` of `seq_len`.
  mark_explore: the model reads which steps explored (`datasets.explore_of`), so every kept step must
  record its behaviour policy's greedy action (ValueError naming the arm otherwise)."""
  parts, per_arm, arms_meta, offset, heldout = [], [], {}, 0, []
  for name, arm in arms.items():
    history, manifest = sources[arm["data"]]
    n_learners = int(np.asarray(history.action).shape[0])
    if n_learners != int(replicates):
      raise ValueError(f"num_seeds: {replicates} replicates, but the {arm['data']} histories hold "
                       f"{n_learners} learners (teacher seeds); each replicate's imitators train on its own "
                       "teachers, so the two must match")
    n_streams = int(np.asarray(history.action).shape[2])
    train_streams = n_streams - int(heldout_streams)
    if train_streams < 1:
      raise ValueError(f"fidelity.heldout_streams: {heldout_streams} held-out streams leave none to "
                       f"train on: the {arm['data']} histories have {n_streams} streams per learner")
    if int(arm["streams"]) > train_streams:
      raise ValueError(f"arms.{name}.streams: {arm['streams']} streams, but {heldout_streams} of the "
                       f"{n_streams} streams per learner are held out for the fidelity measurement")
    label = None
    if arm["labels"] == "oracle":
      label = datasets.oracle_labels(env, history, envs_lib.tasks_at(env, np.asarray(manifest["task_ids"])))
    elif arm["labels"] == "teacher":
      if arm["data"] != "teacher":
        raise ValueError(f"arms.{name}.labels: 'teacher' relabelling needs data='teacher'")
      label = teacher_labels(history)
    elif arm["labels"] == "greedy":
      label = history.greedy
    rep_parts = []
    for r in range(int(replicates)):
      fd = replicate_data(history, arm, r, train_streams, label)
      if heldout_streams:
        heldout.append(replicate_data(history, arm, r, train_streams, heldout=True))
      greedy_recorded = fd.greedy is not None and not bool(np.any(np.asarray(fd.greedy) < 0))
      if arm["labels"] == "greedy" and not greedy_recorded:
        raise ValueError(f"arms.{name}.labels: 'greedy' needs histories that record the behaviour policy's "
                         f"greedy action at every step; the {arm['data']} histories do not")
      if mark_explore and not greedy_recorded:
        raise ValueError(f"model.mark_explore: arms.{name}'s {arm['data']} histories do not record the "
                         "behaviour policy's greedy action at every step, so exploratory steps cannot be marked")
      try:
        index = windows.build_index(fd.lengths, seq_len)
      except ValueError as e:
        raise ValueError(f"arms.{name}: {e}; its histories after portion/gap selection are empty") from None
      per_arm.append(np.asarray(index.starts) + offset)
      offset += fd.num_steps
      rep_parts.append((fd, int(len(index.starts))))
    parts += [fd for fd, _ in rep_parts]
    fds = [fd for fd, _ in rep_parts]
    episodes = sum(fd.episodes for fd in fds)
    arms_meta[name] = {**arm, "source_streams_per_learner": int(manifest["streams_per_learner"]),
                       "source_env_steps_per_learner": int(manifest["env_steps_per_learner"]),
                       "replicates": int(replicates), "trained_streams_per_learner": int(arm["streams"]) or train_streams,
                       "heldout_streams_per_learner": int(heldout_streams),
                       "histories": int(sum(len(fd.lengths) for fd in fds)),
                       "steps": int(sum(fd.num_steps for fd in fds)),
                       "steps_per_replicate": [fd.num_steps for fd in fds],
                       "shortest_history": int(min(int(fd.lengths.min()) for fd in fds)),
                       "episodes": int(episodes), "windows": int(sum(n for _, n in rep_parts)),
                       "mean_return_per_episode": float(sum(fd.reward.sum() for fd in fds) / max(episodes, 1)),
                       "explore_fraction": float(sum(datasets.explore_of(fd.action, fd.greedy).sum() for fd in fds)
                                                 / max(sum(fd.num_steps for fd in fds), 1))}
    if arm["labels"] == "action" and env is not None:     # relabelled arms learn a deterministic target
      arms_meta[name]["behaviour_floor"] = [datasets.behaviour_floor(fd.epsilon, env.num_actions) for fd in fds]
  flat, _ = datasets.concat(parts)
  starts, n_starts = windows.pad_starts(per_arm)
  meta = {"seq_len": seq_len, "arms": arms_meta}
  if "teacher" in sources:
    m = sources["teacher"][1]
    meta["teacher_histories"] = {"env": m["env"], "record_gap": m.get("record_gap", 1),
                                 "sources": m.get("sources", [])}
  return datasets.to_device(flat), starts, n_starts, meta, heldout
