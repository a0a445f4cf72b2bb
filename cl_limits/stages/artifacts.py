"""Typed readers of what finished stages left in a run directory, and the config facts every stage that
reads them shares (the arms, the action protocol, the model they were built with). Stages share through
this module (over `layout.py`), never by importing one another.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits import comma_list
from cl_limits import envs as envs_lib
from cl_limits import sharding
from cl_limits.analysis import replicates
from cl_limits.histories import arms as arms_lib
from cl_limits.histories import datasets
from cl_limits.imitation import fidelity as fidelity_lib
from cl_limits.imitation import learner as learner_lib
from cl_limits.stages import common, layout
from cl_limits.stages.base import check, wrap
from cl_limits.teachers import dqn, population


def arm_names(config) -> list[str]:
  return list(config.imitation.arms.keys())


def arms_of(config) -> dict:
  return {n: datasets.resolve_arm(config.imitation.arms[n]) for n in arm_names(config)}


def per_model(config, test) -> np.ndarray:
  """bool [A * S]: test(resolved arm) for each imitator, arm-major (model m = arm m // S, seed m % S)."""
  flags = [bool(test(a)) for a in arms_of(config).values()]
  return np.repeat(np.asarray(flags, bool), int(config.imitation.num_seeds))


def fidelity_scorer(config, model, env):
  """`fidelity.for_env` for this run's imitators: observations flattened when an arm augments, and the
  models of greedy-label arms scored as the epsilon-greedy policy they act with."""
  return fidelity_lib.for_env(model, int(config.imitation.train.seq_len), env,
                              flatten_obs=bool(per_model(config, lambda a: a["augment"]).any()),
                              explores=per_model(config, lambda a: a["labels"] == "greedy"))


def sources(config) -> list[str]:
  """The teacher stores an imitation run reads: `imitation.sources` (comma-separated store directories,
  set by the transplant), else the config's own teacher stage (empty list)."""
  return [os.path.abspath(p) for p in comma_list(config.imitation.sources)]


def protocol(config) -> dict:
  """The evaluation protocol's actions {greedy, temperature, epsilon, epsilon_decay}, which the held-out
  check also uses."""
  return wrap("evaluation", common.protocol_of, config.evaluation)


def p2_protocol(config) -> dict:
  """The action protocol P2 (and its competence gate) plays (`common.p2_actions_section`), with a bad
  `experiments.p2.protocol` field named."""
  p = config.experiments.p2.get("protocol")
  if p is not None:
    check(str(p.get("source", "evaluation")) in ("evaluation", "own"), "experiments.p2.protocol.source",
          'must be "evaluation" (play the evaluation section\'s protocol) or "own" (these fields)', p.get("source"))
  section, path = common.p2_actions_section(config)
  return wrap(path, common.protocol_of, section)


def target_envs(config) -> dict:
  """{name: env} of the P3 transplant targets (their observation entries widen the model's embedding)."""
  targets = config.experiments.p3.targets if "experiments" in config and "p3" in config.experiments else {}
  return {n: common.env_of(config, f"experiments.p3.targets.{n}") for n in targets}


def build_model(config, env):
  nvec = getattr(env, "obs_nvec", None)
  others = []
  for name, t in target_envs(config).items():
    other = getattr(t, "obs_nvec", None)
    check(nvec is None or other is not None, f"experiments.p3.targets.{name}.name",
          f"has no integer observation entries to share an embedding with {config.env.name}", t.name)
    others.append(other)
  return learner_lib.make_model(config.imitation.model, env.action_space(env.default_params).n,
                                learner_lib.widened_obs_nvec(nvec, others))


def load_teacher_histories(config, workdir: str):
  """The sealed teacher store(s), every chunk checked (ConfigError naming the file otherwise)."""
  srcs = sources(config)
  if not srcs:
    teachers_from = common.teachers_at(config, workdir)
    return layout.load_histories(layout.histories_dir(teachers_from), expect={"env": config.env.name})
  # the library names the field inside the imitation section; a store's own error names its file
  return wrap("imitation", arms_lib.join_stores, [layout.load_histories(d) for d in srcs], srcs)


def final_imitators(config, workdir: str):
  """(model, params [A * S, ...], arms, num_seeds) of the finished imitation stage in workdir."""
  env = common.env_of(config)
  im = config.imitation
  arms, num_seeds = arm_names(config), int(im.num_seeds)
  model = build_model(config, env)
  learner = learner_lib.make_learner(im.train, model)
  obs_shape, obs_dtype = envs_lib.obs_spec(env)
  tokens = jax.tree.map(
      lambda x: jnp.zeros((int(im.train.seq_len),) + x.shape, x.dtype),
      learner_lib.Tokens(obs=jnp.zeros(obs_shape, obs_dtype), prev_action=jnp.int32(0),
                         prev_reward=jnp.float32(0), prev_done=jnp.bool_(False), prev_explore=jnp.bool_(False)))
  abstract = jax.eval_shape(jax.vmap(learner.init, in_axes=(0, None)),
                            learner_lib.model_keys(int(config.seed), len(arms), num_seeds), tokens)
  abstract = sharding.restore_target(abstract, len(arms) * num_seeds)
  state = layout.restore(layout.path(workdir, "imitators", "checkpoints"), abstract,
                         "imitation section (model, arms, seeds, or the P3 targets' observation entries)")
  return model, state.params, arms, num_seeds


def arm(config, workdir: str, name: str):
  """(model, params [S, ...] of arm `name`, num_seeds) of the finished imitation stage."""
  model, params, arms, num_seeds = final_imitators(config, workdir)
  return model, learner_lib.arm_params(params, arms, name, num_seeds), num_seeds


def layout_models(num_models: int):
  """(padded model count, mesh) of the imitation program (`sharding.padded_layout` over every device)."""
  return sharding.padded_layout(num_models)


def streams_per_arm(data_meta) -> dict:
  """{arm: streams per learner of its source} (the env-step axis of its fidelity curve)."""
  return {a: int(m.get("source_streams_per_learner", 1)) for a, m in data_meta["arms"].items()}


def teacher_setup(config):
  """(env, tasks [K], task ids, teacher) of a config's teacher stage."""
  env = common.env_of(config)
  tasks, task_ids = common.teacher_tasks(config, env)
  return env, tasks, task_ids, dqn.make_teacher(config.teacher.dqn, env)


def final_state(config, workdir: str):
  """The teachers' final TeacherState [seeds, tasks, ...] from a finished teacher stage in workdir."""
  env, tasks, task_ids, teacher = teacher_setup(config)
  num_seeds = int(config.teacher.num_seeds)
  abstract = jax.eval_shape(population.per_task(teacher.init),
                            population.seed_task_keys(config.seed, num_seeds, len(task_ids)), tasks)
  abstract = sharding.restore_target(abstract, num_seeds)
  return layout.restore(layout.path(workdir, "teachers", "checkpoints"), abstract, "teacher section",
                        step=teacher.num_segments)


def teacher_greedy(config, workdir, manifest):
  """(greedy [R, K, segments], steps) of the teacher run, or (None, None) without one."""
  curves = None if "sources" in manifest else layout.teacher_curves(common.teachers_at(config, workdir))
  if curves is None or "greedy_returns" not in curves:
    return None, None
  return np.asarray(curves["greedy_returns"]), np.asarray(curves["greedy_env_steps"])


def demonstrator(ad) -> str:
  """Who makes the AD-epsilon streams of `imitation.ad_eps` `ad`: "oracle" (the default), "teacher" or
  "searcher"."""
  return str(ad.get("demonstrator", "oracle"))


def generator(config, env) -> dict:
  """The P2 summary's account of the power control's data: {"generator": "oracle" / "teacher" / "searcher",
  "generator_description": what the searcher does (the env's own words; "" for the others)}."""
  name = demonstrator(config.imitation.ad_eps)
  return {"generator": name, "generator_description": str(getattr(env, "search_description", "")) if name == "searcher" else ""}


def row_protocol(config, kind: str, actions: dict) -> dict:
  """The action protocol of one P2 row: the study's, except that a power-control row whose data were made
  without exploration noise (the scripted searcher with `imitation.ad_eps` eps_floor 0 and decay_fraction 0)
  plays its argmax or sample with epsilon 0, as its data's learner acted (BUILD_NOTES 2026-12-07; under a
  sampled protocol with epsilon 0, DarkRoom's, nothing changes)."""
  if kind != "power_control":                        # the study's rows (and configs without ad_eps) as they are
    return actions
  ad = config.imitation.ad_eps
  quiet = demonstrator(ad) == "searcher" and float(ad.eps_floor) == 0 and float(ad.decay_fraction) == 0
  return {**actions, "epsilon": 0.0, "epsilon_decay": 0} if quiet else actions


def demonstrator_greedy(config, greedy, optimum, num_seeds: int) -> list | None:
  """Per replicate, the greedy return of the power control's AD-epsilon demonstrator in the row's unit
  (fractions of each task's optimum when `optimum` is given): 1 for the env's oracle; for each replicate's
  final DQN ("teacher"), the teachers' last greedy evaluation (`teacher_greedy`'s greedy [R, K, segments]),
  which evaluates those weights. None where it is not known (the row then keeps the behaviour basis)."""
  if demonstrator(config.imitation.ad_eps) in ("oracle", "searcher"):   # the searcher, once
    # it has found the goal, walks straight there; without an optimum (Breakout's ladder) its greedy policy is
    # its behaviour, which changes within its stream: None keeps the behaviour basis, its own continuation
    return None if optimum is None else [1.0] * int(num_seeds)
  if greedy is None:
    return None
  return [float(v) for v in replicates.in_unit(np.asarray(greedy)[..., -1], optimum).mean(-1)]
