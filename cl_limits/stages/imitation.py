"""The imitation stage: every arm's imitators (x seeds) trained together, in segments, resumably.

Reads the teacher histories (`<teachers>/histories`, or the stores of `imitation.sources`), writes
AD-epsilon histories to `<workdir>/histories/ad_eps` when an arm asks for them, and writes under
`<workdir>/imitators/`:

  data.json       per arm: portion, fraction, gap, streams, labels, and what that kept (the data manifest)
  checkpoints/    orbax CheckpointManager, step = finished segments; every leaf has a model axis [M]
  tb/<arm>/seed_<s>/, tb/<arm>/all   loss, accuracy, tokens/s (x = update) and the held-out check
  summary.json    written last: arms, seeds, final loss / accuracy, throughput

Models are ordered arm-major (model m = arm m // S, seed m % S). Seed s is replicate s: it trains only on
the histories of teacher seed s (and of AD-epsilon replicate s), so the S replicates are independent runs
from the teachers on. Seed s of every arm starts from the same initial weights and draws windows with the
same key sequence, so arms are compared pairwise within a replicate.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits import sharding
from cl_limits.histories import arms as arms_lib
from cl_limits.histories import datasets
from cl_limits.rollouts import check as check_lib
from cl_limits.imitation import fidelity as fidelity_lib
from cl_limits.imitation import learner as learner_lib
from cl_limits.imitation import progress as progress_lib
from cl_limits.stages import artifacts, common, layout, outputs
from cl_limits.stages.imitation_checks import protocol_notes, validate
from cl_limits.stages.base import ConfigError, Stage, wrap


def _data(config, workdir, env, log):
  arms = artifacts.arms_of(config)
  srcs = {}
  if any(a["data"] == "teacher" for a in arms.values()):
    srcs["teacher"] = artifacts.load_teacher_histories(config, workdir)
  if any(a["data"] == "ad_eps" for a in arms.values()):
    a = config.imitation.ad_eps
    tasks, task_ids = common.teacher_tasks(config, env)
    meta = {"env": config.env.name, "env_kwargs": config.env.kwargs.to_dict(), "source": "ad_eps",
            "steps": int(a.steps), "streams_per_learner": int(a.streams),
            "env_steps_per_learner": int(a.steps) * int(a.streams), "eps_floor": float(a.eps_floor),
            "decay_fraction": float(a.decay_fraction), "seed": int(config.seed),
            "demonstrator": str(a.demonstrator), "search_detour": int(a.get("search_detour", 0))}
    demo = "searcher" if str(a.demonstrator) == "searcher" else None   # None: the env's oracle
    if str(a.demonstrator) == "teacher":       # each replicate's own final DQN, greedy
      _, _, _, teacher = artifacts.teacher_setup(config)
      state = artifacts.final_state(config, common.teachers_at(config, workdir))
      demo = (teacher.greedy_action, jax.device_get(state.params))
    srcs["ad_eps"] = arms_lib.ad_eps_store(layout.path(workdir, "histories", "ad_eps"), common.with_search(env, a),
                                           tasks, task_ids, meta, int(config.seed), log,
                                           replicates=int(config.imitation.num_seeds), demonstrator=demo)

  def teacher_labels(history):
    _, _, _, teacher = artifacts.teacher_setup(config)
    state = artifacts.final_state(config, common.teachers_at(config, workdir))
    return datasets.teacher_labels(teacher.greedy_action, state.params, history)
  return wrap("imitation", arms_lib.build, arms, srcs, int(config.imitation.train.seq_len), env, teacher_labels,
              replicates=int(config.imitation.num_seeds),
              heldout_streams=int(config.imitation.fidelity.heldout_streams),
              mark_explore=bool(config.imitation.model.get("mark_explore", False)))


def _check(config, env, model):
  ev = config.imitation.eval
  if int(ev.every_segments) == 0:
    return None
  tasks, _ = common.heldout_tasks(config, env, int(ev.num_tasks))
  flags = artifacts.per_model(config, lambda a: a["augment"])
  run = check_lib.make_check(model, env, tasks, int(ev.episodes), common.episode_length(env) or 1000, flags,
                             jax.random.key(int(config.seed) + 5), **artifacts.protocol(config))
  k = min(3, int(ev.episodes))
  run.describe = (f"{int(jax.tree.leaves(tasks)[0].shape[0])} held-out tasks, {ev.episodes} episodes from an empty context, "
                  f"{common.actions_phrase(common.describe_actions(config.evaluation))}; "
                  f"early = episodes 1-{k}, late = the last {k}")
  return run


def run(step, log=print) -> None:
  import orbax.checkpoint as ocp  # noqa: PLC0415
  config, workdir = step.config, step.workdir
  env = common.env_of(config)
  im = config.imitation
  out_dir = layout.path(workdir, "imitators")
  arms, num_seeds = artifacts.arm_names(config), int(im.num_seeds)
  num_models = len(arms) * num_seeds
  data, starts, n_starts, data_meta, heldout_parts = _data(config, workdir, env, log)
  seq_len = int(im.train.seq_len)
  heldout = fidelity_lib.held_out(heldout_parts, seq_len, int(im.fidelity.max_windows)) if heldout_parts else None
  if heldout is not None:
    for i, a in enumerate(arms):
      g = slice(i * num_seeds, (i + 1) * num_seeds)
      data_meta["arms"][a]["heldout_steps_per_replicate"] = heldout.steps[g].tolist()
      data_meta["arms"][a]["heldout_windows_per_replicate"] = heldout.n_windows[g].tolist()
      data_meta["arms"][a]["behaviour_recorded"] = bool(heldout.recorded[g].all())
  outputs.write_json(layout.path(out_dir, "data.json"), data_meta)
  model = artifacts.build_model(config, env)
  augment = artifacts.per_model(config, lambda a: a["augment"])
  arm_updates = [int(a["updates"]) or int(im.train.num_updates) for a in artifacts.arms_of(config).values()]
  model_updates = np.repeat(arm_updates, num_seeds)                                      # [M] caps
  learner = learner_lib.make_learner(im.train, model, augment, budgets=model_updates)
  # The model axis, padded with copies of the last model to a multiple of the devices it is sharded over
  # (results of the copies are dropped; checkpoints hold the num_models real ones).
  padded, mesh = artifacts.layout_models(num_models)
  pad_idx = np.concatenate([np.arange(num_models), np.full(padded - num_models, num_models - 1)]).astype(np.int32)
  keys = sharding.shard_seeds(learner_lib.model_keys(int(config.seed), len(arms), num_seeds)[pad_idx], mesh)
  tokens = learner_lib.example_tokens(data, seq_len, model.num_actions)
  state = jax.jit(jax.vmap(learner.init, in_axes=(0, None)))(keys, tokens)
  group = sharding.shard_seeds(jnp.asarray(pad_idx), mesh)   # model m draws from group m
  data, starts, n_starts = sharding.replicate((data, jnp.asarray(starts), jnp.asarray(n_starts)), mesh)
  real = lambda tree: jax.tree.map(lambda x: x[:num_models], tree)
  pad = lambda tree: sharding.shard_seeds(jax.tree.map(lambda x: x[pad_idx], tree), mesh)
  segment = jax.jit(learner.segment, donate_argnums=0)
  mngr = ocp.CheckpointManager(layout.path(out_dir, "checkpoints"),
                               options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
  per_seg = int(im.train.updates_per_segment)
  n_seg = int(im.train.num_updates) // per_seg
  start = mngr.latest_step() or 0
  if start > n_seg:
    raise ConfigError(f"{out_dir}: checkpoint at segment {start}, past this config's {n_seg}")
  progress = wrap("", progress_lib.Progress.load, layout.path(out_dir, PROGRESS), arms, start) if start else progress_lib.Progress.new(arms)
  best = {a: wrap("", progress_lib.load_best, out_dir, a) for a in arms if start and progress.best_update.get(a) is not None}
  if start:
    state = pad(mngr.restore(start, args=ocp.args.StandardRestore(real(state))))
    log(f"[imitation] resuming from segment {start}/{n_seg}")
  board = outputs.Board(layout.path(out_dir, "tb"), num_seeds, groups=tuple(arms),
                        purge_step=start * per_seg + 1, config=config)
  evaluate = _check(config, env, model)
  score = None
  if heldout is not None:
    score = artifacts.fidelity_scorer(config, model, env)
  fid = im.fidelity
  kept = ", ".join(f"{a}: {data_meta['arms'][a]['steps']:,} steps" for a in arms)
  log(f"[imitation] {len(arms)} arms ({kept}) x {num_seeds} seeds = {num_models} models in one program"
      + (f" (padded to {padded} over {mesh.devices.size} devices)" if padded > num_models else "") + "; "
      f"at most {n_seg} segments of {per_seg} updates, {learner.tokens_per_update:,} tokens per update per model")
  log("[imitation] update caps per arm (each arm's learning-rate schedule runs over its own cap): "
      + ", ".join(f"{a} {u}" for a, u in zip(arms, arm_updates)))
  for note in protocol_notes(config):
    log(f"[imitation] note: {note}")
  if score is not None:
    log(f"[imitation] fidelity on {common.heldout_what(config)}, held out "
        f"(KL(behaviour || imitator) in nats, on windows of {seq_len} steps); "
        + (f"an arm stops when its replicates' mean has not improved by {float(fid.min_improvement)} nats in "
           f"{int(fid.patience)} checks" if int(fid.patience) else "every arm trains to its cap"))
  if evaluate is not None:
    log(f"[imitation] held-out check every {int(im.eval.every_segments)} segments: {evaluate.describe}")
  per_arm = lambda v: np.asarray(v).reshape(len(arms), num_seeds)
  t_start, rate, metrics, n_active = time.time(), None, None, num_models
  last_loss, last_acc = np.full(num_models, np.nan), np.full(num_models, np.nan)   # each model's last update
  last_stats = None
  for seg in range(start, n_seg):
    live = (model_updates > seg * per_seg) & ~np.repeat(progress.stopped_mask(arms), num_seeds)
    active = np.flatnonzero(live)
    if active.size == 0:
      break
    t0 = time.time()
    if active.size == num_models:
      state, metrics = segment(state, data, starts, n_starts, group)
      metrics = jax.device_get(metrics)
    else:     # only the arms with updates left: a second program on those models, written back
      state, metrics = progress_lib.partial_segment(segment, state, np.flatnonzero(live[pad_idx]), padded, data, starts,
                                        n_starts, group)
    metrics = jax.tree.map(lambda x: np.asarray(x)[:num_models], metrics)
    last_loss[active] = np.asarray(metrics.loss)[active, -1]
    last_acc[active] = np.asarray(metrics.accuracy)[active, -1]
    dt = time.time() - t0
    if seg > start and active.size == n_active:   # a new program's first segment includes compilation
      rate = (active.size * learner.tokens_per_update * per_seg) / dt
    n_active = active.size
    upd = (seg + 1) * per_seg
    running = [i for i in range(len(arms)) if i * num_seeds in set(active.tolist())]
    for i in running:
      a = arms[i]
      board.scalars("imitator/loss", per_arm(metrics.loss.mean(-1))[i], upd, a)
      board.scalars("imitator/accuracy", per_arm(metrics.accuracy.mean(-1))[i], upd, a)
      board.scalars("imitator/learning_rate", per_arm(metrics.lr[:, -1])[i], upd, a)
      if rate:
        board.scalars("imitator/tokens_per_s", np.full(num_seeds, rate), upd, a)
    loss = per_arm(metrics.loss[:, -1]).mean(-1)
    line = (f"[imitation] segment {seg + 1}/{n_seg}: update {upd}, loss "
            + " ".join(f"{arms[i]} {loss[i]:.3f}" for i in running))
    if score is not None:
      last_stats = real(score(state.params, heldout, pad_idx))
      summ = fidelity_lib.summarize(last_stats, heldout, np.arange(num_models))
      for i in running:
        for name in fidelity_lib.STATS:
          board.scalars(f"imitator/fidelity_{name}", per_arm(summ[name])[i], upd, arms[i])
      stopped_now, improved = progress.record(upd, [arms[i] for i in running],
                                              {k: per_arm(v) for k, v in summ.items() if k in fidelity_lib.STATS},
                                              arms, int(fid.patience), float(fid.min_improvement),
                                              [arm_updates[i] <= upd for i in range(len(arms))])
      for a in improved:          # the best held-out weights so far, kept on disk
        i = arms.index(a)
        best[a] = jax.device_get(jax.tree.map(lambda x: x[i * num_seeds:(i + 1) * num_seeds], real(state.params)))
        progress_lib.save_best(out_dir, a, best[a])
      line += " | held-out KL " + " ".join(f"{arms[i]} {progress.curve[arms[i]][-1]['criterion']:.3f}"
                                           for i in running)
      if stopped_now:
        line += " | stopped (no improvement): " + ", ".join(stopped_now)
      # An arm that is done (stopped, or at its cap) keeps its best held-out weights from now on.
      done = [arms[i] for i in running if arms[i] in stopped_now or arm_updates[i] <= upd]
      for a in done:
        i = arms.index(a)
        state = state.replace(params=progress_lib.put_models(state.params, best[a], i * num_seeds, pad_idx, mesh))
        line += f" | {a}: weights of update {progress.best_update[a]} kept"
      if done:
        last_stats = None
    left = sum(int(np.sum((model_updates > s_ * per_seg) & ~np.repeat(progress.stopped_mask(arms), num_seeds)))
               for s_ in range(seg + 1, n_seg))
    line += (f" ({dt:.1f}s, {rate:,.0f} tokens/s, eta at most {left * learner.tokens_per_update * per_seg / rate:.0f}s)"
             if rate else f" ({dt:.1f}s, includes compilation)")
    if evaluate is not None and ((seg + 1) % int(im.eval.every_segments) == 0 or seg + 1 == n_seg):
      early, late = evaluate(real(state.params), jax.random.fold_in(jax.random.key(int(config.seed) + 3), seg))
      for i, a in enumerate(arms):
        board.scalars("imitator/eval_return_early", per_arm(early)[i], upd, a)
        board.scalars("imitator/eval_return_late", per_arm(late)[i], upd, a)
      line += " | held-out early->late: " + " ".join(
          f"{a} {per_arm(early)[i].mean():.1f}->{per_arm(late)[i].mean():.1f}" for i, a in enumerate(arms))
    log(line)
    progress.updates_done = {a: progress.updates_done.get(a, 0) + (per_seg if i in running else 0)
                             for i, a in enumerate(arms)}
    mngr.save(seg + 1, args=ocp.args.StandardSave(real(state)), force=True)
    mngr.wait_until_finished()
    progress.save(layout.path(out_dir, PROGRESS), seg + 1)
  mngr.wait_until_finished()
  mngr.close()
  summary = {"arms": arms, "num_seeds": num_seeds, "num_models": num_models, "segments": n_seg,
             "tokens_per_update_per_model": learner.tokens_per_update, "tokens_per_s": rate,
             "wall_s": time.time() - t_start}
  summary["update_caps"] = dict(zip(arms, arm_updates))
  summary["updates_per_arm"] = {a: int(progress.updates_done.get(a, 0)) for a in arms}
  summary["stopped_early"] = {a: a in progress.stopped for a in arms}
  summary["kept_update"] = {a: progress.best_update.get(a) for a in arms}
  if metrics is not None and np.isfinite(last_loss).all():
    summary["final_loss"] = per_arm(last_loss).tolist()
    summary["final_accuracy"] = per_arm(last_acc).tolist()
    summary["memorising"] = fidelity_lib.memorising(arms, data_meta, summary["final_loss"], log)
  if score is not None:
    if last_stats is None:      # the weights kept (best held-out checks), not the last ones
      last_stats = real(score(state.params, heldout, pad_idx))
    summ = fidelity_lib.summarize(last_stats, heldout, np.arange(num_models))
    manifest = artifacts.streams_per_arm(data_meta)
    steps_axis, kl_by_step = {}, {}
    for i, a in enumerate(arms):
      g = np.arange(i * num_seeds, (i + 1) * num_seeds)
      x, y = fidelity_lib.by_env_step(jax.tree.map(lambda v: np.asarray(v)[g], last_stats), heldout,
                                      manifest.get(a, 1))
      steps_axis[a], kl_by_step[a] = x.tolist(), y.tolist()
      for j, xs in enumerate(x):
        if np.isfinite(y[:, j]).any():
          board.scalars("imitator/fidelity_kl_by_env_step", y[:, j], int(xs), a)
    summary["fidelity"] = {
        "heldout": f"{common.heldout_what(config)}, cut like the training streams, "
                   f"in consecutive windows of {seq_len} steps (at most {int(fid.max_windows) or 'all'} per model)",
        "action_classes": list(getattr(env, "action_classes", None) or range(model.num_actions)),
        "classes_by_state": fidelity_lib.classes_rule(env),
        "per_arm": {a: {k: per_arm(v)[i].tolist() for k, v in summ.items()} for i, a in enumerate(arms)},
        "curve": progress.curve, "kl_by_env_step": {a: {"env_steps": steps_axis[a], "kl": kl_by_step[a]}
                                                     for a in arms}}
  board.close()
  outputs.write_json(layout.path(out_dir, layout.SUMMARY), summary)
  log(f"[imitation] done in {summary['wall_s']:.0f}s: {out_dir}")


def finished_fidelity(config, workdir):
  """(env, held-out parts [A * S], HeldOut, StepStats [A * S, W, T], arms, num_seeds) of a finished
  imitation stage: every model scored on its own held-out windows, as the stage scored it. ConfigError
  when the run holds nothing out or its stages have not run."""
  env = common.env_of(config)
  seq_len = int(config.imitation.train.seq_len)
  *_, parts = _data(config, workdir, env, lambda *_: None)
  if not parts:
    raise ConfigError("imitation.fidelity.heldout_streams: this run holds nothing out")
  model, params, arms, num_seeds = artifacts.final_imitators(config, workdir)
  heldout = fidelity_lib.held_out(parts, seq_len, int(config.imitation.fidelity.max_windows))
  score = artifacts.fidelity_scorer(config, model, env)
  return env, parts, heldout, score(params, heldout, np.arange(len(arms) * num_seeds)), arms, num_seeds


PROGRESS = "progress.json"


STAGE = Stage(name="imitation", subdir="imitators",
              reads=("seed", "env", "imitation", "evaluation.greedy", "evaluation.temperature",
                     "evaluation.epsilon", "evaluation.epsilon_decay", "experiments.p3.targets", "tasks",
                     "teacher.num_seeds", "teacher.dqn"),
              # what P3 does with a target (only its env shapes the model's embedding)
              ignores=("imitation.sources", "experiments.p3.targets.*.role", "experiments.p3.targets.*.hybrid",
                       "experiments.p3.targets.*.arm"),
              # teacher.learners_per_task: read by its checks alone; what it changes in the data reaches
              # this stage through the teachers' fingerprint
              locations=("imitation.sources", "teachers_from", "teacher.learners_per_task"),
              validate=validate, run=run, extra_outputs=("histories/ad_eps",))
