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

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits import comma_list
from cl_limits import envs as envs_lib
from cl_limits import sharding
from cl_limits.histories import arms as arms_lib
from cl_limits.histories import datasets
from cl_limits.imitation import check as check_lib
from cl_limits.imitation import fidelity as fidelity_lib
from cl_limits.imitation import learner as learner_lib
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import common, layout, outputs
from cl_limits.stages import teachers as teachers_stage
from cl_limits.stages.base import ConfigError, Stage, check, in_range, positive_int, wrap


def arm_names(config) -> list[str]:
  return list(config.imitation.arms.keys())


def arms_of(config) -> dict:
  return {n: datasets.resolve_arm(config.imitation.arms[n]) for n in arm_names(config)}


def sources(config) -> list[str]:
  """The teacher stores an imitation run reads: `imitation.sources` (comma-separated store directories,
  set by the transplant), else the config's own teacher stage (empty list)."""
  return [os.path.abspath(p) for p in comma_list(config.imitation.sources)]


def protocol(config) -> dict:
  """The evaluation protocol's actions {greedy, temperature}, which the held-out check also uses."""
  return wrap("", rollout_lib.actions_from, config.evaluation)


def target_envs(config) -> dict:
  """{name: env} of the P3 transplant targets (their observation entries widen the model's embedding)."""
  targets = config.experiments.p3.targets if "experiments" in config else {}
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


def validate(config) -> None:
  env = common.env_of(config)
  im = config.imitation
  names = arm_names(config)
  check(bool(names), "imitation.arms", "no arms configured", {})
  for name in names:
    wrap("", datasets.validate_arm, name, im.arms[name])
  positive_int(config, "imitation.num_seeds")
  total, per_seg = int(im.train.num_updates), int(im.train.updates_per_segment)
  for name, a in arms_of(config).items():
    u = int(a["updates"])
    check(u <= total and u % per_seg == 0, f"imitation.arms.{name}.updates",
          f"must be a multiple of train.updates_per_segment={per_seg} and at most train.num_updates={total}", u)
  check(sources(config) or not any(a["data"] == "teacher" for a in arms_of(config).values())
        or int(im.num_seeds) == int(config.teacher.num_seeds), "imitation.num_seeds",
        f"must equal teacher.num_seeds={int(config.teacher.num_seeds)}: replicate s's imitators train on "
        "teacher seed s's histories only", int(im.num_seeds))
  wrap("", learner_lib.validate, im.train, im.model)
  in_range(config, "imitation.train.lr", 0.0, float("inf"), lo_open=True)
  ep, ctx = common.episode_length(env), int(im.model.context_len)
  check(ep is None or ctx >= ep, "imitation.model.context_len", f"is shorter than one episode of "
        f"{config.env.name} ({ep} steps): the model could never see an earlier episode", ctx)
  arms = list(arms_of(config).values())
  check(not sources(config) or all(a["data"] == "teacher" and a["labels"] == "action" for a in arms),
        "imitation.sources", "joined stores support only arms with data='teacher', labels='action'",
        im.sources)
  check(not any(a["augment"] for a in arms) or getattr(env, "obs_nvec", None) is None, "imitation.arms",
        f"augment=True projects flat features; {config.env.name} has integer entries (obs_nvec)", names)
  enc = str(im.model.get("frame_encoder", "linear"))
  check(enc in ("linear", "patch"), "imitation.model.frame_encoder", "must be 'linear' or 'patch'", enc)
  if enc == "patch":
    shape, _ = envs_lib.obs_spec(env)
    p = int(im.model.patch)
    check(len(shape) == 3 and p >= 1 and shape[0] % p == 0 and shape[1] % p == 0, "imitation.model.patch",
          f"'patch' frames need observations [H, W, C] with H and W multiples of the patch; {config.env.name} "
          f"gives {tuple(shape)}", p)
    check(not any(a["augment"] for a in arms), "imitation.model.frame_encoder",
          "'patch' needs frames; augmented arms project flattened features", enc)
    positive_int(config, "imitation.model.patch_features")
  check(not any(a["labels"] == "oracle" for a in arms) or hasattr(env, "optimal_action_from_obs"),
        "imitation.arms", f"labels='oracle' needs an env with an oracle; {config.env.name} has none", names)
  if any(a["data"] == "ad_eps" for a in arms):
    check(hasattr(env, "optimal_action"), "imitation.arms", f"data='ad_eps' needs an env with an oracle; "
          f"{config.env.name} has none", names)
    positive_int(config, "imitation.ad_eps.steps")
    positive_int(config, "imitation.ad_eps.streams")
    in_range(config, "imitation.ad_eps.eps_floor", 0.0, 1.0)
    in_range(config, "imitation.ad_eps.decay_fraction", 0.0, 1.0, lo_open=True)
  positive_int(config, "imitation.fidelity.heldout_streams", minimum=0)
  positive_int(config, "imitation.fidelity.max_windows", minimum=0)
  positive_int(config, "imitation.fidelity.patience", minimum=0)
  in_range(config, "imitation.fidelity.min_improvement", 0.0, float("inf"))
  streams = int(config.teacher.dqn.num_envs) if "teacher" in config else 0
  check(sources(config) or not any(a["data"] == "teacher" for a in arms_of(config).values())
        or int(im.fidelity.heldout_streams) < streams, "imitation.fidelity.heldout_streams",
        f"must leave a stream to train on: the teachers have teacher.dqn.num_envs={streams} streams per learner",
        int(im.fidelity.heldout_streams))
  if any(a["data"] == "ad_eps" for a in arms_of(config).values()):
    check(int(im.fidelity.heldout_streams) < int(im.ad_eps.streams), "imitation.fidelity.heldout_streams",
          f"must leave an AD-epsilon stream to train on (imitation.ad_eps.streams={int(im.ad_eps.streams)})",
          int(im.fidelity.heldout_streams))
  check(int(im.fidelity.heldout_streams) > 0 or int(im.fidelity.patience) == 0, "imitation.fidelity.patience",
        "needs held-out data to stop on (fidelity.heldout_streams >= 1); 0 trains every arm to its cap",
        int(im.fidelity.patience))
  positive_int(config, "imitation.eval.every_segments", minimum=0)
  positive_int(config, "imitation.eval.num_tasks", minimum=0)
  positive_int(config, "imitation.eval.episodes")
  protocol(config)
  build_model(config, env)


