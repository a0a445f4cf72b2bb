"""The imitation stage: train every arm's imitators (x seeds) together, in segments, resumably.

`run_imitation(config, workdir)` reads the teacher histories from `workdir/teachers/histories` (and writes
AD-epsilon histories to `workdir/histories/ad_eps` when an arm asks for them), then writes under
`workdir/imitators/`:

  config.json     the config it ran
  data.json       per arm: portion, fraction, gap, streams, labels, and what that kept (histories, steps,
                  episodes, windows), plus the source's streams per learner: the data manifest
  checkpoints/    orbax CheckpointManager, step = finished segments; every leaf has a model axis [M]
  tb/<arm>/seed_<s>/  TensorBoard: loss, accuracy, tokens/s, and a short frozen rollout on held-out tasks
                  (early vs late episode return) every few segments; tb/<arm>/all the mean over seeds
  summary.json    written last: arms, seeds, final loss / accuracy, throughput (marks the stage complete)

Models are ordered arm-major (model m = arm m // S, seed m % S). Seed s of every arm starts from the same
initial weights and draws windows with the same key sequence, so arms are compared pairwise.
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
from cl_limits.histories import adeps, datasets, store, windows
from cl_limits.histories import history as history_lib
from cl_limits.imitation import learner as learner_lib
from cl_limits.rollouts import rollout as rollout_lib

SUMMARY = "summary.json"


def episode_length(env) -> int | None:
  """The env's episode time limit in steps, where it has one the config can be checked against."""
  n = getattr(env, "episode_len", None)
  return int(n) if n else None


def arm_names(config) -> list[str]:
  return list(config.imitation.arms.keys())


def augment_flags(config) -> np.ndarray:
  """bool [A]: which arms train on augmented windows (random observation projection, action permutation)."""
  return np.array([bool(datasets.resolve_arm(config.imitation.arms[n])["augment"]) for n in arm_names(config)])


def validate_config(config, env=None) -> None:
  """Checks everything the imitation stage reads, before any compilation; ValueError names the field."""
  im = config.imitation
  if env is None:
    env = envs_lib.make(config.env.name, **config.env.kwargs.to_dict())
  names = arm_names(config)
  if not names:
    raise ValueError("imitation.arms: no arms configured")
  for name in names:
    datasets.validate_arm(name, im.arms[name])
  if int(im.num_seeds) < 1:
    raise ValueError(f"imitation.num_seeds: must be >= 1 (got {im.num_seeds})")
  learner_lib.validate(im.train, im.model)
  ep = episode_length(env)
  ctx = int(im.model.context_len)
  if ep is not None and ctx < ep:
    raise ValueError(
        f"imitation.model.context_len={ctx} is shorter than one episode of {config.env.name} ({ep} "
        "steps): the model could never see what happened in an earlier episode, so it cannot learn "
        "across episodes in context")
  arms = [datasets.resolve_arm(im.arms[n]) for n in names]
  if history_sources(config) and any(a["data"] != "teacher" or a["labels"] != "action" for a in arms):
    raise ValueError("imitation.sources: joined teacher stores (several envs) support only arms with "
                     "data='teacher' and labels='action'")
  if any(a["augment"] for a in arms) and getattr(env, "obs_nvec", None) is not None:
    raise ValueError(f"imitation.arms: augment=True projects flat observation features; {config.env.name} "
                     "has integer observation entries embedded one by one (obs_nvec)")
  if any(a["labels"] == "oracle" for a in arms) and not hasattr(
      env, "optimal_action_from_obs"):
    raise ValueError(f"imitation.arms: labels='oracle' needs an env with an oracle; {config.env.name} "
                     "has none (use labels='teacher')")
  if any(a["data"] == "ad_eps" for a in arms):
    if not hasattr(env, "optimal_action"):
      raise ValueError(f"imitation.arms: data='ad_eps' needs an env with an oracle; {config.env.name} "
                       "has none")
    a = im.ad_eps
    if int(a.steps) < 1 or int(a.streams) < 1:
      raise ValueError(f"imitation.ad_eps: steps and streams must be >= 1 (got {a.steps}, {a.streams})")
    if not 0.0 <= float(a.eps_floor) <= 1.0:
      raise ValueError(f"imitation.ad_eps.eps_floor: must be in [0, 1] (got {a.eps_floor})")
    if not 0.0 < float(a.decay_fraction) <= 1.0:
      raise ValueError(f"imitation.ad_eps.decay_fraction: must be in (0, 1] (got {a.decay_fraction})")
  ev = im.eval
  if int(ev.every_segments):
    rollout_lib.actions_from(check_protocol(config))    # a bad temperature fails here, before compiling
  if int(ev.every_segments) < 0 or int(ev.num_tasks) < 0 or int(ev.episodes) < 1:
    raise ValueError("imitation.eval: every_segments and num_tasks must be >= 0, episodes >= 1 "
                     f"(got {ev.every_segments}, {ev.num_tasks}, {ev.episodes})")


