"""The MinAtar leave-one-game-out transplant (experiments/configs/transplant.py): the same stages over
derived configs, then one scoring stage per held-out game and one report.

  games/<Game>/teachers       the teacher stage on MinAtar-<Game> (also P3's "DQN from scratch")
  holdout/<Game>/imitators    the imitation stage on the joined histories of every other game
  holdout/<Game>/p3           `SCORE`: every arm of `transplant.arms` frozen (augmented arms in an augmented
                              copy of the game, a fresh projection and permutation per rollout), the
                              `transplant.hybrid_arm` also as every hybrid variant, and a random policy, for
                              as many steps as the game's DQN trained; scored against that DQN
  transplant/summary.json, report.md                                  `REPORT`

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
from cl_limits.analysis import scores
from cl_limits.envs import minatar, wrappers
from cl_limits.imitation import learner as learner_lib
from cl_limits.rollouts import hybrid as hybrid_lib
from cl_limits.rollouts import learners
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import artifacts, common, layout, outputs
from cl_limits.report import gates
from cl_limits.report import rows as rr
from cl_limits.report import sections
from cl_limits.stages.base import Stage, check, in_range, positive_int, wrap


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


def holdout_config(config, workdir: str, game: str):
  """The imitation config for held-out `game`: env = that game (its held-out check rolls out there),
  data = the teacher histories of every other game."""
  cfg = ml_collections.ConfigDict(game_config(config, game).to_dict())
  cfg.imitation.sources = ",".join(layout.histories_dir(layout.game_dir(workdir, g)) for g in games(config) if g != game)
  cfg.lock()
  return cfg


def validate(config) -> None:
  common.validate_rollout(config)
  t = config.transplant
  names = games(config)
  check(all(g in minatar.GAMES for g in names) and len(names) >= 2 and len(set(names)) == len(names),
        "transplant.games", f"need at least two distinct MinAtar games from {sorted(minatar.GAMES)}", t.games)
  check(all(g in names for g in heldout_games(config)), "transplant.heldout",
        f"names a game not in transplant.games ({t.games!r})", t.heldout)
  arm_list = artifacts.arm_names(config)
  check(bool(arms(config)) and all(a in arm_list for a in arms(config)), "transplant.arms",
        f"must name imitation arms from {arm_list}", t.arms)
  check(not str(t.hybrid_arm or "") or t.hybrid_arm in arm_list, "transplant.hybrid_arm",
        f"is not one of the imitation arms {arm_list}", t.hybrid_arm)
  common.hybrid_variants(t.variants, "transplant.variants")
  if str(t.hybrid_arm or ""):
    wrap("transplant.learner", hybrid_lib.validate, t.learner, int(config.imitation.model.context_len))
  positive_int(config, "transplant.repeats")
  in_range(config, "transplant.late_fraction", 0.0, 1.0, lo_open=True)
  check(not str(config.imitation.sources or ""), "imitation.sources",
        "is set per held-out game by the transplant experiment; leave it empty", config.imitation.sources)


def _tasks(env, augment: bool, repeats: int, key):
  """(env, params [repeats]) an arm plays: the game itself, or a fresh augmentation per rollout."""
  base = jax.tree.map(lambda x: np.repeat(np.asarray(x)[None], repeats, 0), env.default_params)
  if not augment:
    return env, base
  aug = wrappers.augmented(env)
  return aug, wrappers.sample_augmented(aug, key, base)


def score(step, log=print) -> None:
  """The held-out game's learners, scored against its DQN (holdout/<game>/p3)."""
  config, workdir, game = step.config, step.args["root"], step.args["game"]
  t = config.transplant
  hcfg = holdout_config(config, workdir, game)
  env = envs_lib.make(f"MinAtar-{game}")
  model, params, arm_list, num_seeds = artifacts.final_imitators(hcfg, layout.holdout_dir(workdir, game))
  flags = {n: a["augment"] for n, a in artifacts.arms_of(hcfg).items()}
  dqn = layout.teacher_curves(layout.game_dir(workdir, game))
  names = common.hybrid_variants(t.variants, "transplant.variants") if str(t.hybrid_arm or "") else []
  total = int(config.teacher.dqn.total_steps)
  horizon = common.whole_segments(total, int(t.learner.act_steps)) if names else total
  frac, repeats = float(t.late_fraction), int(t.repeats)
  actions = artifacts.protocol(config)
  key = jax.random.fold_in(jax.random.key(int(config.seed) + 29), games(config).index(game))
  runs, labels = {}, {}
  for i, a in enumerate(arms(config)):
    a_env, a_tasks = _tasks(env, bool(flags[a]), repeats, jax.random.fold_in(key, 100 + i))
    a_params = learner_lib.arm_params(params, arm_list, a, num_seeds)
    out = learners.run_learners(model, a_params, a_env, a_tasks, horizon, jax.random.fold_in(key, i),
                                variants=names if a == t.hybrid_arm else [], learner_cfg=t.learner, **actions,
                                log=log, tag=f"[transplant] {game} {a}", settings=common.rollout_settings(config))
    kind = "augmented" if flags[a] else "raw frames"
    for k, v in out.items():
      name = a if k == "frozen" else f"{a}+sgd_{k}"
      runs[name] = v
      labels[name] = (f"frozen imitator ({kind})" if k == "frozen" else f"imitator ({kind}) + test-time SGD ({k})")
  rnd = rollout_lib.random_rollout(
      env, horizon, jax.tree.map(lambda x: np.asarray(x)[None], env.default_params),
      jax.random.split(jax.random.fold_in(key, 1), num_seeds * repeats).reshape(num_seeds * repeats, 1))
  entry = {"env": f"MinAtar-{game}", "env_kwargs": {}, "horizon_steps": horizon,
           "trained_on": [g for g in games(config) if g != game], "arm": ",".join(arms(config)), "labels": labels}
  # One task: the random policy's rollouts and the DQN's seeds give one level each, shared by the
  # imitators' `repeats` rollouts per seed (the columns of their scores).
  entry.update(scores.score(runs, (np.asarray(rnd.episode_return), np.asarray(rnd.episode_end)), dqn["returns"],
                            int(dqn["env_steps"][0]), horizon, frac, log=log, tag=f"[transplant] {game}"))
  out_dir = layout.path(layout.holdout_dir(workdir, game), "p3")
  outputs.write_target(out_dir, layout.path(workdir, "tb", "transplant", game), f"transplant/{game}",
                        f"held out {game}", entry, runs, rnd, dqn["returns"], dqn["env_steps"], horizon)
  protocol = {"actions": common.describe_actions(config.evaluation),
              "context": f"{config.imitation.model.context_len} transitions, carried across episodes, empty "
                         "at the start",
              "horizon": "the held-out game's DQN's total environment steps",
              "normalisation": "0 = random policy, 1 = the held-out game's DQN final return",
              **scores.score_protocol(frac),
              "ci": f"t-interval over the model seeds (independent runs); the {repeats} rollouts per seed are "
                    "repeated measures"}
  outputs.write_json(layout.path(out_dir, "entry.json"), {"entry": entry, "protocol": protocol})


