"""P2, beyond the ceiling: imitators of truncated histories rolled out far past their data.

For every arm of `experiments.p2.arms` (AD on the teacher histories cut at a fraction of training):
  1. the arm's *ceiling*: the best moving-average return anywhere in its data (analysis/ceiling.py, over
     `ceiling_window` teacher episodes, i.e. ceil(window / gap) kept episodes);
  2. its frozen imitators (every seed) rolled out on held-out tasks from an empty context, the context
     carried across episodes, for `horizon_factor` x the environment steps of one truncated history;
  3. late return (last `late_fraction` of the episodes) against the ceiling, the teachers' continuation
     past the cut on the same environment-step axis, and their greedy policy at the cut.
Writes `<workdir>/p2/{returns.npz, summary.json, curves.png}` and TensorBoard under `<workdir>/tb/p2`.
"""
from __future__ import annotations

import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits.analysis import ceiling as ceiling_lib
from cl_limits.analysis import replicates, stats
from cl_limits.histories import adeps, datasets
from cl_limits.imitation import learner as learner_lib
from cl_limits.rollouts import chunked
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import artifacts, common, layout, outputs, p2_figures
from cl_limits.stages.base import Stage, check, in_range, positive_int

PARTIAL = "partial"     # <workdir>/p2/partial/<row>.npz: a held-out rollout's state between chunks


def control(config) -> str:
  return str(config.experiments.p2.get("power_control", "") or "")


def known_positive(config) -> bool:
  return bool(control(config)) and bool(config.experiments.p2.get("known_positive", False))


def rows(config) -> list[tuple[str, str]]:
  """[(arm, "p2" | "power_control" | "known_positive")] in report order; the known positive is the power
  control's own data-generating process continued past the cut (no imitator), scored by the same rule."""
  out = [(a, "p2") for a in common.p2_arms(config)] + ([(control(config), "power_control")] if control(config) else [])
  return out + ([(control(config), "known_positive")] if known_positive(config) else [])


def enabled(config) -> bool:
  return bool(rows(config))


def validate(config) -> None:
  common.validate_rollout(config)
  artifacts.p2_protocol(config)
  names = artifacts.arm_names(config)
  for a, kind in rows(config):
    field = "experiments.p2.arms" if kind == "p2" else "experiments.p2.power_control"
    check(a in names, field, f"names an arm that is not one of {names}", a)
    arm = datasets.resolve_arm(config.imitation.arms[a])
    want = "teacher" if kind == "p2" else "ad_eps"
    if kind == "known_positive":
      continue
    check(arm["data"] == want and arm["portion"] == "first", field,
          f"arm {a!r} must train on {want} histories truncated at a fraction of training (data={want!r}, "
          "portion='first')", (arm["data"], arm["portion"]))
  p2 = config.experiments.p2
  in_range(config, "experiments.p2.horizon_factor", 0.0, float("inf"), lo_open=True)
  in_range(config, "experiments.p2.late_fraction", 0.0, 1.0, lo_open=True)
  in_range(config, "experiments.p2.trend_from", 0.0, 1.0, hi_open=True)
  in_range(config, "experiments.p2.headroom_fraction", 0.0, 1.0)
  in_range(config, "experiments.p2.learning_fraction", 0.0, 1.0)
  in_range(config, "experiments.p2.competence_fraction", 0.0, 1.0, lo_open=True)
  in_range(config, "experiments.p2.collapse_margin", 0.0, 1.0)
  check(isinstance(p2.get("known_positive", False), bool), "experiments.p2.known_positive", "must be True or False",
        p2.get("known_positive"))
  demo, env = artifacts.demonstrator(config.imitation.ad_eps), common.env_of(config)
  check(not p2.get("known_positive", False) or (demo == "oracle" and hasattr(env, "optimal_action"))
        or (demo == "searcher" and hasattr(env, "search_start")), "experiments.p2.known_positive",
        "continues the AD-epsilon generator without its DQN, so it needs imitation.ad_eps.demonstrator='oracle' "
        f"(an env with an oracle) or 'searcher' (an env with a scripted searcher); {config.env.name}, {demo!r}", True)
  check(isinstance(p2.skip_without_headroom, bool), "experiments.p2.skip_without_headroom", "must be True or False",
        p2.skip_without_headroom)
  positive_int(config, "experiments.p2.ceiling_window")
  positive_int(config, "experiments.p2.num_tasks", minimum=0)
  positive_int(config, "experiments.p2.competence_tasks", minimum=0)
  positive_int(config, "experiments.p2.competence_rollouts")
  check(int(p2.num_tasks) > 0, "experiments.p2.num_tasks", "must name how many held-out tasks (>= 1)",
        p2.num_tasks)