def history_sources(config) -> list[str]:
  """The teacher history stores an imitation run reads: `imitation.sources` (comma-separated store
  directories, e.g. the teachers of several MinAtar games; the transplant experiment sets it), else the
  config's own teacher stage."""
  return [os.path.abspath(p) for p in comma_list(config.imitation.get("sources", ""))]


def load_teacher_histories(config, workdir):
  """The sealed teacher store(s) (validated chunk by chunk); HistoryStoreError says what is wrong.

  Several sources (`imitation.sources`) are joined along the task axis: their learners must have the same
  observation spec, action set, seeds and streams; shorter stores are padded in time (padding is skipped
  by every reader)."""
  from cl_limits.teachers.runner import teachers_dir  # noqa: PLC0415
  sources = history_sources(config)
  if not sources:
    hist_dir = os.path.join(teachers_dir(config, workdir), "histories")
    return store.load(hist_dir, expect={"env": config.env.name})
  loaded = [store.load(d) for d in sources]
  first = loaded[0][1]
  for (h, m), d in zip(loaded, sources):
    for k in ("num_seeds", "streams_per_learner", "env_steps_per_learner"):
      if m.get(k) != first.get(k):
        raise store.HistoryStoreError(f"imitation.sources: {d} has {k}={m.get(k)}, {sources[0]} has "
                                      f"{first.get(k)}; joined sources need the same learners")
    obs_spec = lambda man: (man["fields"]["obs"]["dtype"], man["fields"]["obs"]["shape"][4:])
    if obs_spec(m) != obs_spec(first):
      raise store.HistoryStoreError(f"imitation.sources: {d} holds observations {obs_spec(m)}, "
                                    f"{sources[0]} {obs_spec(first)}")
  length = max(int(h.action.shape[3]) for h, _ in loaded)
  padded = [history_lib.pad_time(h, length) for h, _ in loaded]
  history = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *padded)
  manifest = {**first, "env": [m["env"] for _, m in loaded], "sources": sources,
              "task_ids": [t for _, m in loaded for t in m["task_ids"]],
              "record_gap": [m.get("record_gap", 1) for _, m in loaded]}
  return history, manifest


def ad_eps_histories(config, workdir, env, log=print):
  """AD-epsilon histories for the teacher tasks, generated once and stored like a teacher's."""
  from cl_limits.teachers.runner import teacher_tasks  # noqa: PLC0415
  a = config.imitation.ad_eps
  directory = os.path.join(os.path.abspath(workdir), "histories", "ad_eps")
  meta = {"env": config.env.name, "env_kwargs": config.env.kwargs.to_dict(), "source": "ad_eps",
          "steps": int(a.steps), "streams_per_learner": int(a.streams),
          "env_steps_per_learner": int(a.steps) * int(a.streams), "eps_floor": float(a.eps_floor),
          "decay_fraction": float(a.decay_fraction), "seed": int(config.seed)}
  if store.is_complete(directory):
    history, manifest = store.load(directory)
    if all(manifest.get(k) == v for k, v in meta.items()):
      return history, manifest
    raise store.HistoryStoreError(f"{directory} holds AD-epsilon histories of different settings; "
                                  "use a new workdir or delete it")
  tasks, task_ids = teacher_tasks(config, env)
  gen = adeps.make_generate(env, int(a.steps), int(a.streams), float(a.eps_floor), float(a.decay_fraction))
  keys = jax.random.split(jax.random.key(int(config.seed) + 7), len(task_ids))
  t0 = time.time()
  hist = jax.device_get(jax.jit(jax.vmap(gen))(keys, tasks))
  hist = jax.tree.map(lambda x: np.asarray(x)[None], hist)      # one "seed" axis
  writer = store.HistoryWriter(directory, {**meta, "task_ids": np.asarray(task_ids).tolist(),
                                           "num_seeds": 1, "axes": ["seed", "task", "stream", "time"]})
  writer.write_chunk(0, hist)
  writer.finalize(1)
  log(f"[imitation] AD-epsilon histories: {len(task_ids)} tasks x {a.streams} streams x {a.steps} steps "
      f"({time.time() - t0:.1f}s)")
  return store.load(directory)


