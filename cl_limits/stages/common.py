"""The setup every stage shares: its env, its tasks, its episode length, and the checks of those sections."""
from __future__ import annotations

import copy

import jax
import numpy as np

from cl_limits import comma_list
from cl_limits import envs as envs_lib
from cl_limits.rollouts import learners
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages.base import ConfigError, check, field, in_range, positive_int

ROLLOUT = "experiments.rollout"     # how rollouts run (chunks, progress, checkpoints): read, not fingerprinted


def rollout_settings(config):
  """The config's `experiments.rollout` (None when a config has none: one silent scan)."""
  return (config.get("experiments", None) or {}).get("rollout", None)


def validate_rollout(config) -> None:
  if rollout_settings(config) is None:
    return
  positive_int(config, f"{ROLLOUT}.chunks")
  if "groups" in rollout_settings(config):
    positive_int(config, f"{ROLLOUT}.groups", minimum=0)
  for f in ("progress_seconds", "checkpoint_seconds"):
    in_range(config, f"{ROLLOUT}.{f}", 0.0, float("inf"))


def env_of(config, section: str = "env"):
  """The env a config section names (`env`, or a P3 target such as `experiments.p3.targets.hard9`)."""
  name = field(config, f"{section}.name")
  check(name in envs_lib.names(), f"{section}.name", f"unknown env; known: {', '.join(envs_lib.names())}",
        name)
  kwargs = field(config, f"{section}.kwargs")
  kwargs = kwargs.to_dict() if hasattr(kwargs, "to_dict") else dict(kwargs or {})
  try:
    return envs_lib.make(name, **kwargs)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"{section}.kwargs: {e} (got {kwargs!r})") from None


def validate_tasks(config) -> None:
  t = config.tasks
  check(t.teacher_split in ("train", "heldout", "all"), "tasks.teacher_split",
        "must be 'train', 'heldout' or 'all'", t.teacher_split)
  check(int(t.max_tasks) >= 0, "tasks.max_tasks", "must be >= 0, 0 meaning all", t.max_tasks)
  in_range(config, "tasks.heldout_fraction", 0.0, 1.0, hi_open=True)


def teacher_tasks(config, env):
  """(task params with a leading task axis [K], task ids [K] into env.all_tasks()) the teachers learn."""
  train, held = envs_lib.split_ids(env, config.tasks.split_seed, config.tasks.heldout_fraction)
  split = config.tasks.teacher_split
  ids = {"train": train, "heldout": held, "all": np.arange(envs_lib.num_tasks(env))}[split]
  if int(config.tasks.max_tasks) > 0:
    ids = ids[:int(config.tasks.max_tasks)]
  return envs_lib.tasks_at(env, ids), np.asarray(ids)


def heldout_tasks(config, env, num: int = 0):
  """(params [K], ids) of the held-out split, the first `num` of them (0: all)."""
  _, held = envs_lib.split_ids(env, config.tasks.split_seed, config.tasks.heldout_fraction)
  if num:
    held = held[:num]
  return envs_lib.tasks_at(env, held), np.asarray(held)


def first(tasks, n: int):
  """The first n tasks of a task pytree [K]."""
  return jax.tree.map(lambda x: x[:n], tasks)


def tile(tasks, n: int):
  """A task pytree [K] repeated n times along its first axis, [n x K] (tasks 0..K-1, then again)."""
  return tasks if n == 1 else jax.tree.map(lambda x: jax.numpy.concatenate([x] * n, axis=0), tasks)


def episode_length(env) -> int | None:
  """The env's episode time limit in steps, where it has one the config can be checked against."""
  n = getattr(env, "episode_len", None)
  return int(n) if n else None


def episode_cap(env) -> int | None:
  """The longest an episode can be: the fixed length, else the env's time limit (MinAtar's 1000 steps).
  A horizon of n x the cap holds at least n whole episodes, so stages that count episodes (evaluation, P1)
  run on envs whose episodes end early."""
  return episode_length(env) or (int(getattr(env, "max_episode_len", 0)) or None)


