"""Frozen-weight in-context rollouts: the imitator acts from an empty context, its own transitions fill it.

One rollout is a single `lax.scan` over environment steps. The context is carried across episodes in a
ring-buffer KV cache of `context_len` steps (`TransitionTransformer.decode`), so memory and per-step cost
are the same at step 10 and at step 10 million. The step's token is (obs_t, action_{t-1}, reward_{t-1},
done_{t-1}); at the very first step there is no previous transition: action = "none" (index
num_actions), reward 0, done True, exactly as at the start of a history in training.

`make_rollout(...)` returns `rollout(params, env_params, key) -> RolloutResult` for one model and one task;
vmap it over tasks (env_params) and model seeds (params). `mode="naive"` recomputes a full forward pass
over the last `context_len` transitions at every step instead of using the cache: the reference the
benchmark compares against, and (with one layer) the same function as the cached rollout.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits.histories.history import History
from cl_limits.models.transformer import Tokens, TransitionTransformer


class RolloutResult(NamedTuple):
  """Per-episode results of one rollout, padded to `max_episodes`.

  episode_return [max_episodes] float32 (nan where the episode did not finish within the horizon),
  episode_end [max_episodes] int32: the environment step (1-based) at which the episode ended (-1 if not),
  num_episodes: episodes finished (may exceed max_episodes; the extra ones are counted, not stored).
  transitions: with record=True, what the imitator saw and did at every step: a History [horizon] (obs,
    action, reward, terminated, truncated, episode, update = step index, greedy = its own choice,
    `action_fn`, epsilon = its exploration rate, `epsilon_at`); else None.
  next_obs: with record=True, the observation each step led to [horizon, ...] (at an episode's end its
    last one, not the reset's: what a learner's replay stores); else None.
  """
  episode_return: jax.Array
  episode_end: jax.Array
  num_episodes: jax.Array
  transitions: History | None = None
  next_obs: jax.Array | None = None


def first_tokens(obs, num_actions):
  return Tokens(obs=obs, prev_action=jnp.int32(num_actions), prev_reward=jnp.float32(0.0),
                prev_done=jnp.bool_(True), prev_explore=jnp.bool_(False))


def action_protocol(greedy: bool, temperature: float = 1.0, epsilon: float = 0.0, epsilon_decay: int = 0) -> dict:
  """The rollout keyword arguments {greedy, temperature, epsilon, epsilon_decay} of an action protocol: the
  actor's own choice is its argmax when `greedy`, else a sample from softmax(logits / temperature) (1.0: the
  policy as trained); with epsilon > 0 it then acts epsilon-greedily around that choice (a uniform action
  with probability epsilon), as the DQN it imitates does around its argmax Q. epsilon_decay > 0: epsilon
  falls linearly from 1 at the rollout's first step to `epsilon` at step epsilon_decay and stays there, as a
  DQN's schedule does (`epsilon_at`)."""
  temperature, epsilon = float(temperature), float(epsilon)
  if not temperature > 0:
    raise ValueError(f"temperature: must be > 0 (got {temperature}); use greedy=True for argmax actions")
  if not 0.0 <= epsilon <= 1.0:
    raise ValueError(f"epsilon: must be in [0, 1] (got {epsilon})")
  if int(epsilon_decay) != epsilon_decay or epsilon_decay < 0:
    raise ValueError(f"epsilon_decay: must be a whole number of steps >= 0 (got {epsilon_decay})")
  return dict(greedy=bool(greedy), temperature=temperature, epsilon=epsilon, epsilon_decay=int(epsilon_decay))


def epsilon_at(t, epsilon: float, epsilon_decay: int):
  """The exploration rate at rollout step t (0-based): `epsilon`, or with epsilon_decay > 0 a linear fall
  from 1 at t = 0 to `epsilon` at t = epsilon_decay."""
  if epsilon_decay <= 0:
    return jnp.float32(epsilon)
  frac = jnp.minimum(jnp.asarray(t, jnp.float32) / float(epsilon_decay), 1.0)
  return jnp.float32(1.0) - frac * jnp.float32(1.0 - epsilon)


