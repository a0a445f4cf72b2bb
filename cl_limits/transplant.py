"""P3 on MinAtar: leave one game out, and ask whether a frozen imitator learns the game it never saw.

`run_transplant(config, workdir)` (experiments/configs/transplant.py; `experiments/pipeline.py` runs it
when the config has a `transplant` section) does, resumably, stage by stage:

  1. teachers: DQN learns every game of `transplant.games` from scratch (the teacher stage, under
     `workdir/games/<Game>/teachers`). These runs are also the "DQN from scratch" baseline of P3: when a
     game is held out, its own DQN is the learner the imitator is compared with.
  2. imitation, per held-out game (`transplant.heldout`, every game in turn by default): the imitation
     arms train on the joined histories of all the other games (`imitation.sources`), under
     `workdir/holdout/<Game>/imitators`. An arm with `augment=True` sees every training window through its
     own random observation projection and action permutation (GPICL's task augmentation); the others see
     the raw frames.
  3. scoring, per held-out game: every arm of `transplant.arms` rolls out frozen, from an empty context, in
     the held-out game for as many environment steps as its DQN trained (augmented arms in an augmented
     copy of the game, a fresh projection and permutation per rollout), `transplant.repeats` rollouts per
     model seed; the `transplant.hybrid_arm` also as every hybrid variant (test-time SGD, cl_limits/
     rollouts/hybrid.py); a uniform random policy over the same steps. Area under the learning curve and
     final return are normalised between the random policy (0) and the DQN's final return (1), with IQM
     CIs over seeds x rollouts. Writes `holdout/<Game>/p3/{returns.npz, curves.png}` and TensorBoard under
     `tb/transplant/<Game>`.
  4. `transplant/summary.json` and report.md (verdict rows by `verdicts.p3`).

gymnax MinAtar is not the original MinAtar (no sticky actions, episodes cut at 1000 steps): returns are
not directly comparable with published MinAtar curves.
"""
from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from cl_limits import comma_list
from cl_limits import envs as envs_lib
from cl_limits.analysis import learners
from cl_limits.analysis import report as report_lib
from cl_limits.analysis import p3 as p3_lib
from cl_limits.envs import minatar, wrappers
from cl_limits.histories import store
from cl_limits.imitation import runner as imitation_runner
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.teachers.runner import run_teachers

SUMMARY = os.path.join("transplant", "summary.json")


def enabled(config) -> bool:
  return "transplant" in config


def games(config) -> list[str]:
  return comma_list(config.transplant.games)


def heldout_games(config) -> list[str]:
  return comma_list(config.transplant.heldout) or games(config)


def arms(config) -> list[str]:
  return comma_list(config.transplant.arms)


def game_config(config, game: str):
  """The teacher-stage config of one game: the transplant config with env = MinAtar-<game>."""
  d = config.to_dict()
  d.pop("transplant")
  d["env"] = {"name": f"MinAtar-{game}", "kwargs": {}}
  cfg = ml_collections.ConfigDict(d)
  cfg.lock()
  return cfg


def game_dir(workdir: str, game: str) -> str:
  return os.path.join(os.path.abspath(workdir), "games", game)


def holdout_dir(workdir: str, game: str) -> str:
  return os.path.join(os.path.abspath(workdir), "holdout", game)


def holdout_config(config, workdir: str, game: str):
  """The imitation config for held-out `game`: env = that game (its during-training check rolls out
  there), data = the teacher histories of every other game."""
  cfg = ml_collections.ConfigDict(game_config(config, game).to_dict())
  others = [g for g in games(config) if g != game]
  cfg.imitation.sources = ",".join(os.path.join(game_dir(workdir, g), "teachers", "histories") for g in others)
  cfg.lock()
  return cfg


def validate_config(config) -> None:
  """ValueError naming the field, before anything compiles."""
  t = config.transplant
  names = games(config)
  bad = [g for g in names if g not in minatar.GAMES]
  if bad or len(names) < 2 or len(set(names)) != len(names):
    raise ValueError(f"transplant.games: need at least two distinct MinAtar games from {sorted(minatar.GAMES)} "
                     f"(got {t.games!r})")
  held = heldout_games(config)
  if any(g not in names for g in held):
    raise ValueError(f"transplant.heldout: {t.heldout!r} names a game not in transplant.games ({t.games!r})")
  arm_list = imitation_runner.arm_names(config)
  if not arms(config) or any(a not in arm_list for a in arms(config)):
    raise ValueError(f"transplant.arms: {t.arms!r} must name imitation arms from {arm_list}")
  if str(t.hybrid_arm or "") and t.hybrid_arm not in arm_list:
    raise ValueError(f"transplant.hybrid_arm: {t.hybrid_arm!r} is not one of the imitation arms {arm_list}")
  learners.parse_variants(t.variants)
  if int(t.repeats) < 1:
    raise ValueError(f"transplant.repeats: must be >= 1 (got {t.repeats})")
  if not 0 < float(t.late_fraction) <= 1:
    raise ValueError(f"transplant.late_fraction: must be in (0, 1] (got {t.late_fraction})")
  if str(config.imitation.get("sources", "") or ""):
    raise ValueError("imitation.sources: set per held-out game by the transplant experiment; leave it empty")
  from cl_limits.teachers.runner import validate_config as validate_teachers  # noqa: PLC0415
  validate_teachers(game_config(config, names[0]))
  imitation_runner.validate_config(game_config(config, names[0]))


