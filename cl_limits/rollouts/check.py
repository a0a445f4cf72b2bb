"""The held-out check during imitation: short frozen rollouts on a few held-out tasks, early vs late
return, with the evaluation protocol's actions. Augmented arms play augmented versions of the tasks (a
fresh projection and permutation per task)."""
from __future__ import annotations

import jax
import numpy as np

from cl_limits.rollouts import chunked
from cl_limits.rollouts import rollout as rollout_lib


def make_check(model, env, tasks, episodes: int, ep_len: int, augment_per_model, aug_key, *, greedy: bool,
               temperature: float, epsilon: float = 0.0, epsilon_decay: int = 0):
  """`run(params [M, ...], key) -> (early [M], late [M])`: mean return of the first and last
  min(3, episodes) episodes over the tasks [K], per model; augment_per_model [M] bool. The rollouts run in
  `episodes` chunks of `ep_len` steps and stop after the first by whose end every one has finished
  `episodes` episodes (`chunked.run_chunked`)."""
  from cl_limits.envs import wrappers  # noqa: PLC0415
  horizon = episodes * ep_len
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  flags = np.asarray(augment_per_model, bool)
  groups = [(np.flatnonzero(~flags), env, tasks)]
  if flags.any():
    aug_env = wrappers.augmented(env)
    groups.append((np.flatnonzero(flags), aug_env, wrappers.sample_augmented(aug_env, aug_key, tasks)))
  groups = [(idx, chunked.make_chunked_rollout(model, e, horizon, rollout_lib.episodes_for(e, horizon), chunks=episodes,
                                               greedy=greedy, temperature=temperature, epsilon=epsilon,
                                               epsilon_decay=epsilon_decay), t)
            for idx, e, t in groups if len(idx)]
  k = min(3, episodes)

  def run(params, key):
    m = int(jax.tree.leaves(params)[0].shape[0])
    keys = jax.random.split(key, m * num_tasks).reshape(m, num_tasks)
    early, late = np.full(m, np.nan), np.full(m, np.nan)
    for idx, fn, t in groups:
      res = jax.device_get(chunked.run_chunked(fn, jax.tree.map(lambda x: x[idx], params), t, keys[idx],
                                               until_episodes=episodes))
      r = np.asarray(res.episode_return)[..., :episodes]
      with np.errstate(all="ignore"):
        early[idx], late[idx] = np.nanmean(r[..., :k], axis=(1, 2)), np.nanmean(r[..., -k:], axis=(1, 2))
    return early, late
  return run
