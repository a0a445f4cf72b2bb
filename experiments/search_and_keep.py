r"""Does a P2 imitator fail its competence gate by not finding the goal, or by not keeping it, and how does it
compare with its own data? On a finished run's P2 stage (its saved competence rollouts: every replicate x
training task x episode), for each P2 row:

- the imitator: the share of episodes that reach the goal (any reward), by episode; the chance of reaching
  it in the episode after one that did (keeping) and after one that did not (finding), the latter split by
  whether the imitator had reached the goal in an earlier episode of its rollout; the mean return when
  reached;
- its data: the same for the episodes its arm keeps of every stream on the same tasks, in the order the
  imitator saw them (kept episode i stands where rollout episode i stands: the imitator's own time), with
  finding split by whether the data's learner had already reached the goal in any of its streams, kept
  episodes or not, when the episode began: knowledge that one stream's kept episodes, the imitator's
  context, do not hold;
- finding after a miss for both, split by where the row's last hit lies: never, within the episodes the
  imitator's context holds when the next episode begins (context_len / episode length), or further back
  (the data read in its own kept episodes alone);
- the two paired per replicate (each imitator against the data it was trained on; the unit of replication
  is the training run), with a t-interval over replicates: keeping, and finding before any hit;
- with `--paths` (the default), the imitator's competence rollouts run again with the stage's keys (the
  same rollouts: their returns are checked against the saved ones), recording where it stood: distinct
  cells per episode, and the share of an episode's steps on the cell the previous episode stood on at that
  step, after a miss and after a hit, beside its data's and the random policy's.

The uniform random policy on the same tasks (`--random_episodes` each) is the reference for finding. A
known-positive row is the AD-epsilon generator itself continued from the cut, so it has no data lines.

  python -m experiments.search_and_keep --config=experiments/configs/darkroom.py --workdir=runs/darkroom_s0

For environments whose reward marks reaching a goal (DarkRoom and its family). Apart from the paired
lines, the figures are repeated measures pooled over replicates and tasks, not intervals.
"""
import os

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory whose P2 stage has finished.")
_CACHE = cli.compile_cache_flag()
_RANDOM = flags.DEFINE_integer("random_episodes", 400, "Random-policy episodes per training task.")
_PATHS = flags.DEFINE_bool("paths", True, "Also re-run each P2 imitator's competence rollouts (the same "
                           "keys: the same rollouts) recording where it stood, and compare its paths from one "
                           "episode to the next with its data's and the random policy's.")
_HELDOUT = flags.DEFINE_bool("heldout", False, "Instead, each P2 row's held-out rollouts (the P2 test's own tasks "
                             "and horizon, no data beside them): finding and keeping, and after a miss by where "
                             "the row's last hit lies.")
flags.mark_flags_as_required(["config", "workdir"])


def heldout_lines(z, context_episodes: int) -> list[str]:
  """Per P2 row with a held-out rollout in returns.npz `z`: finding and keeping on the P2 test's own tasks
  (`curves.search_and_keep`), and after a miss by where the row's last hit lies (`after_miss_by_recency`)."""
  from cl_limits.analysis import curves  # noqa: PLC0415
  out = []
  for key in (k for k in z.files if k.endswith("/episode_return")):
    r = z[key]
    s, rec = curves.search_and_keep(r), curves.after_miss_by_recency(r, max(1, context_episodes))
    out.append(f"{key.split('/')[0]} held out ({r.shape[0]} replicates x {r.shape[1]} tasks x {r.shape[2]} episodes): "
               f"after a hit {_fmt(s['after_hit'], 3)}, after a miss {_fmt(s['after_miss'], 3)}; after a miss, by "
               f"where its last hit lies (never / within the {context_episodes} episodes its context holds / "
               "further back): " + " / ".join(f"{_fmt(rec[k][0], 3)} of {rec[k][1]:,}"
                                              for k in ("never", "in_context", "further_back")))
  return out