def whole_episodes(horizon: int, ep_len: int | None) -> int:
  """The one horizon rule: a rollout of about `horizon` steps, cut to whole episodes where episodes have a
  fixed length (at least one episode)."""
  horizon = int(horizon)
  return max(ep_len, horizon // ep_len * ep_len) if ep_len else horizon


def whole_segments(horizon: int, act_steps: int) -> int:
  """A hybrid's horizon: `horizon` cut to whole act-and-learn segments of `act_steps` (at least one)."""
  return max(int(act_steps), int(horizon) // int(act_steps) * int(act_steps))


def learners_per_task(config) -> int:
  """Independent DQNs per (seed, task) (`teacher.learners_per_task`, 1 where unset): their streams are the
  task's streams in the history store, each learner's `teacher.dqn.num_envs` side by side."""
  return int(config.teacher.get("learners_per_task", 1)) if "teacher" in config else 1


def competence_task_count(config, available: int) -> int:
  """How many of the teachers' training tasks (the first ones) the P2 competence gate plays:
  experiments.p2.competence_tasks, or all `available` when it is 0."""
  n = int(config.experiments.p2.competence_tasks)
  return min(n, available) if n else available


def competence_rollouts(config) -> int:
  """Rollouts per P2 competence task (`experiments.p2.competence_rollouts`; 1 where a config predates it),
  each with its own key: a replicate's competence is its mean over tasks x rollouts. The P2 stage plays
  one for a row without headroom, whose verdict cannot depend on its competence."""
  return int(config.experiments.p2.get("competence_rollouts", 1))


def heldout_what(config) -> str:
  """Which streams the imitation stage holds out, in words (its log and its summary)."""
  n, k = int(config.imitation.fidelity.heldout_streams), learners_per_task(config)
  return (f"each task's last {n} stream(s) (of its {k} independent learners)" if k > 1
          else f"each learner's last {n} stream(s)")


def teachers_at(config, workdir: str) -> str:
  """The run directory whose teacher stage this config uses: `teachers_from` (the capacity sweep's jobs
  reuse the main job's teachers), else workdir itself."""
  return str(config.get("teachers_from") or "") or workdir


def p2_arms(config) -> list[str]:
  return comma_list(config.experiments.p2.arms)


def p2_row_name(arm: str, kind: str) -> str:
  """A P2 row's name in the stage's summary and arrays: its arm's, or `<arm>_known_positive`."""
  return f"{arm}_known_positive" if kind == "known_positive" else arm


def fmt(iv) -> str:
  """An interval as "estimate [low, high]"; None (too few finite values) as "not measurable"."""
  if iv is None:
    return "not measurable"
  return f"{iv['estimate']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"


def hybrid_enabled(config) -> bool:
  return bool(str(config.experiments.hybrid.arm or ""))


def hybrid_variants(spec, path: str) -> list[str]:
  """The hybrid variants a config field names; ConfigError naming the field for an unknown one."""
  names = comma_list(spec)
  bad = [v for v in names if v not in learners.VARIANTS]
  check(not bad, path, f"unknown hybrid variant; choose from {sorted(learners.VARIANTS)}", ",".join(bad))
  return names


def reuses_teachers(config, name: str) -> bool:
  """A target with `reuse_teachers=True` is the training env itself (a positive control on a one-task env
  such as a MinAtar game): its "DQN from scratch" is the main teachers' run, not a second one."""
  return bool(config.experiments.p3.targets[name].get("reuse_teachers", False))


def protocol_of(ev) -> dict:
  """An evaluation section's action protocol as rollout keyword arguments (ConfigError-free: the stages
  check `evaluation.temperature` through `artifacts.protocol`)."""
  return rollout_lib.action_protocol(bool(ev.get("greedy", False)), float(ev.get("temperature", 1.0)),
                                     float(ev.get("epsilon", 0.0)), ev.get("epsilon_decay", 0))


def with_search(env, ad):
  """`env` with its scripted searcher's settings from `imitation.ad_eps` (`search_detour`: a shallow copy that
  carries it; the env itself where it is 0)."""
  k = int(ad.get("search_detour", 0))
  if not k:
    return env
  out = copy.copy(env)
  out.search_detour = k
  return out


def p2_actions_section(config):
  """(section, path) of the action protocol P2 plays: `experiments.p2.protocol` where its `source` is "own"
  (a P2 protocol of its own, e.g. the learners' argmax with their epsilon schedule), else `evaluation`."""
  p = config.experiments.p2.get("protocol") if "experiments" in config and "p2" in config.experiments else None
  if p is not None and str(p.get("source", "evaluation")) == "own":
    return p, "experiments.p2.protocol"
  return config.evaluation, "evaluation"


def describe_actions(ev) -> str:
  """'greedy', 'sampled', or 'sampled at temperature T' (then ', epsilon E around it' where epsilon > 0, or
  ', epsilon from 1 to E over D steps around it' where it decays): how the report and summaries name the
  protocol."""
  a = protocol_of(ev)
  word = ("greedy" if a["greedy"] else "sampled" if a["temperature"] == 1.0
          else f"sampled at temperature {a['temperature']:g}")
  if a["epsilon_decay"] > 0:
    return word + f", epsilon from 1 to {a['epsilon']:g} over {a['epsilon_decay']:,} steps around it"
  return word + (f", epsilon {a['epsilon']:g} around it" if a["epsilon"] > 0 else "")


def actions_phrase(desc: str) -> str:
  """`describe_actions`'s word as a phrase: 'greedy actions', 'sampled actions', 'actions sampled at
  temperature 0.5'."""
  return f"actions {desc}" if " " in desc else f"{desc} actions"


def headroom_basis(config, arm: dict, actions: dict | None = None) -> str:
  """`replicates.headroom_basis` of a teacher-data arm (`datasets.resolve_arm`) under the action protocol
  `actions` (`protocol_of`'s dict; default `config.evaluation`'s) and the teachers' epsilon floor."""
  from cl_limits.analysis import replicates  # noqa: PLC0415
  a = protocol_of(config.evaluation) if actions is None else actions
  return replicates.headroom_basis(a["greedy"], a["temperature"], a["epsilon"], str(arm["labels"]),
                                   float(config.teacher.dqn.eps_end))
