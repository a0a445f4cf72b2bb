"""What the scripts that roll one P2 arm out on its training tasks share (`experiments.prompted_competence`,
`experiments.rollout_modes`, `experiments.competence_protocol`): the action protocol, the finished run's imitators of that arm, its teachers' histories, the first
training tasks and the arm's data on them, and the competence gate's horizon, with every bad flag, run
directory or environment refused as a one-line usage error.
"""
from __future__ import annotations

import json
import os
import types

import numpy as np
from absl import app


def protocol(config) -> dict:
  """The evaluation section's action protocol as rollout keywords (`artifacts.protocol`), a bad field
  refused as a one-line usage error naming it."""
  from cl_limits.stages import artifacts  # noqa: PLC0415
  from cl_limits.stages.base import ConfigError  # noqa: PLC0415
  try:
    return artifacts.protocol(config)
  except ConfigError as e:
    raise app.UsageError(str(e)) from None


def load(config, workdir: str, name: str, tasks: int, fixed_episodes: bool = True) -> types.SimpleNamespace:
  """The arm `name` of the finished run in `workdir` on its first `tasks` training tasks (0: the P2
  stage's competence tasks). Fields: env, model, params, num_seeds, arm_index (among the run's arms),
  history, manifest, arm (resolved), tasks, ids, n, stage_n (the P2 stage's competence task count),
  t_opt (every training task's optimum, or None), opt (the first n), data (per replicate), ep_len (None where
  episodes end early: only for callers that read episodes as the P2 stage does, `fixed_episodes=False`),
  horizon, run_config (the run's config.json as a dict, {} where absent)."""
  from cl_limits.analysis import ceiling, replicates  # noqa: PLC0415
  from cl_limits.histories import datasets  # noqa: PLC0415
  from cl_limits.imitation import learner  # noqa: PLC0415
  from cl_limits.stages import artifacts, common, p2  # noqa: PLC0415
  from cl_limits.stages.base import ConfigError  # noqa: PLC0415

  if name not in config.imitation.arms:
    raise app.UsageError(f"--arm={name!r}: not an arm of this config ({', '.join(config.imitation.arms)})")
  from cl_limits.stages import layout  # noqa: PLC0415
  run = layout.read_config(workdir) or {}           # kept on the result as `run_config`
  if "seed" in run and int(run["seed"]) != int(config.seed):     # the rollouts' keys come from the seed
    raise app.UsageError(f"--config.seed={int(config.seed)}: the run in --workdir={workdir} was made with "
                         f"seed {int(run['seed'])}; pass --config.seed={int(run['seed'])}")
  try:
    env = common.env_of(config)
    model, params, arms, num_seeds = artifacts.final_imitators(config, workdir)
    history, manifest = artifacts.load_teacher_histories(config, workdir)
  except (ConfigError, FileNotFoundError, ValueError) as e:
    raise app.UsageError(f"--workdir={workdir}: {e}") from None
  params = learner.arm_params(params, arms, name, num_seeds)
  ep_len = common.episode_length(env)
  if fixed_episodes and not ep_len:
    raise app.UsageError(f"env.name={config.env.name}: needs episodes of one fixed length")
  all_tasks, all_ids = common.teacher_tasks(config, env)
  stage_n = common.competence_task_count(config, len(all_ids))
  n = min(int(tasks) or stage_n, len(all_ids))
  arm = datasets.resolve_arm(config.imitation.arms[name])
  t_opt = ceiling.teacher_optimum(env, manifest)
  data = replicates.data_per_replicate(history, manifest, arm, int(config.experiments.p2.ceiling_window),
                                       t_opt, tasks=n)
  return types.SimpleNamespace(
      env=env, model=model, params=params, num_seeds=num_seeds, arm_index=arms.index(name), history=history,
      manifest=manifest, arm=arm, tasks=common.first(all_tasks, n), ids=np.asarray(all_ids)[:n], n=n,
      stage_n=stage_n, t_opt=t_opt, opt=None if t_opt is None else np.asarray(t_opt)[:n], data=data,
      ep_len=ep_len, horizon=p2.competence_horizon(data, ep_len), run_config=run)


def competence(config, r: types.SimpleNamespace, params, protocol: dict, random: float, needed: float,
               rollouts: int | None = None) -> dict:
  """The P2 stage's competence gate of arm `r` (`load(..., 0)`) played by `params` [S, ...] under
  `protocol`: the stage's tasks, keys and horizon, scored by `replicates.competence` against the stage's
  random level and threshold. `rollouts` per task: the count the stage's gate played (its summary's
  `competence.rollouts`; the stage plays one for a row without headroom), else the config's."""
  from cl_limits.analysis import replicates  # noqa: PLC0415
  from cl_limits.rollouts import chunked  # noqa: PLC0415
  from cl_limits.stages import p2  # noqa: PLC0415
  m, tasks, keys = gate_inputs(config, r, rollouts)
  res = chunked.run_batched(r.model, r.env, r.horizon, params, tasks, keys, **protocol)
  rets = p2.episode_returns(res, r.horizon, r.ep_len)
  return replicates.competence(rets, r.data, None if r.opt is None else np.tile(r.opt, m), float(random),
                               float(needed), rollouts=m)