def build_data(config, workdir, env, log=print):
  """(DeviceData, starts [A, max_n], n_starts [A], data manifest) for every arm of the config."""
  im = config.imitation
  seq_len = int(im.train.seq_len)
  sources, parts, per_arm, arms_meta = {}, [], [], {}
  offset = 0
  for name in arm_names(config):
    arm = datasets.resolve_arm(im.arms[name])
    src = arm["data"]
    if src not in sources:
      sources[src] = (load_teacher_histories(config, workdir) if src == "teacher"
                      else ad_eps_histories(config, workdir, env, log))
    history, manifest = sources[src]
    labels = arm["labels"]
    label = None
    if labels == "oracle":
      tasks = envs_lib.tasks_at(env, np.asarray(manifest["task_ids"]))
      label = datasets.oracle_labels(env, history, tasks)
    elif labels == "teacher":
      if src != "teacher":
        raise ValueError(f"imitation.arms.{name}.labels: 'teacher' relabelling needs data='teacher'")
      label = _teacher_greedy_labels(config, workdir, env, history)
    fd = datasets.select(history, portion=arm["portion"], fraction=float(arm["fraction"]),
                         gap=int(arm["gap"]), streams=int(arm["streams"]), label=label)
    try:
      index = windows.build_index(fd.lengths, seq_len)
    except ValueError as e:
      raise ValueError(f"imitation.arms.{name}: {e}; its histories after portion/gap selection are too "
                       f"short for train.seq_len={seq_len}") from None
    per_arm.append(np.asarray(index.starts) + offset)
    offset += fd.num_steps
    parts.append(fd)
    arms_meta[name] = {**arm, "source_streams_per_learner": int(manifest["streams_per_learner"]),
                       "source_env_steps_per_learner": int(manifest["env_steps_per_learner"]),
                       "histories": int(len(fd.lengths)), "steps": fd.num_steps,
                       "episodes": fd.episodes, "windows": int(len(index.starts)),
                       "mean_return_per_episode": float(fd.reward.sum() / max(fd.episodes, 1))}
  flat, _ = datasets.concat(parts)
  starts, n_starts = learner_lib.pad_starts(per_arm)
  meta = {"seq_len": seq_len, "arms": arms_meta}
  if "teacher" in sources:
    m = sources["teacher"][1]
    meta["teacher_histories"] = {"env": m["env"], "record_gap": m.get("record_gap", 1),
                                 "sources": m.get("sources", [])}
  return datasets.to_device(flat), starts, n_starts, meta


def _teacher_greedy_labels(config, workdir, env, history):
  from cl_limits.teachers import runner as teacher_runner  # noqa: PLC0415
  from cl_limits.teachers import dqn  # noqa: PLC0415
  state = teacher_runner.load_final_state(config, workdir)
  teacher = dqn.make_teacher(config.teacher.dqn, env)
  return datasets.teacher_labels(teacher.greedy_action, state.params, history)


def transplant_targets(config) -> dict:
  """{name: env} of the P3 within-family transplant targets the config names (none without them)."""
  ex = config.get("experiments")
  targets = ex.get("p3", {}).get("targets", {}) if ex is not None else {}
  return {name: envs_lib.make(t.name, **t.kwargs.to_dict()) for name, t in targets.items()}


