r"""DAgger rounds for a finished run's P2 imitator, scored by its competence gate against the same
updates on its data alone.

Each replicate's imitator of `--arm` (greedy labels: it predicts its DQN's greedy choice) continues
training as two models from its final weights: `control` on its own data alone, and `dagger` on its data
and, after every round, its own rollouts labelled by a learner: in round k the `dagger` model plays each
of the first `--tasks` training tasks `--rollouts` times for one kept history's steps (the competence
gate's horizon) under the flags' protocol, and a fresh DQN of the teachers' config follows every rollout's
transitions (`dqn.follow`), its greedy choice at each step that step's label (`cl_limits.imitation.dagger`).
Both models then take `--updates` more updates (one learning-rate schedule over all rounds, the same
for both). After each round both play the competence gate of the run's P2 stage (its tasks, keys and
horizon; scored as the stage scores it) under the flags' protocol; printed per replicate, with the paired
difference dagger - control over replicates and the share of the dagger rollouts' steps where the
imitator's own choice equals its learner's label.

  python -m experiments.dagger --config=experiments/configs/one_stream.py:fast,x8,alone \
      --workdir=runs/one_stream_fast_x8_ge --config.teachers_from=runs/one_stream_fast_x8 \
      --config.imitation.arms.ad_early.updates=4000 --config.imitation.train.num_updates=4000 \
      --config.imitation.arms.ad_early.labels=greedy --config.imitation.model.mark_explore=true \
      --config.evaluation.greedy=true --config.evaluation.epsilon=0.05 --config.evaluation.epsilon_decay=1000 \
      --out=runs/dagger_ge

After every round (`--p2_every`) both models also play the run's P2 test (its held-out tasks, keys and
horizon, under the flags' protocol), scored by the P2 rule with the stage's headroom and learning-in-data
gates and their own competence gate; `--out`/p2.json holds each model's P2 row and verdict after the last
round.

Writes `--out`/rounds.json after every round (each round's figures), `--out`/rounds.md (them as a table)
and `--out`/competence.png; a killed run resumes from its last finished round (`--out`/state/: both
models' state; `--out`/rollouts_<k>.npz: the labelled rollouts), and refuses a directory made with other
flags (more rounds included: the learning-rate schedule runs over all of them).
"""
import hashlib
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory whose P2 stage has finished.")
_CACHE = cli.compile_cache_flag()
_ARM = flags.DEFINE_string("arm", "ad_early", "The imitation arm (a P2 source with labels='greedy').")
_OUT = flags.DEFINE_string("out", None, "Directory for the rounds' figures, state and labelled rollouts.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "DAgger rounds.")
_ROLLOUTS = flags.DEFINE_integer("rollouts", 4, "Rollouts per task per round.")
_TASKS = flags.DEFINE_integer("tasks", 0, "Training tasks the rollouts play (the first ones; 0: the gate's).")
_UPDATES = flags.DEFINE_integer("updates", 800, "Updates per round, for each model.")
_P2_LONGER = flags.DEFINE_float("p2_horizon_factor", 0.0, "Also play the last round's P2 test for this many "
                                 "times the data's cut (0: no; written to p2_x<factor>.json).")
_P2_EVERY = flags.DEFINE_integer("p2_every", 1, "Play the P2 test after every n-th round and after the last "
                                 "(0: after the last only; Breakout's is long).")
_P2_EPS = flags.DEFINE_float("p2_epsilon", -1.0, "Also play the last round's competence gate and P2 test with "
                              "the protocol's epsilon set to this (its decay kept; -1: no; written to "
                              "p2_eps<epsilon>.json), the headroom read on the policy that protocol plays like.")
flags.mark_flags_as_required(["config", "workdir", "out"])

FOLLOW_KEYS, ROLLOUT_KEYS = 61, 67


def _check_flags(rounds, rollouts, updates, per_segment) -> None:
  for name, v in (("rounds", rounds), ("rollouts", rollouts), ("updates", updates)):
    if v < 1:
      raise app.UsageError(f"--{name}={v}: must be >= 1")
  if updates % per_segment:
    raise app.UsageError(f"--updates={updates}: must be a multiple of imitation.train.updates_per_segment="
                         f"{per_segment}")
  if not (_P2_EPS.value == -1 or 0 <= _P2_EPS.value <= 1):
    raise app.UsageError(f"--p2_epsilon={_P2_EPS.value:g}: must be in [0, 1] (-1: no)")
  for name, v in (("p2_every", _P2_EVERY.value), ("p2_horizon_factor", _P2_LONGER.value)):
    if v < 0:
      raise app.UsageError(f"--{name}={v:g}: must be >= 0 (0: {'after the last round only' if name == 'p2_every' else 'no'})")


def main(_):
  cli.open_compile_cache(_CACHE)
  import orbax.checkpoint as ocp  # noqa: PLC0415

  from cl_limits.analysis import replicates, stats  # noqa: PLC0415
  from cl_limits.histories import arms as arms_lib  # noqa: PLC0415
  from cl_limits.histories import datasets  # noqa: PLC0415
  from cl_limits.histories.history import FIELDS, History  # noqa: PLC0415
  from cl_limits.imitation import dagger  # noqa: PLC0415
  from cl_limits.imitation import learner as learner_lib  # noqa: PLC0415
  from cl_limits.report import gates  # noqa: PLC0415
  from cl_limits.report import rows as report_rows  # noqa: PLC0415
  from cl_limits.rollouts import rollout as rollout_lib  # noqa: PLC0415
  from cl_limits.stages import artifacts, common, layout  # noqa: PLC0415
  from cl_limits.stages import p2 as p2_lib  # noqa: PLC0415

  from experiments import arm_rollouts  # noqa: PLC0415

  config, workdir, name, out = _CONFIG.value, _WORKDIR.value, _ARM.value, _OUT.value
  im = config.imitation
  rounds, per_task, updates = int(_ROUNDS.value), int(_ROLLOUTS.value), int(_UPDATES.value)
  _check_flags(rounds, per_task, updates, int(im.train.updates_per_segment))
  protocol = arm_rollouts.protocol(config)
  if not rollout_lib.explores(protocol["epsilon"], protocol["epsilon_decay"]):
    raise app.UsageError("evaluation.epsilon: DAgger's labels are a learner's greedy choices, so the imitator "
                         "must act epsilon-greedily around its own (set evaluation.epsilon > 0 or "
                         "evaluation.epsilon_decay > 0)")
  if name in im.arms and datasets.resolve_arm(im.arms[name])["labels"] != "greedy":
    raise app.UsageError(f"--arm={name}: DAgger's labels are a learner's greedy choices; the arm must be "
                         f"trained on them (imitation.arms.{name}.labels='greedy')")
  summary = (layout.summary(workdir, "p2") or {}).get("arms", {}).get(name)
  if summary is None or "competence" not in summary:
    raise app.UsageError(f"--workdir={workdir}: no P2 competence gate for arm {name!r} (has the P2 stage finished?)")
  if "skipped" in summary:
    raise app.UsageError(f"--workdir={workdir}: the P2 stage skipped arm {name!r}'s held-out test for want of "
                         "headroom; DAgger's P2 rows would have no test to play")
  gate_run = arm_rollouts.load(config, workdir, name, 0, fixed_episodes=False)
  r = gate_run if not _TASKS.value else arm_rollouts.load(config, workdir, name, int(_TASKS.value), False)
  env, model, num_seeds = r.env, r.model, r.num_seeds
  _, _, _, teacher = artifacts.teacher_setup(config)
  num_envs = int(config.teacher.dqn.num_envs)
  if per_task % num_envs:
    raise app.UsageError(f"--rollouts={per_task}: must be a multiple of teacher.dqn.num_envs={num_envs} (each "
                         "DQN follows that many rollouts as its streams)")
  fingerprint = hashlib.sha256(json.dumps({
      "config": config.to_dict(), "workdir": os.path.abspath(workdir), "arm": name, "rollouts": per_task,
      "tasks": r.n, "updates": updates, "rounds": rounds}, sort_keys=True, default=str).encode()).hexdigest()[:16]
  os.makedirs(out, exist_ok=True)
  stamp = os.path.join(out, "flags.json")
  if os.path.exists(stamp) and json.load(open(stamp)).get("fingerprint") != fingerprint:
    raise app.UsageError(f"--out={out}: made with other flags or another run; use a new directory")
  with open(stamp, "w") as f:
    json.dump({"fingerprint": fingerprint, "rounds": rounds}, f)

  # The data each replicate's imitator was trained on (its arm's cut, streams and labels).
  arm = r.arm
  heldout = int(im.fidelity.heldout_streams)
  train_streams = int(np.asarray(r.history.action).shape[2]) - heldout
  own = [arms_lib.replicate_data(r.history, arm, s, train_streams, r.history.greedy) for s in range(num_seeds)]

  seq_len, per_seg = int(im.train.seq_len), int(im.train.updates_per_segment)
  budget = rounds * updates
  learner = learner_lib.make_learner(im.train, model, None, budgets=np.full(2 * num_seeds, budget))
  tokens = learner_lib.example_tokens(datasets.to_device(own[0]), seq_len, model.num_actions)
  keys = learner_lib.model_keys(int(config.seed) + 97, 2, num_seeds)
  state = jax.jit(jax.vmap(learner.init, in_axes=(0, None)))(keys, tokens)
  state = state.replace(params=jax.tree.map(lambda x: jnp.concatenate([x, x]), r.params))
  segment = jax.jit(learner.segment, donate_argnums=0)
  roll = rollout_lib.make_batched_rollout(model, env, r.horizon, rollout_lib.episodes_for(env, r.horizon),
                                          record=True, **protocol)
  tiled = jax.tree.map(lambda x: jnp.repeat(jnp.asarray(x), per_task, axis=0), r.tasks)
  random, needed = float(summary["competence"]["random"]), float(summary["competence"]["needed"])
  gate = lambda params, proto=protocol: arm_rollouts.competence(config, gate_run, params, proto, random, needed)
  models = ("control", "dagger")           # model i holds replicates i * num_seeds ... in the stacked state
  weights = lambda i: jax.tree.map(lambda x: x[i * num_seeds:(i + 1) * num_seeds], state.params)

  def p2_rows(comp: dict, horizon: int | None = None, proto: dict | None = None) -> dict:
    """Each model's P2 row (the stage's held-out test under the flags' protocol or `proto`, the stage's
    headroom and learning-in-data gates, its own competence gate `comp[model]`), printed, with its verdict."""
    rows = {}
    for i, arm_name in enumerate(models):
      e, _ = arm_rollouts.p2_row(config, gate_run, weights(i), proto or protocol, summary, comp[arm_name], horizon)
      text, verdict, rule, _ = gates.p2_verdict(e)
      rows[arm_name] = {**e, "gates_text": text, "verdict": verdict, "rule": rule}
      lmc, held = e["late_minus_ceiling"], e["held"]["interval"]
      print(f"  {arm_name:8s} P2 row: late {fmt(e['per_replicate']['late'])} on the held-out tasks, late - ceiling "
            f"{lmc['estimate']:+.3f} [{lmc['low']:+.3f}, {lmc['high']:+.3f}], late - data end {held['estimate']:+.3f} "
            f"[{held['low']:+.3f}, {held['high']:+.3f}] of (top - random): {verdict}", flush=True)
    return rows

  def labelled_parts(z):
    """Each replicate's labelled rollouts of one round (a `rollouts_<k>.npz` dict) as training data."""
    hist = History(**{f: z[f] for f in FIELDS})
    return [dagger.flat(jax.tree.map(lambda x: x[s:s + 1], hist), z["labels"][s:s + 1]) for s in range(num_seeds)]

  mngr = ocp.CheckpointManager(os.path.abspath(os.path.join(out, "state")),
                               options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))
  results_path = os.path.join(out, "rounds.json")
  done_rounds = mngr.latest_step() or 0
  results = json.load(open(results_path)) if done_rounds and os.path.exists(results_path) else []
  results = results[:done_rounds + 1]
  labelled = []            # per round: each replicate's labelled rollouts as training data
  for k in range(1, done_rounds + 1):
    with np.load(os.path.join(out, f"rollouts_{k}.npz")) as z:
      labelled.append(labelled_parts(z))
  if done_rounds:
    state = mngr.restore(done_rounds, args=ocp.args.StandardRestore(state))
    print(f"resuming after round {done_rounds} of {rounds} ({out})")
  print(f"{name}: {num_seeds} replicates, {rounds} rounds of {per_task} rollouts x {r.n} tasks x {r.horizon} steps, "
        f"labelled by a fresh DQN following each (teacher.dqn); {updates} updates per round per model; "
        f"{common.describe_actions(config.evaluation)}; the gate: {gate_run.n} tasks, {gate_run.horizon} steps, "
        f"passes at a lower end of {needed:g}")
  fmt = lambda xs: " ".join(f"{x:.3f}" for x in xs)

  def report(k, comp, extra):
    row = {"round": k, **extra}
    for arm_name, c in comp.items():
      iv = c["interval"]
      row[arm_name] = {"per_replicate": c["per_replicate"], "interval": iv, "ok": c["ok"]}
      print(f"  {arm_name:8s} competence per replicate {fmt(c['per_replicate'])}: "
            + ("no interval" if iv is None else f"{iv['estimate']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]")
            + f"{' PASSES' if c['ok'] else ''}")
    if "dagger" in comp:
      d = np.asarray(comp["dagger"]["per_replicate"]) - np.asarray(comp["control"]["per_replicate"])
      iv = stats.replicate_interval(d) if np.isfinite(d).all() and d.size > 1 else None
      row["paired"] = iv
      print(f"  dagger - control, paired: {fmt(d)}: " + ("no interval (a replicate has no value)" if iv is None
                                                          else f"{iv['estimate']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]"))
    return row

  if not results:
    t0 = time.time()
    print("round 0 (the run's imitator, before any update):", flush=True)
    start = gate(r.params)
    results.append(report(0, {"start": start}, {"seconds": time.time() - t0}))
    _write(results_path, results)
  for k in range(done_rounds + 1, rounds + 1):
    t0 = time.time()
    params_d = weights(1)
    rkeys = jax.random.split(jax.random.fold_in(jax.random.key(int(config.seed) + ROLLOUT_KEYS), k),
                             num_seeds * r.n * per_task).reshape(num_seeds, r.n * per_task)
    res = roll(params_d, tiled, rkeys)
    shape = lambda x: np.asarray(x).reshape((num_seeds, r.n, per_task) + np.shape(x)[2:])
    tr = jax.tree.map(shape, jax.device_get(res.transitions))
    nxt = shape(res.next_obs)
    t_roll = time.time() - t0
    fkeys = jax.random.split(jax.random.fold_in(jax.random.key(int(config.seed) + FOLLOW_KEYS), k),
                             num_seeds * r.n * (per_task // num_envs)).reshape(num_seeds, r.n, per_task // num_envs)
    labels = dagger.labels_of(teacher.follow, num_envs, fkeys, r.tasks, tr, nxt)
    agree = dagger.label_agreement(tr.greedy, labels)
    own_rets = replicates.in_unit(shape(p2_lib.episode_returns(res, r.horizon, r.ep_len)), r.opt, task_axis=1)
    own_last = [float(np.mean(np.concatenate([replicates.own_last(row, 2) for row in rep.reshape(-1, rep.shape[-1])])))
                for rep in own_rets]            # each rollout's own last two finished episodes
    t_label = time.time() - t0 - t_roll
    keep = {**{f: np.asarray(getattr(tr, f)) for f in FIELDS}, "labels": labels}
    np.savez_compressed(os.path.join(out, f"rollouts_{k}.npz"), **keep)
    labelled.append(labelled_parts(keep))
    print(f"round {k}: {num_seeds * r.n * per_task} rollouts ({t_roll:.0f}s), labelled ({t_label:.0f}s); the "
          f"imitator's choice equals its learner's label on {fmt(agree)} of its steps; its rollouts' last two "
          f"episodes {fmt(own_last)}", flush=True)
    parts = list(own)
    groups = [[s] for s in range(num_seeds)] + [[s] for s in range(num_seeds)]
    for round_parts in labelled:
      for s, fd in enumerate(round_parts):
        groups[num_seeds + s].append(len(parts))
        parts.append(fd)
    data, starts, n_starts = dagger.grouped_data(parts, groups, seq_len)
    share = [sum(parts[i].num_steps for i in g[1:]) / sum(parts[i].num_steps for i in g)
             for g in groups[num_seeds:]]
    group = jnp.arange(2 * num_seeds, dtype=jnp.int32)
    t1 = time.time()
    for seg in range(updates // per_seg):
      state, metrics = segment(state, data, jnp.asarray(starts), jnp.asarray(n_starts), group)
      loss = np.asarray(metrics.loss)[:, -1]
      print(f"  update {(k - 1) * updates + (seg + 1) * per_seg}/{budget}: loss control {loss[:num_seeds].mean():.3f} "
            f"dagger {loss[num_seeds:].mean():.3f} ({time.time() - t1:.0f}s)", flush=True)
    del data
    comp = {m: gate(weights(i)) for i, m in enumerate(models)}
    every = int(_P2_EVERY.value)
    p2 = p2_rows(comp) if k == rounds or (every > 0 and k % every == 0) else {}
    results.append(report(k, comp, {
        "agreement": agree.tolist(), "own_last_two": own_last, "labelled_share": share, "seconds": time.time() - t0}
        | ({"p2": {m: {"late": e["per_replicate"]["late"], "late_minus_ceiling": e["late_minus_ceiling"],
                       "held": e["held"], "verdict": e["verdict"]} for m, e in p2.items()}} if p2 else {})))
    if k == rounds:
      _write(os.path.join(out, "p2.json"), {"round": k, **p2})
    _write(results_path, results)
    mngr.save(k, args=ocp.args.StandardSave(state), force=True)
    mngr.wait_until_finished()
    took = [row["seconds"] for row in results[1:]]
    eta = (rounds - k) * float(np.mean(took[-2:]))     # later rounds carry more labelled data: the latest pace
    print(f"round {k} done in {time.time() - t0:.0f}s; the labelled rollouts are {fmt(share)} of each dagger "
          f"model's training steps" + (f"; {rounds - k} rounds left, about {eta / 60:.0f} min" if k < rounds else ""),
          flush=True)
  mngr.close()
  if not os.path.exists(os.path.join(out, "p2.json")):        # a directory from before the P2 rows
    comp = {m: gate(weights(i)) for i, m in enumerate(models)}
    _write(os.path.join(out, "p2.json"), {"round": rounds, **p2_rows(comp)})
  arm_rollouts.rescore(os.path.join(out, "p2.json"), results_path, models,
                       lambda e: arm_rollouts.reread(config, gate_run, protocol, e))
  factor = float(_P2_LONGER.value)
  longer = os.path.join(out, f"p2_x{factor:g}.json")
  if factor > 0 and not os.path.exists(longer):
    horizon = common.whole_episodes(factor * int(summary["cut_learner_steps"]), r.ep_len)
    print(f"the last round's P2 test for {horizon:,} steps ({factor:g} x the data's cut):", flush=True)
    last = json.load(open(os.path.join(out, "p2.json")))
    _write(longer, {"round": rounds, "horizon_steps": horizon,
                    **p2_rows({m: last[m]["competence"] for m in models}, horizon)})
  eps = float(_P2_EPS.value)
  at_eps = os.path.join(out, f"p2_eps{eps:g}.json")
  if eps >= 0 and not os.path.exists(at_eps):
    other = {**protocol, "epsilon": eps}
    print(f"the last round's competence gate and P2 test with epsilon {eps:g} after its decay ({other}):", flush=True)
    comp = {m: gate(weights(i), other) for i, m in enumerate(models)}
    report(rounds, comp, {})
    _write(at_eps, {"round": rounds, "protocol": other, **p2_rows(comp, proto=other)})
  unit = layout.summary(workdir, "p2")["protocol"]["unit"]          # the P2 stage's unit, as its report names it
  where = "the training game itself" if report_rows.one_task(config.env.name, config.env.kwargs) else "held-out tasks"
  _plot(os.path.join(out, "competence.png"), results, needed, f"{name}: {common.describe_actions(config.evaluation)}",
        unit, where)
  with open(os.path.join(out, "rounds.md"), "w") as f:
    f.write(table(results) + "\n")
  print(f"figures: {results_path}, {os.path.join(out, 'rounds.md')}, {os.path.join(out, 'competence.png')}")


def table(results: list) -> str:
  """rounds.json as a markdown table: per round the labelled share and label agreement (means over
  replicates), both models' competence and their paired difference (intervals over replicates), and, where
  the round played it, each model's late return on the P2 test and its P2 verdict."""
  from cl_limits.report.gates import ci  # noqa: PLC0415
  iv = lambda c, f="{:.3f}": ci(c or None, f)        # "n/a" where a round has no interval
  lines = ["| round | labelled share | choice = label | `control` | `dagger` | dagger - control | P2 late, "
           "`control` / `dagger` | P2 verdict, `dagger` |", "|---|---|---|---|---|---|---|---|"]
  s = results[0]["start"]
  lines.append(f"| 0 | 0 | | {iv(s['interval'])} | {iv(s['interval'])} | | | |")
  for row in results[1:]:
    p2 = row.get("p2")
    late = (" / ".join(f"{np.mean(p2[m]['late']):.3f}" for m in ("control", "dagger")) if p2 else "")
    lines.append(f"| {row['round']} | {np.mean(row['labelled_share']):.2f} | {np.mean(row['agreement']):.2f} | "
                 f"{iv(row['control']['interval'])} | {iv(row['dagger']['interval'])} | "
                 f"{iv(row.get('paired'), '{:+.3f}')} | {late} | {p2['dagger']['verdict'] if p2 else ''} |")
  return "\n".join(lines)


def _write(path, results) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(results, f, indent=1)
  os.replace(tmp, path)


def _plot(path: str, results: list, needed: float, title: str, unit: str, where: str) -> None:
  """Competence on the training tasks per round (left) and, where the rounds played the P2 test, the late
  return (in `unit`) on its tasks (`where`) (right), every replicate thin and their mean thick, for both
  models."""
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  played = [row for row in results[1:] if "p2" in row]
  fig, axes = plt.subplots(1, 2 if played else 1, figsize=(11 if played else 6, 4), squeeze=False)
  ax = axes[0, 0]
  start = np.asarray(results[0]["start"]["per_replicate"])
  ks = [0] + [row["round"] for row in results[1:]]
  for arm_name, color in (("control", "tab:gray"), ("dagger", "tab:blue")):
    per = np.stack([start] + [np.asarray(row[arm_name]["per_replicate"]) for row in results[1:]])
    ax.plot(ks, per, color=color, alpha=0.3, lw=1)
    ax.plot(ks, per.mean(1), color=color, lw=2.5, marker="o", label=f"{arm_name} (mean of replicates)")
  ax.axhline(needed, color="k", ls="--", lw=1, label=f"gate ({needed:g}, on the interval's lower end)")
  ax.axhline(0.0, color="k", lw=0.5)
  ax.set_xticks(ks)
  ax.set_xlabel("DAgger round")
  ax.set_ylabel("competence: gain over random of its data's end")
  ax.set_title(f"training tasks: {title}", fontsize=9)
  ax.legend(fontsize=8)
  if played:
    ax = axes[0, 1]
    pk = [row["round"] for row in played]
    for arm_name, color in (("control", "tab:gray"), ("dagger", "tab:blue")):
      per = np.stack([np.asarray(row["p2"][arm_name]["late"]) for row in played])
      ax.plot(pk, per, color=color, alpha=0.3, lw=1, marker="." if len(pk) == 1 else None)   # one round: points
      ax.plot(pk, per.mean(1), color=color, lw=2.5, marker="o", label=arm_name)
    ceiling = np.asarray(played[-1]["p2"]["dagger"]["late_minus_ceiling"]["per_replicate"])
    data_end = np.asarray(played[-1]["p2"]["dagger"]["held"]["data_end"])
    ax.axhline(float(np.mean(np.asarray(played[-1]["p2"]["dagger"]["late"]) - ceiling)), color="tab:red", ls="--",
               lw=1, label="the P2 ceiling (mean of replicates)")
    ax.axhline(float(np.mean(data_end)), color="k", ls=":", lw=1, label="its data's end (mean of replicates)")
    ax.set_xticks(pk)
    ax.set_xlabel("DAgger round")
    ax.set_ylabel(f"late return, {unit}")
    ax.set_title(f"the P2 test: {where}, the same protocol", fontsize=9)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  app.run(main)