def run_transplant(config, workdir: str, log=print) -> str:
  """Runs (or resumes, or skips) every stage; returns the path of report.md."""
  validate_config(config)
  workdir = os.path.abspath(workdir)
  report = os.path.join(workdir, "report.md")
  if os.path.exists(os.path.join(workdir, SUMMARY)) and os.path.exists(report):
    log(f"[transplant] finished run; report: {report}")
    return report
  os.makedirs(workdir, exist_ok=True)
  for g in games(config):
    log(f"[transplant] teachers: DQN on MinAtar-{g}")
    run_teachers(game_config(config, g), game_dir(workdir, g), log=log)
  results = {}
  for g in heldout_games(config):
    hcfg = holdout_config(config, workdir, g)
    log(f"[transplant] held out {g}: imitators trained on {', '.join(x for x in games(config) if x != g)}")
    imitation_runner.run_imitation(hcfg, holdout_dir(workdir, g), log=log)
    results[g] = score_holdout(config, hcfg, workdir, g, log=log)
  summary = {"arm": ",".join(arms(config)), "threshold": float(config.transplant.threshold),
             "games": games(config), "protocol": results[next(iter(results))]["protocol"],
             "targets": {g: r["entry"] for g, r in results.items()}}
  os.makedirs(os.path.join(workdir, "transplant"), exist_ok=True)
  store.atomic_write_json(os.path.join(workdir, SUMMARY), summary)
  path = write_report(config, workdir)
  log(f"[transplant] report: {path}")
  return path


def _tasks(env, arm_augment: bool, repeats: int, key):
  """(env, params [repeats]) an arm plays: the game itself, or a fresh augmentation per rollout."""
  base = jax.tree.map(lambda x: np.repeat(np.asarray(x)[None], repeats, 0), env.default_params)
  if not arm_augment:
    return env, base
  aug = wrappers.augmented(env)
  return aug, wrappers.sample_augmented(aug, key, base)


def score_holdout(config, hcfg, workdir: str, game: str, log=print) -> dict:
  """Rolls out the arms (frozen; the hybrid arm also with test-time SGD) and a random policy in the
  held-out game; scores them against its DQN. Cached in holdout/<game>/p3/entry.json."""
  t = config.transplant
  out_dir = os.path.join(holdout_dir(workdir, game), "p3")
  cached = store.read_json(os.path.join(out_dir, "entry.json"))
  if cached is not None:
    log(f"[transplant] {game}: scores already complete")
    return cached
  os.makedirs(out_dir, exist_ok=True)
  env = envs_lib.make(f"MinAtar-{game}")
  model, params, arm_list, num_seeds = imitation_runner.load_final(hcfg, holdout_dir(workdir, game))
  flags = dict(zip(arm_list, imitation_runner.augment_flags(hcfg)))
  dqn_dir = os.path.join(game_dir(workdir, game), "teachers")
  with np.load(os.path.join(dqn_dir, "curves.npz")) as z:
    dqn_curves, dqn_x = z["returns"], z["env_steps"]
  variants = learners.parse_variants(t.variants) if str(t.hybrid_arm or "") else []
  horizon = p3_lib.learner_horizon(int(config.teacher.dqn.total_steps), t.learner if variants else None)
  reps, frac, repeats = int(t.bootstrap_reps), float(t.late_fraction), int(t.repeats)
  actions = rollout_lib.actions_from(config.evaluation)
  key = jax.random.fold_in(jax.random.key(int(config.seed) + 29), games(config).index(game))
  tag = f"[transplant] {game}"
  runs, labels = {}, {}
  for i, a in enumerate(arms(config)):
    a_env, a_tasks = _tasks(env, bool(flags[a]), repeats, jax.random.fold_in(key, 100 + i))
    a_params = imitation_runner.arm_params(params, arm_list, a, num_seeds)
    vs = variants if a == t.hybrid_arm else []
    out = learners.run_learners(model, a_params, a_env, a_tasks, horizon, jax.random.fold_in(key, i),
                                variants=vs, learner_cfg=t.learner, **actions, log=log, tag=f"{tag} {a}")
    kind = "augmented" if flags[a] else "raw frames"
    for k, v in out.items():
      name = a if k == "frozen" else f"{a}+sgd_{k}"
      runs[name] = v
      labels[name] = (f"frozen imitator ({kind})" if k == "frozen"
                      else f"imitator ({kind}) + test-time SGD ({k})")
  rnd = rollout_lib.make_random_rollout(env, horizon, rollout_lib.episodes_for(env, horizon))(
      jax.tree.map(lambda x: np.asarray(x)[None], env.default_params),
      jax.random.split(jax.random.fold_in(key, 1), num_seeds * repeats).reshape(num_seeds * repeats, 1))
  rnd = jax.device_get(rnd)
  entry = {"env": f"MinAtar-{game}", "env_kwargs": {}, "horizon_steps": horizon,
           "trained_on": [g for g in games(config) if g != game], "arm": ",".join(arms(config)),
           "labels": labels}
  # One task: the random policy's rollouts and the DQN's seeds give one level each, shared by the
  # imitators' `repeats` rollouts per seed (the columns of their scores).
  entry.update(p3_lib.score(runs, (np.asarray(rnd.episode_return), np.asarray(rnd.episode_end)), dqn_curves,
                            int(dqn_x[0]), horizon, frac, reps, log=log, tag=tag))
  p3_lib.write_outputs(out_dir, os.path.join(workdir, "tb", "transplant", game), f"transplant/{game}",
                       f"held out {game}", entry, runs, rnd, dqn_curves, dqn_x, horizon)
  protocol = {"actions": rollout_lib.describe_actions(config.evaluation),
              "context": f"{config.imitation.model.context_len} transitions, carried across episodes, empty "
                         "at the start",
              "horizon": "the held-out game's DQN's total environment steps",
              "normalisation": "0 = random policy, 1 = the held-out game's DQN final return",
              **p3_lib.score_protocol(frac),
              "ci": f"IQM over seeds x {repeats} rollouts, rliable stratified bootstrap 95% CI ({reps} resamples)"}
  result = {"entry": entry, "protocol": protocol}
  store.atomic_write_json(os.path.join(out_dir, "entry.json"), result)
  return result


