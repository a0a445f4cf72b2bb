r"""Returns of scripted ball-tracking policies in gymnax MinAtar Breakout: the ladder a scripted in-context
learner for a Breakout power control could climb (BUILD_NOTES, "What a Breakout power control that can
refute would need").

  python -m experiments.breakout_policies [--steps 3000] [--keys 16]

Two families, each deterministic given the game's state (the game's full action set: 0 no-op, 1 left,
3 right):
  offset d: move the paddle toward column ball_x + d (clipped to the board), every step;
  from row h: move it toward ball_x only once the ball is at row h or lower (rows 0 top .. 9, the paddle's
    row), else stay: the later it starts, the more balls it misses.
Prints, per policy, the mean return and length of the episodes finished in `steps` steps from each of
`keys` resets (gymnax cuts episodes at 1,000 steps), and the uniform random policy's beside them.
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits.envs.minatar import SharedMinAtar, ladder_action, track


def offset(d: int):
  return lambda state, key: track(state, jnp.clip(state.ball_x + d, 0, 9))


def from_row(h: int):
  return lambda state, key: ladder_action(h, state)      # the ladder's rung h (`imitation.ad_eps` searcher)


def uniform(state, key):
  return jax.random.randint(key, (), 0, 6)


def episodes(env, policy, key, steps: int, max_episodes: int):
  """(returns, lengths) [max_episodes] of the episodes finished in `steps` steps (NaN past the last)."""
  params = env.default_params
  _, state = env.reset(key, params)

  def step(c, k):
    state, ret, ep, rets, lens, start, t = c
    k_act, k_env = jax.random.split(k)
    _, state, r, term, trunc, _ = env.step(k_env, state, policy(state, k_act), params)
    done, ret = term | trunc, ret + r
    rets = jnp.where(done, rets.at[ep].set(ret), rets)
    lens = jnp.where(done, lens.at[ep].set(t + 1 - start), lens)
    return (state, jnp.where(done, 0.0, ret), ep + done, rets, lens, jnp.where(done, t + 1, start), t + 1), None

  nan = jnp.full(max_episodes, jnp.nan)
  c, _ = jax.lax.scan(step, (state, 0.0, 0, nan, nan, 0, 0), jax.random.split(key, steps))
  return c[3], c[4]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=3000)
  parser.add_argument("--keys", type=int, default=16)
  args = parser.parse_args()
  env = SharedMinAtar("Breakout")
  keys = jax.random.split(jax.random.PRNGKey(0), args.keys)
  policies = [(f"offset d={d:+d}", offset(d)) for d in range(-3, 4)]
  policies += [(f"from row h={h}", from_row(h)) for h in range(10)] + [("uniform random", uniform)]
  print(f"# MinAtar-Breakout (gymnax), {args.steps} steps from each of {args.keys} resets")
  for name, policy in policies:
    run = jax.jit(jax.vmap(lambda k, p=policy: episodes(env, p, k, args.steps, args.steps)))
    rets, lens = (np.asarray(x) for x in run(keys))
    done = np.isfinite(rets)
    print(f"{name:16s} return {np.nanmean(rets):6.2f} (episodes' sd {np.nanstd(rets):5.2f})  length "
          f"{np.nanmean(lens):6.0f}  episodes per reset {done.sum(1).mean():6.1f}")


if __name__ == "__main__":
  main()