def model_obs_nvec(config, env):
  """Per-entry cardinalities the model embeds: the env's, widened to every transplant target's, so one
  imitator can be rolled out in them (entries a source observation lacks read as 0)."""
  nvec = getattr(env, "obs_nvec", None)
  if nvec is None:
    return None
  nvec = list(nvec)
  for name, target in transplant_targets(config).items():
    other = getattr(target, "obs_nvec", None)
    if other is None:
      raise ValueError(f"experiments.p3.targets.{name}: {target.name} has no integer observation entries "
                       f"(obs_nvec) to share an embedding with {config.env.name}")
    nvec += [0] * (len(other) - len(nvec))
    nvec = [max(a, b) for a, b in zip(nvec, list(other) + [0] * (len(nvec) - len(other)))]
  return tuple(nvec)


def build_model(config, env):
  """The config's transformer for this env (its action count, and per-entry embeddings where the env
  has integer observations, wide enough for the transplant targets)."""
  return learner_lib.make_model(config.imitation.model, env.action_space(env.default_params).n,
                                model_obs_nvec(config, env))


def heldout_tasks(config, env, num: int = 0):
  """(params [K], ids) of the held-out split, the first `num` of them (0: all)."""
  _, held = envs_lib.split_ids(env, config.tasks.split_seed, config.tasks.heldout_fraction)
  if num:
    held = held[:num]
  return envs_lib.tasks_at(env, held), held


def model_keys(seed: int, num_arms: int, num_seeds: int):
  """Keys [A * S]: seed s of every arm gets fold_in(key(seed), s), the same for every arm."""
  base = jax.random.key(seed + 1)
  return jnp.stack([jax.random.fold_in(base, s) for _ in range(num_arms) for s in range(num_seeds)])


class _Board:
  def __init__(self, directory, arms, num_seeds, config):
    from tensorboardX import SummaryWriter  # noqa: PLC0415
    self.arms, self.num_seeds = arms, num_seeds
    self.writers = {(a, s): SummaryWriter(os.path.join(directory, a, f"seed_{s}"))
                    for a in arms for s in range(num_seeds)}
    self.all = {a: SummaryWriter(os.path.join(directory, a, "all")) for a in arms}
    self.all[arms[0]].add_text("config", "```\n" + str(config) + "\n```", 0)

  def scalars(self, tag, values, step):
    """values [A * S] in model order."""
    values = np.asarray(values).reshape(len(self.arms), self.num_seeds)
    for i, a in enumerate(self.arms):
      for s in range(self.num_seeds):
        self.writers[(a, s)].add_scalar(tag, float(values[i, s]), step)
      self.all[a].add_scalar(tag, float(np.nanmean(values[i])), step)

  def close(self):
    for w in list(self.writers.values()) + list(self.all.values()):
      w.close()


def check_protocol(config):
  """The during-training check's action protocol: the evaluation stage's (`config.evaluation`; sampled at
  temperature 1.0 where a config has none)."""
  ev = config.get("evaluation")
  return ev if ev is not None else {}


def make_eval(config, env, model):
  """The during-training check: frozen rollouts on a few held-out tasks, early vs late return, with the
  evaluation stage's actions (`config.evaluation`: greedy or sampled at its temperature; sampled at 1.0
  where a config has no evaluation section). Augmented arms play augmented versions of the tasks (a fresh
  projection and permutation per task)."""
  from cl_limits.envs import wrappers  # noqa: PLC0415
  ev = config.imitation.eval
  if int(ev.every_segments) == 0:
    return None
  actions = rollout_lib.actions_from(check_protocol(config))
  tasks, _ = heldout_tasks(config, env, int(ev.num_tasks))
  episodes = int(ev.episodes)
  ep_len = episode_length(env) or 1000
  horizon = episodes * ep_len
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  flags = np.repeat(augment_flags(config), int(config.imitation.num_seeds))      # per model
  groups = [(np.flatnonzero(~flags), env, tasks)]
  if flags.any():
    aug_env = wrappers.augmented(env)
    aug_tasks = wrappers.sample_augmented(aug_env, jax.random.key(int(config.seed) + 5), tasks)
    groups.append((np.flatnonzero(flags), aug_env, aug_tasks))
  groups = [(idx, rollout_lib.make_batched_rollout(model, e, horizon=horizon,
                                                   max_episodes=rollout_lib.episodes_for(e, horizon),
                                                   **actions), t)
            for idx, e, t in groups if len(idx)]

  def run(params, key):
    m = int(jax.tree.leaves(params)[0].shape[0])
    keys = jax.random.split(key, m * num_tasks).reshape(m, num_tasks)
    early, late = np.full(m, np.nan), np.full(m, np.nan)
    k = min(3, episodes)
    for idx, fn, t in groups:
      res = jax.device_get(fn(jax.tree.map(lambda x: x[idx], params), t, keys[idx]))
      r = np.asarray(res.episode_return)[..., :episodes]
      with np.errstate(all="ignore"):
        early[idx], late[idx] = np.nanmean(r[..., :k], axis=(1, 2)), np.nanmean(r[..., -k:], axis=(1, 2))
    return early, late
  k = min(3, episodes)
  run.describe = (f"{num_tasks} held-out tasks, {episodes} episodes from an empty context, "
                  f"{rollout_lib.actions_phrase(rollout_lib.describe_actions(check_protocol(config)))}; "
                  f"early = episodes 1-{k}, late = the last {k}")
  return run