def load_teacher_histories(config, workdir: str):
  """The sealed teacher store(s), every chunk checked (ConfigError naming the file otherwise)."""
  srcs = sources(config)
  if not srcs:
    teachers_from = common.teachers_at(config, workdir)
    return layout.load_histories(layout.histories_dir(teachers_from), expect={"env": config.env.name})
  try:
    return arms_lib.join_stores([layout.load_histories(d) for d in srcs], srcs)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def _data(config, workdir, env, log):
  arms = arms_of(config)
  srcs = {}
  if any(a["data"] == "teacher" for a in arms.values()):
    srcs["teacher"] = load_teacher_histories(config, workdir)
  if any(a["data"] == "ad_eps" for a in arms.values()):
    a = config.imitation.ad_eps
    tasks, task_ids = common.teacher_tasks(config, env)
    meta = {"env": config.env.name, "env_kwargs": config.env.kwargs.to_dict(), "source": "ad_eps",
            "steps": int(a.steps), "streams_per_learner": int(a.streams),
            "env_steps_per_learner": int(a.steps) * int(a.streams), "eps_floor": float(a.eps_floor),
            "decay_fraction": float(a.decay_fraction), "seed": int(config.seed)}
    srcs["ad_eps"] = arms_lib.ad_eps_store(layout.path(workdir, "histories", "ad_eps"), env, tasks, task_ids,
                                           meta, int(config.seed), log, replicates=int(config.imitation.num_seeds))

  def teacher_labels(history):
    _, _, _, teacher = teachers_stage.teacher_setup(config)
    state = teachers_stage.final_state(config, common.teachers_at(config, workdir))
    return datasets.teacher_labels(teacher.greedy_action, state.params, history)
  try:
    return arms_lib.build(arms, srcs, int(config.imitation.train.seq_len), env, teacher_labels,
                          replicates=int(config.imitation.num_seeds),
                          heldout_streams=int(config.imitation.fidelity.heldout_streams))
  except ValueError as e:
    raise ConfigError(str(e)) from None