def _random_return(env, tasks, optimum, seed: int, episodes: int = 20) -> float:
  """A uniform random policy's mean return on tasks [K], in the unit (fractions when optimum is given)."""
  ep = common.episode_length(env) or 1000
  horizon = episodes * ep
  res = rollout_lib.random_rollout(env, horizon, tasks,
                                   jax.random.split(jax.random.key(seed), int(jax.tree.leaves(tasks)[0].shape[0]))[None])
  per_task = np.nanmean(np.asarray(res.episode_return)[0], axis=-1)               # [K]
  return float(np.mean(replicates.in_unit(per_task, optimum)))


def run(step, log=print) -> None:
  config, workdir = step.config, step.workdir
  env = common.env_of(config)
  p2 = config.experiments.p2
  ep_len = common.episode_length(env)
  window, frac = int(p2.ceiling_window), float(p2.late_fraction)
  model, params, arm_list, num_seeds = artifacts.final_imitators(config, workdir)
  tasks, task_ids = common.heldout_tasks(config, env, int(p2.num_tasks))
  train_tasks, train_ids = common.teacher_tasks(config, env)
  n_comp, n_roll = common.competence_task_count(config, len(train_ids)), common.competence_rollouts(config)
  sources = {"teacher": artifacts.load_teacher_histories(config, workdir)}
  if control(config):
    sources["ad_eps"] = layout.load_histories(layout.path(workdir, "histories", "ad_eps"))
  t_opt = ceiling_lib.teacher_optimum(env, sources["teacher"][1])
  e_opt = ceiling_lib.task_optimum(env, task_ids) if t_opt is not None else None
  unit = "fraction of each task's optimal return" if t_opt is not None else "return"
  random = _random_return(env, train_tasks, t_opt, int(config.seed) + 29)
  greedy, greedy_steps = artifacts.teacher_greedy(config, workdir, sources["teacher"][1])
  actions = artifacts.p2_protocol(config)
  summary = {"protocol": {"actions": common.describe_actions(common.p2_actions_section(config)[0]),
                          "context": "carried across episodes, empty at the start",
                          "horizon": f"{p2.horizon_factor:g} x the environment steps of one truncated history",
                          "late": f"last {frac:.0%} of episodes", "ceiling_window_episodes": window,
                          "unit": unit, "trend": f"slope of return against log(episode) over the episodes "
                                                 f"after the first {float(p2.trend_from):.0%}",
                          "competence": f"{n_comp} training tasks x {n_roll} rollout(s) (1 without headroom) from an empty context for one kept "
                                        "history's steps (the imitator's own time), its last episodes vs "
                                        "the data's last kept ones as a gain over random, "
                                        f"(imitator - random) / (data end - random); passes when the "
                                        f"interval's lower end is at least {float(p2.competence_fraction):g}",
                          "collapse": "the late window against the data's last kept episodes, over (top - "
                                      "random): collapsed when the interval's lower end is below "
                                      f"-{float(p2.collapse_margin):g}",
                          "replicates": num_seeds,
                          "ci": f"t-interval over the {num_seeds} replicates' means (tasks and episodes are "
                                "repeated measures inside a replicate)"},
             "task_ids": np.asarray(task_ids).tolist(), "competence_task_ids": np.asarray(train_ids)[:n_comp].tolist(),
             "random_return": random, "arms": {},
             "power_control_note": "" if control(config) else str(p2.get("power_control_note", "") or ""),
             **(artifacts.generator(config, env) if control(config) else {"generator": ""})}
  arrays = {}
  tb_dir = layout.path(workdir, "tb", "p2")
  for i_row, (arm_name, kind) in enumerate(rows(config)):
    name = common.p2_row_name(arm_name, kind)
    arm = datasets.resolve_arm(config.imitation.arms[arm_name])
    history, manifest = sources[arm["data"]]
    opt = t_opt if kind == "p2" else ceiling_lib.task_optimum(env, manifest["task_ids"])
    data = replicates.data_per_replicate(history, manifest, arm, window, opt)
    cut = int(data[0]["cut_learner_steps"])
    demo = artifacts.demonstrator_greedy(config, greedy, opt, len(data)) if kind == "power_control" else None
    c = replicates.ceilings(data, greedy if kind == "p2" else None, greedy_steps, opt, random=random, demonstrator=demo,
                            headroom_fraction=float(p2.headroom_fraction), basis=common.headroom_basis(config, arm, actions))
    c["learning"] = replicates.learning_in_data(data, opt is not None, c["headroom"]["top"],
                                                c["headroom"]["random"], float(p2.learning_fraction))
    i = arm_list.index(arm_name)
    arm_params = learner_lib.arm_params(params, arm_list, arm_name, num_seeds)
    cut_stream = int(data[0]["cut_stream_steps"])

    def act(horizon, task_params, seed_offset, checkpoint=None):
      """Episode returns [R, K, E] (and ends) of the row's learner for `horizon` steps on task_params."""
      n_k = int(jax.tree.leaves(task_params)[0].shape[0])
      keys = row_keys(config, i, seed_offset, num_seeds, n_k)
      if kind == "known_positive":
        return _generator_returns(env, task_params, keys, horizon, cut_stream, config.imitation.ad_eps)
      res = chunked.run_batched(model, env, horizon, arm_params, task_params, keys,
                                settings=common.rollout_settings(config), checkpoint=checkpoint, log=log,
                                label=f"[p2] {name}", **artifacts.row_protocol(config, kind, actions))
      rets = episode_returns(res, horizon, ep_len)
      return rets, np.asarray(res.episode_end)[..., :rets.shape[-1]]
    # Competence at the end of the data: on the training tasks, for one kept history's steps (the
    # imitator's own time: one stream's kept episodes), its last episodes against the data's last ones.
    comp_h = competence_horizon(data, ep_len)
    rolls = n_roll if c["headroom"]["ok"] else 1      # [rolls x n_comp], one key each; 1: no verdict reads it
    comp_rets, _ = act(comp_h, common.tile(common.first(train_tasks, n_comp), rolls), COMPETENCE_KEYS)
    comp_data = replicates.data_per_replicate(history, manifest, arm, window, opt, tasks=n_comp)
    comp = replicates.competence(comp_rets, comp_data, None if opt is None else np.tile(opt[:n_comp], rolls), random, float(p2.competence_fraction), rollouts=rolls)
    # The test: held-out tasks, horizon_factor x one truncated history.
    horizon = common.whole_episodes(float(p2.horizon_factor) * cut, ep_len)
    if not c["headroom"]["ok"] and bool(p2.skip_without_headroom):
      summary["arms"][name] = summary_entry(kind, arm, data, c, comp, None, e_opt, frac, float(p2.trend_from), horizon,
                                     cut, float(p2.competence_fraction), comp_h)
      arrays[f"{name}/competence_return"] = comp_rets
      log(f"[p2] {name}: no headroom ({'the teachers' if kind == 'p2' else 'its generator'}: {c['headroom']['basis']} return rose {c['headroom']['rise']:.3f} past the "
          f"ceiling, {c['headroom']['needed']:.3f} needed): the verdict cannot depend on the held-out rollout, "
          "which is skipped (experiments.p2.skip_without_headroom)")
      continue
    log(f"[p2] {name}: data cut at {cut:,} learner steps; ceiling {np.mean(c['ceiling']):.3f} ({unit}); "
        f"{num_seeds} replicates x {len(task_ids)} held-out tasks for {horizon:,} steps each")
    t0 = time.time()
    rets, ends = act(horizon, tasks, HELD_OUT_KEYS, layout.path(workdir, "p2", PARTIAL, f"{name}.npz"))   # [R, K, E]
    log(f"[p2] {name}: {num_seeds * len(task_ids) * horizon:,} env steps in {time.time() - t0:.1f}s")
    entry = summary_entry(kind, arm, data, c, comp, rets, e_opt, frac, float(p2.trend_from), horizon, cut,
                   float(p2.competence_fraction), comp_h, float(p2.collapse_margin))
    summary["arms"][name] = entry
    arrays.update({f"{name}/episode_return": rets, f"{name}/episode_end": ends,
                   f"{name}/competence_return": comp_rets, **p2_figures.axis_arrays(name, kind, arm, data),
                   f"{name}/teacher_curve": data[0]["teacher_curve"], f"{name}/teacher_x": data[0]["teacher_x"]})
    arrays[f"{name}/unit_return"] = replicates.in_unit(rets, e_opt, task_axis=1)
    for r, d in enumerate(data):
      arrays[f"{name}/data_curve_{r}"] = d["data_curve_norm" if opt is not None else "data_curve"]
      arrays[f"{name}/teacher_curve_{r}"] = d["teacher_curve_norm" if opt is not None else "teacher_curve"]
      arrays[f"{name}/teacher_x_{r}"] = d["teacher_x"]       # replicates end different numbers of episodes
    outputs.line_board(layout.path(tb_dir, "teacher"), f"p2/{name}/teacher", data[0]["teacher_x"],
                       data[0]["teacher_curve"])
    outputs.curves_board(tb_dir, f"p2/{name}", *p2_figures.tb_runs(arrays, name, rets, ends, horizon),
                         {"ceiling": float(np.mean(c["ceiling"]))}, bins=min(100, rets.shape[-1]))
    log(f"[p2] {name}: late - ceiling {common.fmt(entry['late_minus_ceiling'])}, trend {common.fmt(entry['trend'])}; "
        f"headroom {entry['headroom']['rise']:.3f} (needs {entry['headroom']['needed']:.3f}); competence "
        f"{common.fmt(entry['competence']['interval'])} of its data's gain over random")
  if greedy is not None:
    arrays.update(teacher_greedy=replicates.in_unit(greedy, t_opt, task_axis=1).mean(1), teacher_greedy_steps=greedy_steps)
  outputs.write_npz(layout.path(workdir, "p2", "returns.npz"), **arrays)
  p2_figures.plot(summary, arrays, layout.path(workdir, "p2", "curves.png"), p2_figures.title(config, task_ids, train_ids))
  p2_figures.plot_gap(summary, arrays, int(sources["teacher"][1]["streams_per_learner"]), layout.path(workdir, "p2", "gap.png"))
  outputs.write_json(layout.path(workdir, "p2", layout.SUMMARY), summary)
  shutil.rmtree(layout.path(workdir, "p2", PARTIAL), ignore_errors=True)   # the summary holds what they held