def run_imitation(config, workdir: str, log=print) -> dict:
  """Trains (or resumes, or skips) the imitation stage. Returns the paths it wrote."""
  import orbax.checkpoint as ocp  # noqa: PLC0415

  env = envs_lib.make(config.env.name, **config.env.kwargs.to_dict())
  validate_config(config, env)
  im = config.imitation
  paths = store.stage_paths(workdir, "imitators", checkpoints="checkpoints", data="data.json")
  if store.stage_complete(paths, "imitation", log):
    return paths
  out_dir = paths["dir"]
  arms, num_seeds = arm_names(config), int(im.num_seeds)
  num_models = len(arms) * num_seeds
  data, starts, n_starts, data_meta = build_data(config, workdir, env, log)   # validates the stores
  os.makedirs(out_dir, exist_ok=True)
  store.atomic_write_json(os.path.join(out_dir, "config.json"), json.loads(config.to_json_best_effort()))
  store.atomic_write_json(paths["data"], data_meta)

  model = build_model(config, env)
  num_actions = model.num_actions
  learner = learner_lib.make_learner(im.train, model, augment_flags(config))
  mesh = sharding.seed_mesh(num_models)
  keys = sharding.shard_seeds(model_keys(int(config.seed), len(arms), num_seeds), mesh)
  tokens = learner_lib.example_tokens(data, int(im.train.seq_len), num_actions)
  state = jax.jit(jax.vmap(learner.init, in_axes=(0, None)))(keys, tokens)
  arm_of = sharding.shard_seeds(jnp.repeat(jnp.arange(len(arms), dtype=jnp.int32), num_seeds), mesh)
  data, starts, n_starts = sharding.replicate((data, jnp.asarray(starts), jnp.asarray(n_starts)), mesh)
  segment = jax.jit(learner.segment, donate_argnums=0)

  mngr = ocp.CheckpointManager(paths["checkpoints"], options=ocp.CheckpointManagerOptions(max_to_keep=2,
                                                                                          create=True))
  n_seg = int(im.train.num_updates) // int(im.train.updates_per_segment)
  start = mngr.latest_step() or 0
  if start > n_seg:
    raise ValueError(f"checkpoint in {out_dir} is at segment {start}, past this config's {n_seg}: the run "
                     "directory belongs to a different config")
  if start:
    state = mngr.restore(start, args=ocp.args.StandardRestore(state))
    log(f"[imitation] resuming from segment {start}/{n_seg}")
  board = _Board(os.path.join(out_dir, "tb"), arms, num_seeds, config)
  evaluate = make_eval(config, env, model)
  per_seg = int(im.train.updates_per_segment)
  tokens_per_seg = num_models * learner.tokens_per_update * per_seg
  kept = ", ".join(f"{a}: {data_meta['arms'][a]['steps']:,} steps" for a in arms)
  log(f"[imitation] {len(arms)} arms ({kept})"
      f" x {num_seeds} seeds = {num_models} models in one program; {n_seg} segments of {per_seg} updates, "
      f"{learner.tokens_per_update:,} tokens per update per model")
  if evaluate is not None:
    log(f"[imitation] held-out check every {int(im.eval.every_segments)} segments: {evaluate.describe}")
  t_start, rate = time.time(), None
  metrics = None
  for seg in range(start, n_seg):
    t0 = time.time()
    state, metrics = segment(state, data, starts, n_starts, arm_of)
    metrics = jax.device_get(metrics)
    dt = time.time() - t0
    if seg > start:   # the first segment of a process includes compilation
      rate = tokens_per_seg / dt
    step = (seg + 1) * per_seg
    board.scalars("imitator/loss", metrics.loss.mean(-1), step)
    board.scalars("imitator/accuracy", metrics.accuracy.mean(-1), step)
    if rate:
      board.scalars("imitator/tokens_per_s", np.full(num_models, rate), step)
    line = (f"[imitation] segment {seg + 1}/{n_seg}: update {step}, loss "
            + " ".join(f"{a} {metrics.loss[i * num_seeds:(i + 1) * num_seeds, -1].mean():.3f}"
                       for i, a in enumerate(arms))
            + f" ({dt:.1f}s" + (f", {rate:,.0f} tokens/s, eta {(n_seg - seg - 1) * tokens_per_seg / rate:.0f}s)"
                                if rate else ", includes compilation)"))
    every = int(im.eval.every_segments)
    if evaluate is not None and ((seg + 1) % every == 0 or seg + 1 == n_seg):
      early, late = evaluate(state.params, jax.random.fold_in(jax.random.key(int(config.seed) + 3), seg))
      board.scalars("imitator/eval_return_early", early, step)
      board.scalars("imitator/eval_return_late", late, step)
      line += " | held-out early->late: " + " ".join(
          f"{a} {early[i * num_seeds:(i + 1) * num_seeds].mean():.1f}->{late[i * num_seeds:(i + 1) * num_seeds].mean():.1f}"
          for i, a in enumerate(arms))
    log(line)
    mngr.save(seg + 1, args=ocp.args.StandardSave(state), force=seg + 1 == n_seg)
  mngr.wait_until_finished()
  mngr.close()
  board.close()
  summary = {"arms": arms, "num_seeds": num_seeds, "num_models": num_models, "segments": n_seg,
             "tokens_per_update_per_model": learner.tokens_per_update, "tokens_per_s": rate,
             "wall_s": time.time() - t_start}
  if metrics is not None:
    summary["final_loss"] = np.asarray(metrics.loss[:, -1]).reshape(len(arms), num_seeds).tolist()
    summary["final_accuracy"] = np.asarray(metrics.accuracy[:, -1]).reshape(len(arms), num_seeds).tolist()
  store.atomic_write_json(paths["summary"], summary)
  log(f"[imitation] done in {summary['wall_s']:.0f}s: {out_dir}")
  return paths