def report(step, log=print) -> None:
  config, workdir = step.config, step.workdir
  results = {g: layout.read_json(layout.path(layout.holdout_dir(workdir, g), "p3", "entry.json"))
             for g in heldout_games(config)}
  summary = {"arm": ",".join(arms(config)), "threshold": float(config.transplant.threshold),
             "games": games(config), "protocol": results[next(iter(results))]["protocol"],
             "targets": {g: r["entry"] for g, r in results.items()}}
  outputs.write_json(layout.path(workdir, "transplant", layout.SUMMARY), summary)
  log(f"[transplant] report: {write_report(config, workdir, summary)}")


def write_report(config, workdir: str, s: dict) -> str:
  rows = gates.counted(rr.p3_rows_from(s, unit="rollouts"))
  lines = [f"# cl_limits report: MinAtar transplant, leave one game out ({', '.join(games(config))})", "",
           "## Verdicts", "", "| prediction | measured | estimate [95% CI] | per replicate | verdict | rule |",
           "|---|---|---|---|---|---|"]
  lines += [f"| {r['prediction']} | {r['measured']} | {rr.ci(r['estimate'])} | {r['per_replicate']} | "
            f"**{r['verdict']}** | {r['rule']} |" for r in rows]
  lines += ["", "Replicates: each model seed s is an independent run, trained on teacher seed s of every other "
            "game; the rollouts per seed are repeated measures. Intervals: t over the seeds' means."]
  lines += ["", "gymnax MinAtar differs from the original MinAtar (no sticky actions, full 6-action set, "
            "episodes cut at 1000 steps): returns are not directly comparable with published MinAtar results.", ""]
  for g in s["targets"]:
    if os.path.exists(layout.path(layout.holdout_dir(workdir, g), "p3", "curves.png")):
      lines += [f"![held out {g}](holdout/{g}/p3/curves.png)", ""]
  lines += sections.p3_section_from(
      s, "## P3 on MinAtar: each game held out in turn", "TensorBoard: `tb/transplant/<Game>` (DQN, imitators "
      "and the random level on one step axis); the DQNs' own runs under `games/<Game>/teachers/tb`, the "
      "imitators' training under `holdout/<Game>/imitators/tb`.", unit="rollouts")
  lines += ["## Teachers", "", "| game | DQN seeds | steps | final training return (mean over seeds) |",
            "|---|---|---|---|"]
  for g in games(config):
    c = layout.teacher_curves(layout.game_dir(workdir, g))
    with np.errstate(all="ignore"):
      lines.append(f"| {g} | {c['returns'].shape[0]} | {int(c['env_steps'][-1]):,} | "
                   f"{float(np.nanmean(c['returns'][..., -1])):.2f} |")
  lines += ["", "Imitation data per held-out game: `holdout/<Game>/imitators/data.json`.", ""]
  for g in s["targets"]:
    d = layout.read_json(layout.path(layout.holdout_dir(workdir, g), "imitators", "data.json")) or {}
    for a, m in d.get("arms", {}).items():
      lines.append(f"- held out {g}, arm {a}: {m['steps']:,} steps, {m['episodes']:,} episodes from "
                   f"{m['histories']} histories (gap {m['gap']}, augment {m['augment']}).")
  return outputs.write_text(layout.path(workdir, "report.md"), "\n".join(lines) + "\n")


SCORE = Stage(name="transplant", subdir="p3", reads=("seed", "transplant", "evaluation", "teacher.dqn.total_steps",
                                                     "imitation"),
              locations=(common.ROLLOUT,), validate=validate, run=score, marker="p3/entry.json")
REPORT = Stage(name="transplant report", subdir="transplant", reads=("transplant", "evaluation"),
               validate=lambda config: None, run=report)       # its inputs' stage checks the config