def write_report(config, workdir: str) -> str:
  workdir = os.path.abspath(workdir)
  s = store.read_json(os.path.join(workdir, SUMMARY))
  rows = report_lib.p3_rows_from(s, unit="rollouts")
  lines = [f"# cl_limits report: MinAtar transplant, leave one game out ({', '.join(games(config))})", "",
           "## Verdicts", "", "| prediction | measured | estimate [95% CI] | verdict | rule |",
           "|---|---|---|---|---|"]
  lines += [f"| {r['prediction']} | {r['measured']} | {report_lib._ci(r['estimate'])} | **{r['verdict']}** | "
            f"{r['rule']} |" for r in rows]
  lines += ["", "gymnax MinAtar differs from the original MinAtar (no sticky actions, full 6-action set, "
            "episodes cut at 1000 steps): returns are not directly comparable with published MinAtar results.",
            ""]
  for g in s["targets"]:
    rel = os.path.join("holdout", g, "p3", "curves.png")
    if os.path.exists(os.path.join(workdir, rel)):
      lines += [f"![held out {g}]({rel})", ""]
  lines += report_lib.p3_section_from(
      s, "## P3 on MinAtar: each game held out in turn", "TensorBoard: `tb/transplant/<Game>` (DQN, imitators "
      "and the random level on one step axis); the DQNs' own runs under `games/<Game>/teachers/tb`, the "
      "imitators' training under `holdout/<Game>/imitators/tb`.", unit="rollouts")
  lines += ["## Teachers", "", "| game | DQN seeds | steps | final training return (mean over seeds) |",
            "|---|---|---|---|"]
  for g in games(config):
    tdir = os.path.join(game_dir(workdir, g), "teachers")
    with np.load(os.path.join(tdir, "curves.npz")) as z, np.errstate(all="ignore"):
      final = float(np.nanmean(z["returns"][..., -1]))
      lines.append(f"| {g} | {z['returns'].shape[0]} | {int(z['env_steps'][-1]):,} | {final:.2f} |")
  lines += ["", "Imitation data per held-out game: `holdout/<Game>/imitators/data.json`.", ""]
  for g in s["targets"]:
    d = store.read_json(os.path.join(holdout_dir(workdir, g), "imitators", "data.json")) or {}
    for a, m in d.get("arms", {}).items():
      lines.append(f"- held out {g}, arm {a}: {m['steps']:,} steps, {m['episodes']:,} episodes from "
                   f"{m['histories']} histories (gap {m['gap']}, augment {m['augment']}).")
  path = os.path.join(workdir, "report.md")
  store.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
  return path


def load_summary(workdir: str) -> dict | None:
  return store.read_json(os.path.join(os.path.abspath(workdir), SUMMARY))


__all__ = ["run_transplant", "validate_config", "games", "heldout_games", "game_config", "holdout_config",
           "score_holdout", "write_report", "load_summary"]
