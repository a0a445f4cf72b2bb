r"""Does a P2 imitator fail its competence gate by not finding the goal, or by not keeping it? On a finished
run's P2 stage (its saved competence rollouts: every replicate x training task x episode), for each P2 row:
the share of episodes with any reward (the goal reached) by episode, the chance of reaching it in the next
episode after an episode that did and after one that did not, and the mean return of the episodes that
did; beside it the same for the uniform random policy on the same tasks (`--random_episodes` each). An
imitator that learned to search reaches the goal after a miss more often than random does; one that
learned to keep it returns to it after a hit.

  python -m experiments.search_and_keep --config=experiments/configs/darkroom.py --workdir=runs/darkroom_s0

For environments whose reward marks reaching a goal (DarkRoom and its family); the figures are repeated
measures pooled over replicates and tasks, not intervals.
"""
import os

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory whose P2 stage has finished.")
_RANDOM = flags.DEFINE_integer("random_episodes", 400, "Random-policy episodes per training task.")
flags.mark_flags_as_required(["config", "workdir"])


def search_and_keep(returns) -> dict:
  """returns [..., episodes] of consecutive episodes (one rollout per leading index): 'found' (share of
  episodes with return > 0, per episode), 'after_hit' / 'after_miss' (share of episodes with return > 0
  among those whose previous episode had / had not; None where there is none), 'return_if_found'."""
  r = np.asarray(returns, float)
  if r.ndim < 1 or r.shape[-1] < 2:
    raise ValueError(f"returns: need at least 2 consecutive episodes on the last axis (got shape {r.shape})")
  hit = r > 0
  prev, nxt = hit[..., :-1], hit[..., 1:]
  rate = lambda m: float(nxt[m].mean()) if m.any() else None  # noqa: E731
  return {"found": hit.reshape(-1, r.shape[-1]).mean(0), "after_hit": rate(prev), "after_miss": rate(~prev),
          "return_if_found": float(r[hit].mean()) if hit.any() else None}


def random_returns(env, tasks, episodes: int, seed: int = 0) -> np.ndarray:
  """[tasks, episodes] returns of the uniform random policy, each episode from a reset."""
  from cl_limits.stages import common  # noqa: PLC0415
  n_act = env.action_space(env.default_params).n
  ep_len = common.episode_length(env)

  def episode(key, p):
    k0, key = jax.random.split(key)
    _, st = env.reset(k0, p)

    def step(c, _):
      st, key, ret = c
      key, ka, ks = jax.random.split(key, 3)
      out = env.step(ks, st, jax.random.randint(ka, (), 0, n_act), p)
      return (out[1], key, ret + out[2]), None
    (_, _, ret), _ = jax.lax.scan(step, (st, key, 0.0), None, length=ep_len)
    return ret
  k = len(np.asarray(jax.tree.leaves(tasks)[0]))
  keys = jax.random.split(jax.random.key(seed), k * episodes).reshape(k, episodes)
  return np.asarray(jax.jit(jax.vmap(jax.vmap(episode, in_axes=(0, None))))(keys, tasks))


def _fmt(x) -> str:
  return "n/a" if x is None else f"{x:.2f}"


def main(_):
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
  rand = search_and_keep(random_returns(env, tasks, int(_RANDOM.value), int(config.seed)))
  print(f"uniform random policy, {int(_RANDOM.value)} episodes on each of {len(ids)} training tasks: goal reached in {rand['found'].mean():.2f} of episodes, mean return then "
        f"{_fmt(rand['return_if_found'])}")
  for row in rows:
    r = z[f"{row}/competence_return"]
    s = search_and_keep(r)
    found = ", ".join(f"{x:.2f}" for x in s["found"])
    print(f"{row} ({r.shape[0]} replicates x {r.shape[1]} tasks x {r.shape[2]} episodes): goal reached by "
          f"episode {found}; after a hit {_fmt(s['after_hit'])}, after a miss {_fmt(s['after_miss'])} "
          f"(random: {rand['found'].mean():.2f}); mean return when reached {_fmt(s['return_if_found'])}")


if __name__ == "__main__":
  app.run(main)
