r"""Does a P2 imitator fail its competence gate by not finding the goal, or by not keeping it? On a finished
run's P2 stage (its saved competence rollouts: every replicate x training task x episode), for each P2 row:
the share of episodes with any reward (the goal reached) by episode, the chance of reaching it in the next
episode after an episode that did and after one that did not, and the mean return of the episodes that
did; beside it the same for the uniform random policy on the same tasks (`--random_episodes` each), and
for the row's own data: the episodes its arm keeps of every stream on those tasks, in the order the
imitator saw them (kept episode i stands where the rollout's episode i stands, so the two are compared in
the imitator's own time). An imitator that learned to search reaches the goal after a miss more often than
random does; one that learned to keep it returns to it after a hit; one that reproduces its data does
both as often as its data does.

  python -m experiments.search_and_keep --config=experiments/configs/darkroom.py --workdir=runs/darkroom_s0

For environments whose reward marks reaching a goal (DarkRoom and its family); the figures are repeated
measures pooled over replicates and tasks, not intervals.
"""
import os

import numpy as np
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory whose P2 stage has finished.")
_RANDOM = flags.DEFINE_integer("random_episodes", 400, "Random-policy episodes per training task.")
flags.mark_flags_as_required(["config", "workdir"])


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


def data_returns(config, workdir: str, arm_name: str, tasks: int) -> np.ndarray:
  """[replicates x tasks x streams, kept episodes] returns of the episodes arm `arm_name` keeps, on the
  first `tasks` teacher tasks, NaN-padded."""
  from cl_limits.analysis import ceiling, replicates  # noqa: PLC0415
  from cl_limits.histories import datasets  # noqa: PLC0415
  from cl_limits.stages import artifacts, layout  # noqa: PLC0415
  arm = datasets.resolve_arm(config.imitation.arms[arm_name])
  history = (layout.load_histories(layout.path(workdir, "histories", "ad_eps"))[0] if arm["data"] == "ad_eps"
             else artifacts.load_teacher_histories(config, workdir)[0])
  rows = [ceiling.kept_returns(replicates.replicate(history, r, tasks), arm)
          for r in range(int(np.asarray(history.action).shape[0]))]
  width = max(x.shape[1] for x in rows)
  return np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=np.nan) for x in rows])


def _fmt(x) -> str:
  return "n/a" if x is None else f"{x:.2f}"


def main(_):
  from cl_limits.analysis import curves  # noqa: PLC0415
  from cl_limits.stages import common, layout  # noqa: PLC0415
  config, workdir = _CONFIG.value, _WORKDIR.value
  path = layout.path(workdir, "p2", "returns.npz")
  if not os.path.exists(path):
    raise app.UsageError(f"--workdir={workdir}: no finished P2 stage ({path} is missing)")
  z = np.load(path)
  rows = [k.split("/")[0] for k in z.files if k.endswith("/competence_return")]
  if not rows:
    raise app.UsageError(f"--workdir={workdir}: its P2 stage saved no competence rollouts")
  env = common.env_of(config)
  if not common.episode_length(env):
    raise app.UsageError(f"env.name={config.env.name}: needs episodes of one fixed length")
  tasks, ids = common.teacher_tasks(config, env)
  rand = curves.search_and_keep(random_returns(env, tasks, int(_RANDOM.value), int(config.seed)))
  print(f"uniform random policy, {int(_RANDOM.value)} episodes on each of {len(ids)} training tasks: goal "
        f"reached in {rand['found'].mean():.2f} of episodes, mean return then {_fmt(rand['return_if_found'])}")
  for row in rows:
    r = z[f"{row}/competence_return"]
    s = curves.search_and_keep(r)
    found = ", ".join(f"{x:.2f}" for x in s["found"])
    print(f"{row} ({r.shape[0]} replicates x {r.shape[1]} tasks x {r.shape[2]} episodes): goal reached by "
          f"episode {found}; after a hit {_fmt(s['after_hit'])}, after a miss {_fmt(s['after_miss'])} "
          f"(random: {rand['found'].mean():.2f}); mean return when reached {_fmt(s['return_if_found'])}")
    d_r = data_returns(config, workdir, row.removesuffix("_known_positive"), r.shape[1])[:, :r.shape[2]]
    d = curves.search_and_keep(d_r)
    found = ", ".join(f"{x:.2f}" for x in d["found"])
    print(f"  its data ({d_r.shape[0]} streams' first {d_r.shape[1]} kept episodes on the same tasks, in the imitator's order): "
          f"goal reached by kept episode {found}; after a hit {_fmt(d['after_hit'])}, after a miss "
          f"{_fmt(d['after_miss'])}; mean return when reached {_fmt(d['return_if_found'])}")


if __name__ == "__main__":
  app.run(main)