def gate_inputs(config, r: types.SimpleNamespace, rollouts: int | None = None):
  """(m, tasks [m x K], keys [S, m x K]) of arm `r`'s competence rollouts as the P2 stage plays them: m =
  `rollouts` per task (the count its gate played), else the config's, each rollout with its own key."""
  from cl_limits.stages import common, p2  # noqa: PLC0415
  m = int(rollouts or common.competence_rollouts(config))
  return m, common.tile(r.tasks, m), p2.row_keys(config, r.arm_index, p2.COMPETENCE_KEYS, r.num_seeds, r.n * m)


def protocol_headroom(config, r: types.SimpleNamespace, protocol: dict, entry: dict) -> tuple[dict, dict]:
  """A P2 summary entry's headroom gate re-read on the teachers' policy that `protocol` plays like
  (`common.headroom_basis`; the stage's protocol may differ): (its "per_replicate" with both rises and
  the basis's as "rise", its "headroom")."""
  from cl_limits.analysis import replicates  # noqa: PLC0415
  from cl_limits.stages import common  # noqa: PLC0415
  h, pr = entry["headroom"], entry["per_replicate"]
  basis = common.headroom_basis(config, r.arm, protocol)
  rises = {b: replicates.per_replicate_rise(pr, b) for b in replicates.BASES}
  return ({**pr, **{f"{b}_rise": v for b, v in rises.items()}, "rise": rises[basis]},
          replicates.headroom(pr, basis, h["top"], h["random"], h["fraction"]))


def reread(config, r: types.SimpleNamespace, protocol: dict, entry: dict) -> dict:
  """A stored P2 entry with its "per_replicate" and "headroom" re-read under `protocol` (`protocol_headroom`)."""
  per_replicate, head = protocol_headroom(config, r, protocol, entry)
  return {**entry, "per_replicate": per_replicate, "headroom": head}


def p2_row(config, r: types.SimpleNamespace, params, protocol: dict, stage_entry: dict, competence: dict,
           horizon: int | None = None) -> dict:
  """The P2 stage's test of arm `r` (`load(..., 0)`) played by `params` [S, ...] under `protocol`, as a
  P2 summary entry: the stage's held-out tasks, keys and horizon, scored as the stage scores them (late
  window, late - ceiling, collapse against the data's end, trend), with the stage's own ceiling, headroom and
  learning-in-data gates (`stage_entry`: the arm's entry in the run's P2 summary) and `competence` (this
  `params`' competence gate, `competence(...)`), and the episode returns [S, K, E] it scored. `horizon`:
  other steps than the stage's (whole episodes), the late window and trend read over them. Read the
  entry's verdict with `gates.p2_verdict`. The data's cut over every training task is kept on `r`
  (`r.p2_data`) for the next call."""
  from cl_limits.analysis import ceiling, replicates  # noqa: PLC0415
  from cl_limits.rollouts import chunked  # noqa: PLC0415
  from cl_limits.stages import common, p2  # noqa: PLC0415
  if "skipped" in stage_entry:
    raise app.UsageError("the P2 stage skipped this arm's held-out rollout for want of headroom: it has no P2 "
                         "row to play")
  p = config.experiments.p2
  tasks, task_ids = common.heldout_tasks(config, r.env, int(p.num_tasks))
  e_opt = None if r.t_opt is None else ceiling.task_optimum(r.env, task_ids)
  data = getattr(r, "p2_data", None)
  if data is None:      # every training task's cut, as the stage reads it: once per loaded run
    data = r.p2_data = replicates.data_per_replicate(r.history, r.manifest, r.arm, int(p.ceiling_window), r.t_opt)
  horizon = int(horizon or stage_entry["horizon_steps"])
  keys = p2.row_keys(config, r.arm_index, p2.HELD_OUT_KEYS, r.num_seeds, len(task_ids))
  res = chunked.run_batched(r.model, r.env, horizon, params, tasks, keys,
                            settings=common.rollout_settings(config), **protocol)
  per_replicate, head = protocol_headroom(config, r, protocol, stage_entry)
  c = {**per_replicate, "headroom": head, "learning": stage_entry["learning"]}
  rets = p2.episode_returns(res, horizon, r.ep_len)
  return p2.summary_entry("p2", r.arm, data, c, competence, rets, e_opt, float(p.late_fraction),
                          float(p.trend_from), horizon, int(stage_entry["cut_learner_steps"]),
                          float(p.competence_fraction), int(stage_entry["competence"]["horizon_steps"]),
                          float(p.collapse_margin)), rets