def _check(config, env, model):
  ev = config.imitation.eval
  if int(ev.every_segments) == 0:
    return None
  tasks, _ = common.heldout_tasks(config, env, int(ev.num_tasks))
  flags = np.repeat([a["augment"] for a in arms_of(config).values()], int(config.imitation.num_seeds))
  run = check_lib.make_check(model, env, tasks, int(ev.episodes), common.episode_length(env) or 1000, flags,
                             jax.random.key(int(config.seed) + 5), **protocol(config))
  k = min(3, int(ev.episodes))
  run.describe = (f"{int(jax.tree.leaves(tasks)[0].shape[0])} held-out tasks, {ev.episodes} episodes from an empty context, "
                  f"{rollout_lib.actions_phrase(rollout_lib.describe_actions(config.evaluation))}; "
                  f"early = episodes 1-{k}, late = the last {k}")
  return run


def run(step, log=print) -> None:
  import orbax.checkpoint as ocp  # noqa: PLC0415
  config, workdir = step.config, step.workdir
  env = common.env_of(config)
  im = config.imitation
  out_dir = layout.path(workdir, "imitators")
  arms, num_seeds = arm_names(config), int(im.num_seeds)
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
  model = build_model(config, env)
  augment = np.repeat([a["augment"] for a in arms_of(config).values()], num_seeds)
  arm_updates = [int(a["updates"]) or int(im.train.num_updates) for a in arms_of(config).values()]
  model_updates = np.repeat(arm_updates, num_seeds)                                      # [M] caps
  learner = learner_lib.make_learner(im.train, model, augment, budgets=model_updates)
  # The model axis, padded with copies of the last model to a multiple of the devices it is sharded over
  # (results of the copies are dropped; checkpoints hold the num_models real ones).
  padded, mesh = layout_models(num_models)
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
  progress = Progress.load(layout.path(out_dir, PROGRESS), arms, start) if start else Progress.new(arms)
  best = {a: _load_best(out_dir, a) for a in arms if start and progress.best_update.get(a) is not None}
  if start:
    state = pad(mngr.restore(start, args=ocp.args.StandardRestore(real(state))))
    log(f"[imitation] resuming from segment {start}/{n_seg}")
  board = outputs.Board(layout.path(out_dir, "tb"), num_seeds, groups=tuple(arms),
                        purge_step=start * per_seg + 1, config=config)
  evaluate = _check(config, env, model)
  score = None
  if heldout is not None:
    score = fidelity_lib.make_fidelity(model, seq_len, model.num_actions, flatten_obs=bool(augment.any()),
                                       action_classes=getattr(env, "action_classes", None))
  fid = im.fidelity
  kept = ", ".join(f"{a}: {data_meta['arms'][a]['steps']:,} steps" for a in arms)
  log(f"[imitation] {len(arms)} arms ({kept}) x {num_seeds} seeds = {num_models} models in one program"
      + (f" (padded to {padded} over {mesh.devices.size} devices)" if padded > num_models else "") + "; "
      f"at most {n_seg} segments of {per_seg} updates, {learner.tokens_per_update:,} tokens per update per model")
  log("[imitation] update caps per arm (each arm's learning-rate schedule runs over its own cap): "
      + ", ".join(f"{a} {u}" for a, u in zip(arms, arm_updates)))
  if score is not None:
    log(f"[imitation] fidelity on each learner's last {int(fid.heldout_streams)} stream(s), held out "
        "(KL(behaviour || imitator) in nats); "
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
      state, metrics = _partial_segment(segment, state, np.flatnonzero(live[pad_idx]), padded, data, starts,
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
        _save_best(out_dir, a, best[a])
      line += " | held-out KL " + " ".join(f"{arms[i]} {progress.curve[arms[i]][-1]['criterion']:.3f}"
                                           for i in running)
      if stopped_now:
        line += " | stopped (no improvement): " + ", ".join(stopped_now)
      # An arm that is done (stopped, or at its cap) keeps its best held-out weights from now on.
      done = [arms[i] for i in running if arms[i] in stopped_now or arm_updates[i] <= upd]
      for a in done:
        i = arms.index(a)
        state = state.replace(params=_put_models(state.params, best[a], i * num_seeds, pad_idx, mesh))
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
  if score is not None:
    if last_stats is None:      # the weights kept (best held-out checks), not the last ones
      last_stats = real(score(state.params, heldout, pad_idx))
    summ = fidelity_lib.summarize(last_stats, heldout, np.arange(num_models))
    manifest = streams_per_arm(data_meta)
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
        "heldout": f"each learner's last {int(fid.heldout_streams)} stream(s), cut like the training streams, "
                   f"in consecutive windows of {seq_len} steps (at most {int(fid.max_windows) or 'all'} per model)",
        "action_classes": list(getattr(env, "action_classes", None) or range(model.num_actions)),
        "per_arm": {a: {k: per_arm(v)[i].tolist() for k, v in summ.items()} for i, a in enumerate(arms)},
        "curve": progress.curve, "kl_by_env_step": {a: {"env_steps": steps_axis[a], "kl": kl_by_step[a]}
                                                     for a in arms}}
  board.close()
  outputs.write_json(layout.path(out_dir, layout.SUMMARY), summary)
  log(f"[imitation] done in {summary['wall_s']:.0f}s: {out_dir}")


def layout_models(num_models: int):
  """(padded model count, mesh) of the imitation program (`sharding.padded_layout` over every device)."""
  return sharding.padded_layout(num_models)


def streams_per_arm(data_meta) -> dict:
  """{arm: streams per learner of its source} (the env-step axis of its fidelity curve)."""
  return {a: int(m.get("source_streams_per_learner", 1)) for a, m in data_meta["arms"].items()}


PROGRESS = "progress.json"


class Progress:
  """Which arms have stopped, each arm's held-out fidelity curve and its updates: saved beside every
  checkpoint, so a resumed run continues the same stopping rule."""

  def __init__(self, curve, stopped, best, since, updates_done, best_update):
    self.curve, self.stopped, self.best, self.since, self.updates_done = curve, stopped, best, since, updates_done
    self.best_update = best_update

  @classmethod
  def new(cls, arms):
    return cls({a: [] for a in arms}, {}, {a: None for a in arms}, {a: 0 for a in arms}, {a: 0 for a in arms},
               {a: None for a in arms})

  @classmethod
  def load(cls, path, arms, segment):
    d = None
    if os.path.exists(path):
      with open(path) as f:
        d = json.load(f)
    if d is None or int(d.get("segment", -1)) != int(segment):
      raise ConfigError(f"{path}: missing or not at checkpoint segment {segment}; delete the imitators "
                        "directory to retrain")
    return cls(d["curve"], d["stopped"], d["best"], d["since"], d["updates_done"], d["best_update"])

  def save(self, path, segment):
    outputs.write_json(path, {"segment": int(segment), "curve": self.curve, "stopped": self.stopped,
                              "best": self.best, "since": self.since, "updates_done": self.updates_done,
                              "best_update": self.best_update})

  def stopped_mask(self, arms):
    return np.array([a in self.stopped for a in arms])

  def record(self, update, running, stats, arms, patience, min_improvement, at_cap):
    """Adds one check of the running arms; returns (the arms that stop now for lack of improvement, the
    arms whose check is their best so far). The criterion is the replicates' mean KL, or the mean NLL of
    the recorded action when the behaviour policy is not on record."""
    now, improved = [], []
    for a in running:
      i = arms.index(a)
      kl = stats["kl"][i]
      crit = float(np.mean(kl)) if np.isfinite(kl).all() else float(np.mean(stats["nll"][i]))
      self.curve[a].append({"update": int(update), "criterion": crit,
                            **{k: [float(x) for x in v[i]] for k, v in stats.items()}})
      if self.best[a] is None or crit < self.best[a]:
        improved.append(a)
        self.best_update[a] = int(update)
      if self.best[a] is None or crit < self.best[a] - min_improvement:
        self.best[a], self.since[a] = crit, 0
      else:
        self.since[a] += 1
        self.best[a] = min(self.best[a], crit)
      if patience and self.since[a] >= patience and not at_cap[i]:
        self.stopped[a] = int(update)
        now.append(a)
    return now, improved


def _best_path(out_dir, arm):
  return layout.path(out_dir, "best", f"{arm}.npz")


def _save_best(out_dir, arm, params) -> None:
  """An arm's best held-out weights [S, ...] (leaves in tree order), written atomically."""
  import io  # noqa: PLC0415
  from cl_limits.histories import store  # noqa: PLC0415
  buf = io.BytesIO()
  np.savez(buf, *[np.asarray(x) for x in jax.tree.leaves(params)])
  os.makedirs(os.path.dirname(_best_path(out_dir, arm)), exist_ok=True)
  store.atomic_write_bytes(_best_path(out_dir, arm), buf.getvalue())


def _load_best(out_dir, arm):
  """The leaves saved by `_save_best` (a list; `_put_models` takes it as the params' leaves in order)."""
  path = _best_path(out_dir, arm)
  if not os.path.exists(path):
    raise ConfigError(f"{path} is missing: the imitation run cannot resume its early stopping; delete "
                      f"{os.path.dirname(os.path.dirname(path))} to retrain")
  with np.load(path) as z:
    return [z[f"arr_{i}"] for i in range(len(z.files))]


def _put_models(params, arm_params, first: int, pad_idx, mesh):
  """params [padded, ...] with the models first .. first + S (and their padding copies) set to arm_params
  [S, ...] (a pytree like params, or its leaves in order)."""
  leaves, treedef = jax.tree.flatten(params)
  new = arm_params if isinstance(arm_params, list) else jax.tree.leaves(arm_params)
  n = np.asarray(new[0]).shape[0]
  pos = np.flatnonzero((pad_idx >= first) & (pad_idx < first + n))
  out = [x.at[jnp.asarray(pos)].set(jnp.asarray(np.asarray(b)[pad_idx[pos] - first])) for x, b in zip(leaves, new)]
  return sharding.shard_seeds(jax.tree.unflatten(treedef, out), mesh)


def _partial_segment(segment, state, active, num_models, data, starts, n_starts, group):
  """One segment of updates for the models `active` only (the others keep their state); metrics of the
  others are NaN."""
  idx = jnp.asarray(active)
  sub = jax.tree.map(lambda x: x[idx], state)
  sub, m = segment(sub, data, starts, n_starts, group[idx])
  state = jax.tree.map(lambda x, y: x.at[idx].set(y), state, sub)
  m = jax.device_get(m)
  full = lambda v: np.full((num_models,) + np.shape(v)[1:], np.nan, np.float32)
  loss, acc, lr = full(m.loss), full(m.accuracy), full(m.lr)
  loss[active], acc[active], lr[active] = m.loss, m.accuracy, m.lr
  return state, type(m)(loss=loss, accuracy=acc, lr=lr)


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
                         prev_reward=jnp.float32(0), prev_done=jnp.bool_(False)))
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


STAGE = Stage(name="imitation", subdir="imitators",
              reads=("seed", "imitation", "evaluation.greedy", "evaluation.temperature",
                     "experiments.p3.targets", "tasks.split_seed", "tasks.heldout_fraction"),
              # where the stores are (their fingerprints are inputs); what P3 does with a target (only
              # its env shapes the model's embedding)
              ignores=("imitation.sources", "experiments.p3.targets.*.role", "experiments.p3.targets.*.hybrid"),
              validate=validate, run=run, extra_outputs=("histories/ad_eps",))