# Offsets of the rollout keys from config.seed: the competence rollouts and the held-out test.
COMPETENCE_KEYS, HELD_OUT_KEYS = 31, 13


def row_keys(config, arm_index: int, offset: int, num_seeds: int, num_tasks: int):
  """[num_seeds, num_tasks] keys of one P2 row's rollouts: the row's imitation arm (its index among the
  arms) folded into config.seed + offset (`COMPETENCE_KEYS` or `HELD_OUT_KEYS`)."""
  return jax.random.split(jax.random.fold_in(jax.random.key(int(config.seed) + offset), arm_index),
                          num_seeds * num_tasks).reshape(num_seeds, num_tasks)


def competence_horizon(data: list, ep_len: int | None) -> int:
  """The competence rollouts' steps: one kept history in the imitator's own time (the replicates' mean
  `kept_stream_steps` of `replicates.data_per_replicate`), cut to whole episodes."""
  return common.whole_episodes(round(np.mean([d["kept_stream_steps"] for d in data])), ep_len)


PER_REPLICATE = ("behaviour_ceiling", "greedy_at_cut", "ceiling", "rise", "in_sample_ceiling", "cut", "greedy_rise",
                 "behaviour_rise")

def _generator_returns(env, tasks, keys, horizon: int, start: int, ad):
  """The AD-epsilon generator (the oracle's, or the searcher) continued from stream step `start`, one stream
  of `horizon` steps per (replicate, task): episode returns and ends [R, K, E]."""
  demo, env = ("searcher" if artifacts.demonstrator(ad) == "searcher" else None), common.with_search(env, ad)
  gen = adeps.make_generate(env, int(horizon), 1, float(ad.eps_floor), float(ad.decay_fraction), start=start,
                            schedule_steps=int(ad.steps), demonstrator=demo)
  hist = jax.device_get(jax.jit(jax.vmap(jax.vmap(gen)))(keys, jax.tree.map(
      lambda x: jnp.broadcast_to(x, (keys.shape[0],) + x.shape), tasks)))
  done = np.asarray(hist.terminated) | np.asarray(hist.truncated)                 # [R, K, 1, T]
  r, k = done.shape[:2]
  rets = [[ceiling_lib.episode_matrix(np.asarray(hist.reward)[a, b], done[a, b]) for b in range(k)] for a in range(r)]
  n = min(m[0].shape[1] for row in rets for m in row)
  return (np.array([[m[0][0, :n] for m in row] for row in rets]),
          np.array([[m[1][0, :n] for m in row] for row in rets]))