def action_fn(greedy: bool, temperature: float = 1.0, epsilon: float = 0.0, epsilon_decay: int = 0):
  """`act(logits, key, t) -> (action, choice)`, int32 both; t: the rollout step (read only by a decaying
  epsilon). choice: the actor's own greedy choice, the one its marks measure exploration against
  (`Tokens.prev_explore`: action != choice). With epsilon = 0 (and no decay) the action is the argmax or a
  sample at `temperature`, and the choice is the argmax; with epsilon > 0 or a decay the choice is that
  argmax or sample, and the action is a uniform one with probability `epsilon_at(t)`, else the choice."""
  def pick(logits, key):
    if greedy:
      return jnp.argmax(logits).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature).astype(jnp.int32)

  def act(logits, key, t):
    if not explores(epsilon, epsilon_decay):
      return pick(logits, key), jnp.argmax(logits).astype(jnp.int32)
    k_pick, k_explore, k_uniform = jax.random.split(key, 3)
    choice = pick(logits, k_pick)
    uniform = jax.random.randint(k_uniform, (), 0, logits.shape[-1]).astype(jnp.int32)
    eps = epsilon_at(t, epsilon, epsilon_decay)
    return jnp.where(jax.random.bernoulli(k_explore, eps), uniform, choice), choice
  return act


def explores(epsilon: float, epsilon_decay: int = 0) -> bool:
  """Whether a protocol acts epsilon-greedily around its choice (a constant or a decaying epsilon)."""
  return float(epsilon) > 0.0 or int(epsilon_decay) > 0


def record_episode_end(t, done, ep_ret, n_ep, rets, ends, max_episodes: int):
  """Per-step episode bookkeeping shared by every rollout scan. ep_ret already includes this step's
  reward; when the episode ends at step t (0-based) its return and end step (t + 1) go to slot n_ep
  (while n_ep < max_episodes). Returns (running return, reset on done; episodes finished; rets; ends)."""
  slot = jnp.minimum(n_ep, max_episodes - 1)
  write = done & (n_ep < max_episodes)
  # One element is written (its old value when nothing ends): O(1) per step whatever the buffer's size.
  rets = rets.at[slot].set(jnp.where(write, ep_ret, rets[slot]))
  ends = ends.at[slot].set(jnp.where(write, t + 1, ends[slot]))
  return jnp.where(done, 0.0, ep_ret), n_ep + done, rets, ends


class Prompt(NamedTuple):
  """Recorded transitions that fill the context before the rollout acts: obs [P, ...], action [P],
  reward [P], done [P] (terminated or truncated), explore [P] (the action was not the behaviour policy's
  greedy one; None: not recorded, read as False), in time order, ending at an episode's end."""
  obs: jax.Array
  action: jax.Array
  reward: jax.Array
  done: jax.Array
  explore: jax.Array | None = None


def prompt_tokens(prompt: Prompt, num_actions: int) -> Tokens:
  """The model's tokens for a prompt: step t carries obs_t and transition t - 1 (the first none yet)."""
  shift = lambda x, first: jnp.concatenate([jnp.asarray(first, x.dtype)[None], x[:-1]])
  return Tokens(obs=prompt.obs, prev_action=shift(prompt.action.astype(jnp.int32), num_actions),
                prev_reward=shift(prompt.reward.astype(jnp.float32), 0.0),
                prev_done=shift(prompt.done.astype(bool), True),
                prev_explore=shift(_explore(prompt), False))


def _explore(prompt: Prompt):
  return jnp.zeros(prompt.done.shape, bool) if prompt.explore is None else prompt.explore.astype(bool)