def rescore(p2_path: str, results_path: str, models, reread) -> None:
  """P2 rows written before the headroom gate read the teachers' policy that the protocol plays like
  (their headroom has no "basis"): re-read under the amended gate (BUILD_NOTES, 2026-12-05) from the stored
  rollouts' figures, keeping what they read before under "before_headroom_basis", in p2.json and the last
  round of rounds.json."""
  from cl_limits.report import gates  # noqa: PLC0415
  last = json.load(open(p2_path))
  if all("basis" in last[m]["headroom"] for m in models):
    return
  results = json.load(open(results_path))
  for m in models:
    e = last[m]
    new = reread(e)
    text, v, rule, _ = gates.p2_verdict(new)
    last[m] = {**new, "gates_text": text, "verdict": v, "rule": rule,
               "before_headroom_basis": {"headroom": e["headroom"], "verdict": e["verdict"]}}
    print(f"  {m:8s} P2 row re-read with the headroom in the protocol's terms: {e['verdict']} -> {v}", flush=True)
    if results and "p2" in results[-1]:
      results[-1]["p2"][m]["verdict_before_headroom_basis"] = results[-1]["p2"][m]["verdict"]
      results[-1]["p2"][m]["verdict"] = v
  for path, obj in ((p2_path, last), (results_path, results)):     # each replaced whole, never half-written
    with open(path + ".tmp", "w") as f:
      json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


def _effects(env, obs, actions) -> np.ndarray:
  """Each action's effect class at its observation (`action_classes_at`, else the fixed `action_classes`,
  else the action itself)."""
  from cl_limits.imitation import fidelity  # noqa: PLC0415
  actions = np.asarray(actions, np.int64)
  at = fidelity.classes_of(env)
  if at is not None:
    classes = np.asarray(at(obs))
    return np.take_along_axis(classes, actions[..., None], -1)[..., 0]
  fixed = getattr(env, "action_classes", None)
  return actions if fixed is None else np.asarray(fixed, np.int64)[actions]


def shares(env, obs, actions) -> dict:
  """{"action": share of each raw action, "effect": share of each effect class} of `actions` [N] taken at
  `obs` [N, ...] (MinAtar Breakout: a move into a wall counts as the no-op)."""
  n = int(env.action_space(env.default_params).n)
  actions, obs = np.asarray(actions, np.int64), np.asarray(obs)
  obs = obs.reshape((actions.size,) + obs.shape[actions.ndim:])           # [N, ...] whatever leads
  actions = actions.reshape(-1)
  effects = _effects(env, obs, actions)
  k = n if getattr(env, "action_classes", None) is None else max(env.action_classes) + 1
  return {"action": (np.bincount(actions, minlength=n) / max(actions.size, 1)).tolist(),
          "effect": (np.bincount(effects, minlength=k) / max(actions.size, 1)).tolist()}


def choices(config, r: types.SimpleNamespace, params, protocol: dict, last: int,
            rollouts: int | None = None) -> list[dict]:
  """Per replicate, what the imitator of arm `r` (`load(..., 0)`) chose over the last `last` steps of the
  competence gate's rollout (its own choice, before any epsilon draw; the stage's tasks, keys and horizon
  in one scan, which plays as the chunked rollout does) beside its data's recorded greedy choices over the
  last `last` kept steps of every stream on those tasks and over the first `last` (the learner before it
  learned): [{"imitator": shares, "data": shares or None, "data_start": shares or None}]. `rollouts`: as
  `competence`'s."""
  import jax  # noqa: PLC0415

  from cl_limits.histories import datasets  # noqa: PLC0415
  from cl_limits.rollouts import rollout  # noqa: PLC0415
  _, tasks, keys = gate_inputs(config, r, rollouts)
  fn = rollout.make_batched_rollout(r.model, r.env, r.horizon, rollout.episodes_for(r.env, r.horizon),
                                    record=True, **protocol)
  tr = jax.device_get(fn(params, tasks, keys)).transitions          # [S, m x K, T, ...]
  h = r.history
  done = np.asarray(h.terminated) | np.asarray(h.truncated)
  keep = datasets.arm_keep(done, np.asarray(h.episode), {**r.arm, "streams": 0})      # every stream

  def data_shares(s, pick):
    if h.greedy is None:
      return None
    idx = [(k, e, pick(np.nonzero(keep[s, k, e])[0])) for k in range(r.n) for e in range(keep.shape[2])]
    obs = np.concatenate([np.asarray(h.obs[s, k, e])[t] for k, e, t in idx])
    return shares(r.env, obs, np.concatenate([np.asarray(h.greedy[s, k, e])[t] for k, e, t in idx]))

  return [{"imitator": shares(r.env, np.asarray(tr.obs)[s, :, -last:], np.asarray(tr.greedy)[s, :, -last:]),
           "data": data_shares(s, lambda t: t[-last:]), "data_start": data_shares(s, lambda t: t[:last])}
          for s in range(r.num_seeds)]


def last_episodes(rets, m: int) -> np.ndarray:
  """The mean of each row's last `m` finished episodes (rets [..., E], NaN past a row's own end, as
  `p2.episode_returns` gives them where episodes end early)."""
  from cl_limits.analysis import replicates  # noqa: PLC0415
  rets = np.asarray(rets, np.float64)
  out = np.full(rets.shape[:-1], np.nan)
  for idx in np.ndindex(*rets.shape[:-1]):
    done = replicates.own_last(rets[idx], m)
    out[idx] = done.mean() if done.size else np.nan
  return out