def random_returns(env, tasks, episodes: int, seed: int) -> np.ndarray:
  """[tasks, episodes] returns of the uniform random policy (P3's zero, `rollout.random_rollout`), one rollout
  of consecutive episodes per task."""
  import jax  # noqa: PLC0415
  from cl_limits.rollouts import rollout as rollout_lib  # noqa: PLC0415
  from cl_limits.stages import common  # noqa: PLC0415
  horizon = episodes * common.episode_length(env)
  k = int(jax.tree.leaves(tasks)[0].shape[0])
  res = rollout_lib.random_rollout(env, horizon, tasks, jax.random.split(jax.random.key(seed), k)[None])
  return np.asarray(res.episode_return)[0, :, :episodes]


def _arm_data(config, workdir: str, arm_name: str, stores: dict):
  """(the resolved arm, the history store it is cut from: the teachers' or the AD-epsilon streams'); each
  store is read (and its chunks checked) once, into `stores`."""
  from cl_limits.histories import datasets  # noqa: PLC0415
  from cl_limits.stages import artifacts, layout  # noqa: PLC0415
  from cl_limits.stages.base import ConfigError  # noqa: PLC0415
  arm = datasets.resolve_arm(config.imitation.arms[arm_name])
  if arm["data"] not in stores:
    try:
      stores[arm["data"]] = (layout.load_histories(layout.path(workdir, "histories", "ad_eps"))[0]
                             if arm["data"] == "ad_eps" else artifacts.load_teacher_histories(config, workdir)[0])
    except ConfigError as e:     # e.g. a run made with --config.teachers_from read without that flag
      raise app.UsageError(f"--workdir={workdir}: {e}") from None
  return arm, stores[arm["data"]]


def data_returns(history, arm: dict, tasks: int):
  """[replicates x tasks x streams, kept episodes] returns of the episodes `arm` keeps of `history`, on
  the first `tasks` teacher tasks, NaN-padded; and whether each one's learner had reached the goal before
  it began, in any stream (`ceiling.kept_informed`)."""
  from cl_limits.analysis import ceiling, replicates  # noqa: PLC0415
  reps = [replicates.replicate(history, r, tasks) for r in range(int(np.asarray(history.action).shape[0]))]
  rows = [ceiling.kept_returns(h, arm) for h in reps]
  known = [ceiling.kept_informed(h, arm) for h in reps]
  width = max(x.shape[1] for x in rows)
  return (np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=np.nan) for x in rows]),
          np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1]))) for x in known]))


def data_paths(history, arm: dict, tasks: int, episodes: int, ep_len: int):
  """Positions [rows, episodes, ep_len, coordinates] and hits [rows, episodes] of the first `episodes`
  episodes `arm` keeps of every stream of `history` on the first `tasks` teacher tasks (rows: replicates x
  tasks x streams; fixed-length episodes)."""
  from cl_limits.analysis import replicates  # noqa: PLC0415
  from cl_limits.histories import datasets  # noqa: PLC0415
  pos, hit = [], []
  for r in range(int(np.asarray(history.action).shape[0])):
    h = replicates.replicate(history, r, tasks)
    done = np.asarray(h.terminated) | np.asarray(h.truncated)
    keep = datasets.arm_keep(done, np.asarray(h.episode), arm).reshape(-1, done.shape[-1])
    obs = np.asarray(h.obs).reshape(keep.shape + np.asarray(h.obs).shape[4:])
    rew = np.asarray(h.reward).reshape(keep.shape)
    for o, w, k in zip(obs, rew, keep):
      o, w = o[k].reshape(-1, ep_len, o.shape[-1]), w[k].reshape(-1, ep_len)
      pos.append(o[:episodes])
      hit.append(w[:episodes].sum(-1) > 0)
  n = min(len(x) for x in hit)
  return np.stack([x[:n] for x in pos]), np.stack([x[:n] for x in hit])