def episode_returns(res, horizon, ep_len):
  """Episode returns [R, K, E]: every episode of a fixed length, or, with variable-length episodes, up to
  the most any row finished (NaN past each row's own end; late windows are read at each row's end)."""
  n_ep = horizon // ep_len if ep_len else int(np.max(np.asarray(res.num_episodes)))
  return np.asarray(res.episode_return)[..., :n_ep]


def summary_entry(kind, arm, data, c, comp, rets, e_opt, late_fraction, trend_from, horizon, cut, comp_needed,
                  comp_h, collapse_margin=0.1) -> dict:
  """One row's P2 summary entry (rets None: its held-out rollout was skipped for want of headroom)."""
  if rets is None:
    return {"kind": kind, "fraction": float(arm["fraction"]), "gap": int(arm["gap"]), "cut_learner_steps": cut,
            "horizon_steps": horizon, "headroom": c["headroom"], "learning": c["learning"],
            "ceiling": stats.replicate_interval(np.asarray(c["ceiling"])),
            "competence": {**comp, "needed": comp_needed, "horizon_steps": comp_h},
            "skipped": "no headroom: the held-out rollout was not run (the verdict cannot depend on it)",
            "per_replicate": {k: c[k] for k in PER_REPLICATE}}
  n_ep = rets.shape[-1]
  n_late = max(1, int(round(late_fraction * n_ep)))
  unit_rets = replicates.in_unit(rets, e_opt, task_axis=1)
  late = replicates.own_late(unit_rets, late_fraction)                                 # [R]
  raw_late = replicates.own_late(rets, late_fraction)
  ceil = np.asarray(c["ceiling"])
  trend = replicates.own_trend(unit_rets, trend_from)                                  # [R]
  return {"kind": kind, "fraction": float(arm["fraction"]), "gap": int(arm["gap"]),
          "cut_learner_steps": cut, "horizon_steps": horizon, "episodes": n_ep, "late_episodes": n_late,
          "late_fraction": float(late_fraction),
          "episodes_per_replicate": np.isfinite(rets).sum(-1).mean(-1).tolist(),
          "per_replicate": {k: c[k] for k in PER_REPLICATE}
                           | {"late": late.tolist(), "late_raw": raw_late.tolist(),
                              "trend": trend.tolist(),
                              "teacher_final": [d.get("teacher_final_norm", d["teacher_final"]) for d in data]},
          "ceiling": stats.replicate_interval(ceil),
          "late": stats.replicate_interval(late),
          "late_minus_ceiling": stats.replicate_interval(late - ceil),
          "trend": stats.replicate_interval(trend),
          "held": replicates.held_data(late, data, e_opt is not None, c["headroom"]["top"],
                                       c["headroom"]["random"], collapse_margin),
          "headroom": c["headroom"], "learning": c["learning"],
          "competence": {**comp, "needed": comp_needed, "horizon_steps": comp_h}}


STAGE = Stage(name="p2", subdir="p2", reads=("seed", "env", "imitation", "experiments.p2", "experiments.p3.targets",
                                             "evaluation", "tasks", "teacher.dqn.eps_end"),
              locations=("teachers_from", common.ROLLOUT),
              validate=validate, run=run, enabled=enabled, extra_outputs=("tb/p2",))
