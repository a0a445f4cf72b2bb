"""The run directory: where every stage writes, and the readers of every stage's outputs.

  config.json         the full resolved config of the latest invocation
  provenance.json     commit (and whether the tree was dirty), package versions and device: of the latest
                      invocation and of the one that ran each step
  log.txt             every log line of every invocation, timestamped
  teachers/           DQN teachers: checkpoints/, histories/ (the store), curve_chunks/,
                      curves.npz, summary.json, teacher_curves.png, tb/ (or <teachers_from>/teachers)
  histories/ad_eps/   AD-epsilon histories (written by the imitation stage when an arm asks for them)
  imitators/          imitation: checkpoints/, data.json, summary.json, tb/<arm>/seed_<s>
  eval/ p1/ p2/ hybrid/ p3/     one directory per analysis stage: summary.json, returns.npz, curves.png
  p2/partial/ hybrid/partial/   a rollout's (a hybrid learner's) state between chunks, removed once the
                                stage's summary is written
  p3/<target>/teachers/         the DQN learning a P3 target from scratch (the teacher stage again)
  tb/<stage>/...                TensorBoard curves of the analysis stages (environment-step axis)
  report.md                     the verdict table first (the report stage)
  games/<Game>/teachers, holdout/<Game>/{imitators,p3}, transplant/    the MinAtar transplant

Every stage directory holds `stage.json` (its fingerprint, the config fields it read, its inputs'
fingerprints), written when the stage starts, and `summary.json`, written last: a stage is finished when
its summary exists and its stage.json matches the config being run.
"""
from __future__ import annotations

import json
import os

import numpy as np

from cl_limits.histories import store
from cl_limits.stages.base import ADDED_DEFAULTS, ConfigError, expand, field

SUMMARY, STAGE = "summary.json", "stage.json"


def path(workdir: str, *parts: str) -> str:
  return os.path.join(os.path.abspath(workdir), *parts)


def teachers_dir(workdir: str) -> str:
  return path(workdir, "teachers")


def histories_dir(workdir: str) -> str:
  return path(workdir, "teachers", "histories")


def read_config(workdir: str):
  """A run's config.json (None if absent), with the fields added to the configs after it was written
  (`base.ADDED_DEFAULTS`) filled in at the defaults it ran with."""
  config = read_json(path(workdir, CONFIG))
  for dotted, default in ADDED_DEFAULTS.items() if isinstance(config, dict) else ():
    parent, _, leaf = dotted.rpartition(".")
    for node in [field(config, p) for p in expand(config, parent)]:      # a `*`: every key at that level
      if isinstance(node, dict):
        node.setdefault(leaf, default)
  return config


def read_json(p: str):
  """The JSON object at p, or None when there is no such file; ConfigError when it is not JSON."""
  try:
    return store.read_json(p)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ConfigError(f"{p}: not valid JSON ({e}); the file is corrupt, delete it to re-run its stage") \
        from None


def summary(workdir: str, subdir: str) -> dict | None:
  """A stage's summary.json (None when the stage has not finished)."""
  return read_json(path(workdir, subdir, SUMMARY))


def stage_record(workdir: str, subdir: str) -> dict | None:
  return read_json(path(workdir, subdir, STAGE))


def teacher_curves(workdir: str) -> dict:
  """The teachers' curves.npz as a dict of arrays: returns [S, K, bins] at env_steps [bins], task_ids,
  and (when recorded) greedy_returns [S, K, segments] at greedy_env_steps."""
  p = path(workdir, "teachers", "curves.npz")
  if not os.path.exists(p):
    raise ConfigError(f"{p}: missing; the teacher stage in {workdir} has not finished")
  with np.load(p) as z:
    return {k: z[k] for k in z.files}


def teacher_final_return(workdir: str) -> float | None:
  """Mean training return of the teachers in their last logging window (over seeds and tasks)."""
  p = path(workdir, "teachers", "curves.npz")
  if not os.path.exists(p):
    return None
  with np.load(p) as z, np.errstate(all="ignore"):
    return float(np.nanmean(z["returns"][..., -1]))


def manifest(directory: str) -> dict:
  """A history store's manifest; ConfigError naming the store when it is missing or corrupt."""
  try:
    return store.read_manifest(directory)
  except store.HistoryStoreError as e:
    raise ConfigError(str(e)) from None


def load_histories(directory: str, expect: dict | None = None):
  """(History, manifest) of a sealed store, every chunk checked; ConfigError naming the file otherwise."""
  try:
    return store.load(directory, expect=expect)
  except store.HistoryStoreError as e:
    raise ConfigError(str(e)) from None


def restore(directory: str, abstract, what: str, step: int | None = None):
  """The orbax checkpoint at `step` (default: the latest) of `directory`, restored into `abstract`.
  ConfigError when there is none, or it does not fit (`what` names the config section that must match)."""
  import orbax.checkpoint as ocp  # noqa: PLC0415
  if not os.path.isdir(directory):
    raise ConfigError(f"{directory}: no checkpoints (its stage has not run)")
  mngr = ocp.CheckpointManager(directory)
  try:
    latest = mngr.latest_step()
    if latest is None or (step is not None and latest != step):
      raise ConfigError(f"{directory}: no finished checkpoint (latest step {latest}, need {step})")
    return mngr.restore(latest, args=ocp.args.StandardRestore(abstract))
  except ConfigError:
    raise
  except Exception as e:  # noqa: BLE001  (orbax raises many kinds for a checkpoint that does not fit)
    raise ConfigError(f"{directory}: the checkpoint does not fit this config's {what} or is corrupt: "
                      f"{str(e).splitlines()[0][:200]}") from None
  finally:
    mngr.close()


def p3_target_dir(workdir: str, name: str) -> str:
  return path(workdir, "p3", name)


def sensitivity_dir(workdir: str, label: str) -> str:
  """Where the sensitivity column `label` ("argmax" or a temperature) runs P1, P2 and P3."""
  return path(workdir, "sensitivity", label)


def link(links: dict) -> None:
  """Creates each symlink {link: target} that is missing (a derived step's view of a finished run)."""
  for dst, src in links.items():
    if os.path.lexists(dst) or not os.path.exists(src):
      continue
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.symlink(os.path.abspath(src), dst)


CONFIG, PROVENANCE, LOG = "config.json", "provenance.json", "log.txt"


def game_dir(workdir: str, game: str) -> str:
  return path(workdir, "games", game)


def holdout_dir(workdir: str, game: str) -> str:
  return path(workdir, "holdout", game)