def arm_params(params, arms, name: str, num_seeds: int):
  """The seeds of one arm from params stacked arm-major over models [A * S, ...] -> [S, ...]."""
  i = arms.index(name)
  return jax.tree.map(lambda x: x[i * num_seeds:(i + 1) * num_seeds], params)


def load_final(config, workdir: str):
  """(model, params with a leading model axis [A * S], arms, num_seeds) of a finished imitation stage."""
  import orbax.checkpoint as ocp  # noqa: PLC0415
  env = envs_lib.make(config.env.name, **config.env.kwargs.to_dict())
  out_dir = os.path.join(os.path.abspath(workdir), "imitators")
  if not os.path.exists(os.path.join(out_dir, SUMMARY)):
    raise FileNotFoundError(f"no finished imitation stage in {out_dir} (run experiments/imitate.py first)")
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
                            model_keys(int(config.seed), len(arms), num_seeds), tokens)
  abstract = sharding.restore_target(abstract, len(arms) * num_seeds)
  mngr = ocp.CheckpointManager(os.path.join(out_dir, "checkpoints"))
  step = mngr.latest_step()
  try:
    state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  except (ValueError, TypeError) as e:
    raise ValueError(f"the imitators in {out_dir} do not fit this config's model (imitation.model, the "
                     f"arms, the seeds, or the observation entries widened for experiments.p3.targets "
                     f"changed since they were trained): {str(e)[:300]}") from None
  finally:
    mngr.close()
  return model, state.params, arms, num_seeds