def imitator_paths(config, imitators, arm_name: str, tasks, episodes: int, ep_len: int):
  """The competence rollouts of P2 row `arm_name` again, recording: positions [R, K, episodes, ep_len,
  coordinates] and episode returns [R, K, episodes]. The P2 stage's keys, tasks, horizon and actions, so
  the returns equal its saved ones."""
  import jax  # noqa: PLC0415
  from cl_limits.imitation import learner as learner_lib  # noqa: PLC0415
  from cl_limits.rollouts import rollout as rollout_lib  # noqa: PLC0415
  from cl_limits.stages import artifacts, common, p2  # noqa: PLC0415
  model, params, arm_list, num_seeds = imitators
  n_k = int(jax.tree.leaves(tasks)[0].shape[0])
  keys = p2.row_keys(config, arm_list.index(arm_name), p2.COMPETENCE_KEYS, num_seeds, n_k)
  one = rollout_lib.make_rollout(model, common.env_of(config), episodes * ep_len, episodes, record=True,
                                 **artifacts.protocol(config))
  res = jax.device_get(jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)), in_axes=(0, None, 0)))(
      learner_lib.arm_params(params, arm_list, arm_name, num_seeds), tasks, keys))
  obs = np.asarray(res.transitions.obs)
  return (obs.reshape(obs.shape[:2] + (episodes, ep_len) + obs.shape[3:]),
          np.asarray(res.episode_return)[..., :episodes])


def random_paths(env, tasks, episodes: int, ep_len: int, seed: int):
  """Positions [K, episodes, ep_len, coordinates] and hits [K, episodes] of the uniform random policy, one
  run of consecutive episodes per task (`rollout.random_rollout`, recording)."""
  import jax  # noqa: PLC0415
  from cl_limits.rollouts import rollout as rollout_lib  # noqa: PLC0415
  n_k = int(jax.tree.leaves(tasks)[0].shape[0])
  res = rollout_lib.random_rollout(env, episodes * ep_len, tasks, jax.random.split(jax.random.key(seed), n_k)[None],
                                   record=True)
  obs = np.asarray(res.transitions.obs)[0]
  return (obs.reshape((n_k, episodes, ep_len) + obs.shape[2:]),
          np.asarray(res.episode_return)[0, :, :episodes] > 0)


def _paired_text(values) -> str:
  """Per-replicate values and their t-interval, or why there is none."""
  from cl_limits.analysis import stats  # noqa: PLC0415
  if values is None:
    return "n/a (a replicate with no such episode pair)"
  iv = stats.replicate_interval(np.asarray(values))
  return (f"{', '.join(f'{v:+.2f}' for v in values)} -> {iv['estimate']:+.2f} [{iv['low']:+.2f}, "
          f"{iv['high']:+.2f}]")


def _paths_text(p: dict) -> str:
  return f"{p['cells']:.1f}; {_fmt(p['repeat_after_miss'])} / {_fmt(p['repeat_after_hit'])}"


def _fmt(x, digits: int = 2) -> str:
  return "n/a" if x is None else f"{x:.{digits}f}"