def make_parts(model: TransitionTransformer, env, horizon: int, max_episodes: int, greedy: bool, mode: str,
                temperature: float, record: bool, epsilon: float = 0.0, epsilon_decay: int = 0):
  """The rollout as (init, advance, finish): `init(params, env_params, key, prompt)` -> carry;
  `advance(params, env_params, key, carry, t0, length, masked)` -> (carry, rec) runs steps t0 .. t0 + length
  - 1 (steps at or past `horizon` are skipped when `masked`); `finish(carry)` -> RolloutResult. Step t's
  key is `split(split(key)[1], horizon)[t]` however the steps are chunked, so any chunking of the same
  horizon gives the same rollout."""
  if mode not in ("cached", "naive"):
    raise ValueError(f"mode must be 'cached' or 'naive', got {mode!r}")
  if horizon < 1 or max_episodes < 1:
    raise ValueError(f"horizon and max_episodes must be >= 1 (got {horizon}, {max_episodes})")
  num_actions, ctx = model.num_actions, model.context_len
  act = action_fn(greedy, temperature, epsilon, epsilon_decay)

  def init(params, env_params, key, prompt=None):
    k_reset, _ = jax.random.split(key)
    obs, env_state = env.reset(k_reset, env_params)
    tok = first_tokens(obs, num_actions)
    if prompt is not None:
      memory = jax.lax.scan(lambda m, t: (model.apply(params, t, m, method=TransitionTransformer.decode)[1],
                                          None), model.init_cache(), prompt_tokens(prompt, num_actions))[0]
      tok = Tokens(obs=obs, prev_action=prompt.action[-1].astype(jnp.int32),
                   prev_reward=prompt.reward[-1].astype(jnp.float32), prev_done=jnp.bool_(True),
                   prev_explore=_explore(prompt)[-1])
    elif mode == "cached":
      memory = model.init_cache()
    else:   # the last ctx tokens in time order, newest at the end, and which are filled
      memory = (jax.tree.map(lambda x: jnp.zeros((ctx,) + jnp.shape(x), jnp.asarray(x).dtype), tok),
                jnp.zeros((ctx,), bool))
    return (memory, tok, env_state, jnp.float32(0.0), jnp.int32(0),
            jnp.full((max_episodes,), jnp.nan, jnp.float32), jnp.full((max_episodes,), -1, jnp.int32))

  def advance(params, env_params, key, carry, t0, length: int, masked: bool):
    def policy(memory, tok):
      if mode == "cached":
        return model.apply(params, tok, memory, method=TransitionTransformer.decode)
      window, valid = memory
      window = jax.tree.map(lambda w, x: jnp.concatenate([w[1:], jnp.asarray(x, w.dtype)[None]]), window, tok)
      valid = jnp.concatenate([valid[1:], jnp.ones((1,), bool)])
      return model.apply(params, window, valid)[-1], (window, valid)

    def step(carry, inp):
      memory, tok, env_state, ep_ret, n_ep, rets, ends = carry
      t, k = inp
      k_act, k_env = jax.random.split(k)
      logits, memory = policy(memory, tok)
      action, choice = act(logits, k_act, t)
      obs, env_state, reward, term, trunc, info = env.step(k_env, env_state, action, env_params)
      done = jnp.logical_or(term, trunc)
      ep_ret_next, n_next, rets, ends = record_episode_end(t, done, ep_ret + reward, n_ep, rets, ends,
                                                           max_episodes)
      rec = None
      if record:
        rec = (History(obs=tok.obs, action=action, reward=reward.astype(jnp.float32), terminated=term,
                       truncated=trunc, episode=n_ep, update=t, greedy=choice,
                       epsilon=epsilon_at(t, epsilon, epsilon_decay)), info["final_observation"])
      tok = Tokens(obs=obs, prev_action=action, prev_reward=reward.astype(jnp.float32), prev_done=done,
                   prev_explore=action != choice)
      return (memory, tok, env_state, ep_ret_next, n_next, rets, ends), rec

    all_keys = jax.random.split(jax.random.split(key)[1], horizon)
    ts = t0 + jnp.arange(length, dtype=jnp.int32)
    if not masked:
      return jax.lax.scan(step, carry, (ts, jax.lax.dynamic_slice_in_dim(all_keys, t0, length)))
    # The last chunk of a horizon that the chunk length does not divide: steps past the horizon leave the
    # carry as it is (t0 is the same for every vmapped run, so this stays a real branch under vmap).
    rec_shape = jax.eval_shape(step, carry, (ts[0], all_keys[0]))[1]

    def maybe(c, inp):
      return jax.lax.cond(inp[0] < horizon, step,
                          lambda c, _: (c, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), rec_shape)), c, inp)
    return jax.lax.scan(maybe, carry, (ts, all_keys[jnp.minimum(ts, horizon - 1)]))

  def finish(carry):
    *_, n_ep, rets, ends = carry
    return RolloutResult(episode_return=rets, episode_end=ends, num_episodes=n_ep)

  return init, advance, finish


def make_rollout(model: TransitionTransformer, env, horizon: int, max_episodes: int,
                 greedy: bool = True, mode: str = "cached", temperature: float = 1.0,
                 record: bool = False, prompted: bool = False, epsilon: float = 0.0, epsilon_decay: int = 0):
  """`rollout(params, env_params, key) -> RolloutResult` over `horizon` environment steps, one scan.

  prompted: `rollout(params, env_params, key, prompt)` instead: the recorded `Prompt` first fills the
  context (cached mode), as if the imitator had just lived through it, and the rollout's first step
  carries the prompt's last transition (an episode end) like any step after an episode in training."""
  if prompted and mode != "cached":
    raise ValueError("prompted rollouts use the KV cache (mode='cached')")
  init, advance, finish = make_parts(model, env, horizon, max_episodes, greedy, mode, temperature, record, epsilon,
                                     epsilon_decay)

  def rollout(params, env_params, key, prompt=None):
    carry, rec = advance(params, env_params, key, init(params, env_params, key, prompt), 0, horizon, False)
    transitions, next_obs = rec if record else (None, None)
    return finish(carry)._replace(transitions=transitions, next_obs=next_obs)

  if prompted:
    return lambda params, env_params, key, prompt: rollout(params, env_params, key, prompt)
  return lambda params, env_params, key: rollout(params, env_params, key)