def main(_):
  cli.open_compile_cache(_CACHE)
  from cl_limits.analysis import curves  # noqa: PLC0415
  from cl_limits.stages import artifacts, common, layout  # noqa: PLC0415
  config, workdir = _CONFIG.value, _WORKDIR.value
  imitators, stores = None, {}
  path = layout.path(workdir, "p2", "returns.npz")
  if not os.path.exists(path):
    raise app.UsageError(f"--workdir={workdir}: no finished P2 stage ({path} is missing)")
  z = np.load(path)
  rows = [k.split("/")[0] for k in z.files if k.endswith("/competence_return")]
  if not rows:
    raise app.UsageError(f"--workdir={workdir}: its P2 stage saved no competence rollouts")
  env = common.env_of(config)
  ep_len = common.episode_length(env)
  if not ep_len:
    raise app.UsageError(f"env.name={config.env.name}: needs episodes of one fixed length")
  if _HELDOUT.value:
    print("\n".join(heldout_lines(z, int(config.imitation.model.context_len) // ep_len)))
    return
  tasks, ids = common.teacher_tasks(config, env)
  rand = curves.search_and_keep(random_returns(env, tasks, int(_RANDOM.value), int(config.seed)))
  print(f"uniform random policy, {int(_RANDOM.value)} episodes on each of {len(ids)} training tasks: goal "
        f"reached in {rand['found'].mean():.2f} of episodes, mean return then {_fmt(rand['return_if_found'])}")
  for row in rows:
    r = z[f"{row}/competence_return"]
    s = curves.search_and_keep(r)
    own = curves.after_miss_by_knowledge(r, curves.reached_before(r))
    found = ", ".join(f"{x:.2f}" for x in s["found"])
    print(f"{row} ({r.shape[0]} replicates x {r.shape[1]} tasks x {r.shape[2]} episodes): goal reached by "
          f"episode {found}; after a hit {_fmt(s['after_hit'])}, after a miss {_fmt(s['after_miss'])} "
          f"(random: {rand['found'].mean():.2f}); mean return when reached {_fmt(s['return_if_found'])}")
    print(f"  after a miss, by what it knew from its own earlier episodes: {_fmt(own['uninformed'][0], 3)} of "
          f"{own['uninformed'][1]:,} before it had reached the goal, {_fmt(own['informed'][0], 3)} of "
          f"{own['informed'][1]:,} after")
    if row.endswith("_known_positive"):     # the generator continued from the cut: not in the data's time
      continue
    arm, history = _arm_data(config, workdir, row, stores)
    m = max(1, r.shape[1] // common.competence_task_count(config, len(ids)))    # [R, m x K, E]: the stage's
    n_k, n_e = r.shape[1] // m, r.shape[2]
    d_r, known = (x[:, :n_e] for x in data_returns(history, arm, n_k))
    d = curves.search_and_keep(d_r)
    split = curves.after_miss_by_knowledge(d_r, known)
    found = ", ".join(f"{x:.2f}" for x in d["found"])
    print(f"  its data ({d_r.shape[0]} streams' first {d_r.shape[1]} kept episodes on the same tasks, in the imitator's order): "
          f"goal reached by kept episode {found}; after a hit {_fmt(d['after_hit'])}, after a miss "
          f"{_fmt(d['after_miss'])}; mean return when reached {_fmt(d['return_if_found'])}")
    print(f"  its data after a miss, by what its learner knew outside this stream's kept episodes: "
          f"{_fmt(split['uninformed'][0], 3)} of {split['uninformed'][1]:,} where it had not yet reached the goal "
          f"in any stream, {_fmt(split['informed'][0], 3)} of {split['informed'][1]:,} where it had")
    n_ctx = int(config.imitation.model.context_len) // ep_len
    if n_ctx >= 1:
      rec = lambda x: curves.after_miss_by_recency(x, n_ctx)  # noqa: E731
      im_rec, d_rec = rec(r), rec(d_r)
      print(f"  after a miss, by where its row's last hit lies (never / within the {n_ctx} episodes a context of "
            f"{int(config.imitation.model.context_len)} steps holds / further back): imitator "
            + " / ".join(f"{_fmt(im_rec[k][0], 3)} of {im_rec[k][1]:,}" for k in ("never", "in_context", "further_back"))
            + " | its data (its own kept episodes) "
            + " / ".join(f"{_fmt(d_rec[k][0], 3)} of {d_rec[k][1]:,}" for k in ("never", "in_context", "further_back")))
    paired = curves.paired_with_data(r, d_r.reshape((r.shape[0], -1) + d_r.shape[1:]),
                                     known.reshape((r.shape[0], -1) + known.shape[1:]))
    print(f"  imitator - its data, per replicate (independent runs) and over them: after a hit "
          f"{_paired_text(paired['after_hit'])}; after a miss before any hit {_paired_text(paired['uninformed'])}")
    if not _PATHS.value:
      continue
    if imitators is None:
      imitators = artifacts.final_imitators(config, workdir)
    pos, again = imitator_paths(config, imitators, row, common.tile(common.first(tasks, n_k), m), n_e, ep_len)
    if not np.array_equal(np.nan_to_num(again), np.nan_to_num(r)):
      raise app.UsageError(f"{row}: re-running its competence rollouts did not give the saved returns: is "
                           "--config the run's own config (seed, evaluation.temperature, ...)?")
    imit = curves.path_stats(pos, again > 0)
    dat = curves.path_stats(*data_paths(history, arm, n_k, n_e, ep_len))
    rnd = curves.path_stats(*random_paths(env, common.first(tasks, n_k), n_e, ep_len, int(config.seed) + 7))
    print(f"  paths (distinct cells per episode; share of steps on the cell the previous episode stood on at "
          f"that step, after a miss / after a hit): imitator {_paths_text(imit)} | its data {_paths_text(dat)} "
          f"| random {_paths_text(rnd)}")


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  app.run(main)