def make_batched_rollout(model, env, horizon: int, max_episodes: int, greedy: bool = True,
                         mode: str = "cached", temperature: float = 1.0, prompted: bool = False,
                         epsilon: float = 0.0, epsilon_decay: int = 0, record: bool = False):
  """`fn(params [M, ...], env_params [K], keys [M, K]) -> RolloutResult [M, K, ...]`, jitted.
  prompted: `fn(params, env_params, keys, prompts [M, K, P, ...])`, each run filling its context first.
  record: the result also holds every step's transition (`RolloutResult.transitions`, `next_obs`)."""
  one = make_rollout(model, env, horizon, max_episodes, greedy=greedy, mode=mode, temperature=temperature,
                     prompted=prompted, epsilon=epsilon, epsilon_decay=epsilon_decay, record=record)
  if prompted:
    per_task = jax.vmap(one, in_axes=(None, 0, 0, 0))
    return jax.jit(jax.vmap(per_task, in_axes=(0, None, 0, 0)))
  per_task = jax.vmap(one, in_axes=(None, 0, 0))
  return jax.jit(jax.vmap(per_task, in_axes=(0, None, 0)))


def episodes_for(env, horizon: int) -> int:
  """Buffer size for per-episode results: exact for fixed-length episodes (`env.fixed_episode_len`),
  else one slot per 2 steps (no episode of the project's envs is shorter)."""
  fixed = getattr(env, "fixed_episode_len", None)
  return int(np.ceil(horizon / fixed)) if fixed else max(1, int(np.ceil(horizon / 2)))


def make_random_rollout(env, horizon: int, max_episodes: int, record: bool = False):
  """`fn(env_params [K], keys [R, K]) -> RolloutResult [R, K, ...]`, jitted: a uniform random policy, the
  zero of P3's normalised scores. record: also `transitions`, what it saw and did at every step (as
  `make_rollout`'s)."""
  num_actions = env.action_space(env.default_params).n

  def one(env_params, key):
    k_reset, k_steps = jax.random.split(key)
    obs, env_state = env.reset(k_reset, env_params)

    def step(carry, inp):
      obs, env_state, ep_ret, n_ep, rets, ends = carry
      t, k = inp
      k_act, k_env = jax.random.split(k)
      action = jax.random.randint(k_act, (), 0, num_actions)
      nxt, env_state, reward, term, trunc, _ = env.step(k_env, env_state, action, env_params)
      done = jnp.logical_or(term, trunc)
      rec = (History(obs=obs, action=action, reward=reward.astype(jnp.float32), terminated=term, truncated=trunc,
                     episode=n_ep, update=t) if record else None)
      return (nxt, env_state) + record_episode_end(t, done, ep_ret + reward, n_ep, rets, ends, max_episodes), rec

    init = (obs, env_state, jnp.float32(0.0), jnp.int32(0), jnp.full((max_episodes,), jnp.nan, jnp.float32),
            jnp.full((max_episodes,), -1, jnp.int32))
    steps = (jnp.arange(horizon, dtype=jnp.int32), jax.random.split(k_steps, horizon))
    (*_, n_ep, rets, ends), rec = jax.lax.scan(step, init, steps)
    return RolloutResult(episode_return=rets, episode_end=ends, num_episodes=n_ep, transitions=rec)

  return jax.jit(jax.vmap(jax.vmap(one, in_axes=(0, 0)), in_axes=(None, 0)))


def random_rollout(env, horizon: int, env_params, keys, record: bool = False) -> RolloutResult:
  """The uniform random policy for `horizon` steps on env_params [K] with keys [R, K], on the host:
  RolloutResult [R, K, ...] (`make_random_rollout` with room for every episode of the horizon)."""
  return jax.device_get(make_random_rollout(env, horizon, episodes_for(env, horizon), record)(env_params, keys))
