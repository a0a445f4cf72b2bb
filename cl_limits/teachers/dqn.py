"""A jit-compiled double DQN that records its own learning history.

`make_teacher(config, env)` captures the static configuration and returns pure functions of arrays:

  init(key, env_params)          -> TeacherState
  segment(state, env_params)     -> (TeacherState, SegmentOutput)   # `segment_steps` env steps
  train(key, env_params)         -> (TeacherState, History, metrics) # the whole run, one XLA program
  follow(key, env_params, stream)  -> greedy [E, T]  # a fresh DQN learning from recorded transitions

`make_train(config, env)` returns `train` alone. All of them vmap: `jax.jit(jax.vmap(jax.vmap(train)))`
over seeds x tasks trains one DQN per (key, task) in one program.

Steps are counted as environment transitions of one learner over all its `num_envs` streams (PureJaxRL's
convention): `train_every=10` with `num_envs=10` is one gradient update per vectorised env step.
Updates run on a fixed schedule (a block of `train_every` steps, then one update): no `lax.cond` on a
batched predicate. Before `learning_starts` the update is computed and discarded with a select.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from cl_limits import envs as envs_lib
from cl_limits.histories.history import History
from cl_limits.teachers.networks import QNetwork
from cl_limits.teachers.records import Replay, SegmentOutput, TeacherState, Transitions, _Teacher  # noqa: F401


def default_config() -> ml_collections.ConfigDict:
  """PureJaxRL's DQN defaults (CartPole): squared TD error, no gradient clipping; double DQN on.

  The grid and MinAtar configs switch to `loss="huber"`. Huber's bounded gradient needs rewards of a
  small scale: on CartPole (reward 1 a step, Q near 100) the few terminal transitions, whose TD errors are
  large, get outvoted and Q diverges (measured: returns collapse to ~10; see BUILD_NOTES.md).
  """
  return ml_collections.ConfigDict(dict(
      num_envs=10,
      total_steps=500_000,
      segment_steps=50_000,
      buffer_size=10_000,
      batch_size=128,
      train_every=10,
      target_update_every=500,
      learning_starts=10_000,
      lr=2.5e-4,
      gamma=0.99,
      eps_start=1.0,
      eps_end=0.05,
      eps_anneal_steps=250_000,
      loss="mse",
      huber_delta=1.0,
      max_grad_norm=0.0,
      hidden=(120, 84),
      torso="mlp",
      double=True,
      optimizer="adam",       # or "rmsprop": centered RMSProp (decay rms_decay, eps rms_eps), MinAtar's baseline
      rms_decay=0.95,
      rms_eps=0.01,
  ))


def validate(cfg, env=None) -> None:
  """Raises ValueError naming the offending field; call before anything compiles."""
  def need(ok, field, msg):
    if not ok:
      raise ValueError(f"dqn.{field}: {msg} (got {cfg[field]!r})")
  for f in ("num_envs", "total_steps", "segment_steps", "buffer_size", "batch_size", "train_every",
            "target_update_every"):
    need(int(cfg[f]) >= 1, f, "must be a positive integer")
  need(cfg.learning_starts >= 0, "learning_starts", "must be >= 0")
  need(cfg.eps_anneal_steps >= 1, "eps_anneal_steps", "must be >= 1")
  need(0.0 <= cfg.gamma <= 1.0, "gamma", "must be in [0, 1]")
  need(cfg.lr > 0, "lr", "must be > 0")
  need(0.0 <= cfg.eps_end <= 1.0 and 0.0 <= cfg.eps_start <= 1.0, "eps_end", "epsilons must be in [0, 1]")
  need(cfg.train_every % cfg.num_envs == 0, "train_every", f"must be a multiple of num_envs={cfg.num_envs}")
  need(cfg.segment_steps % cfg.train_every == 0, "segment_steps",
       f"must be a multiple of train_every={cfg.train_every}")
  need(cfg.total_steps % cfg.segment_steps == 0, "total_steps",
       f"must be a multiple of segment_steps={cfg.segment_steps}")
  need(cfg.target_update_every % cfg.train_every == 0, "target_update_every",
       f"must be a multiple of train_every={cfg.train_every}")
  need(cfg.buffer_size >= cfg.num_envs, "buffer_size", f"must hold at least num_envs={cfg.num_envs} steps")
  need(cfg.torso in ("mlp", "conv"), "torso", "must be 'mlp' or 'conv'")
  need(cfg.loss in ("mse", "huber"), "loss", "must be 'mse' or 'huber'")
  need(cfg.get("optimizer", "adam") in ("adam", "rmsprop"), "optimizer", "must be 'adam' or 'rmsprop'")
  need(cfg.huber_delta > 0, "huber_delta", "must be > 0")
  need(all(int(h) >= 1 for h in cfg.hidden), "hidden", "layer widths must be positive")
  if env is not None and cfg.torso == "conv":
    shape, _ = envs_lib.obs_spec(env)
    need(len(shape) == 3, "torso", f"'conv' needs image observations [H, W, C], env gives {shape}")


def _split(state_rng, n):
  keys = jax.random.split(jax.random.wrap_key_data(state_rng), n)
  return jax.random.key_data(keys[0]), keys[1:]


def make_teacher(config, env):
  """Returns a namespace with init, segment, train, greedy_action and the network."""
  cfg = config
  validate(cfg, env)
  num_envs = int(cfg.num_envs)
  iters_per_update = int(cfg.train_every) // num_envs
  updates_per_segment = int(cfg.segment_steps) // int(cfg.train_every)
  num_segments = int(cfg.total_steps) // int(cfg.segment_steps)
  target_every = int(cfg.target_update_every) // int(cfg.train_every)
  obs_shape, obs_dtype = envs_lib.obs_spec(env)
  num_actions = env.num_actions
  net = QNetwork(num_actions=num_actions, hidden=tuple(int(h) for h in cfg.hidden), torso=cfg.torso)
  feats = lambda obs: envs_lib.features(env, obs)
  q_fn = lambda params, obs: net.apply(params, feats(obs))
  tx_parts = [optax.clip_by_global_norm(cfg.max_grad_norm)] if cfg.max_grad_norm > 0 else []
  if cfg.get("optimizer", "adam") == "rmsprop":
    opt = optax.rmsprop(cfg.lr, decay=float(cfg.rms_decay), eps=float(cfg.rms_eps), centered=True)
  else:
    opt = optax.adam(cfg.lr)
  tx = optax.chain(*tx_parts, opt)
  env_reset = jax.vmap(env.reset, in_axes=(0, None))
  env_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

  def epsilon(env_steps):
    frac = jnp.clip(env_steps / cfg.eps_anneal_steps, 0.0, 1.0)
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)

  def init(key, env_params) -> TeacherState:
    k_net, k_env, k_rest = jax.random.split(key, 3)
    obs, env_state = env_reset(jax.random.split(k_env, num_envs), env_params)
    params = net.init(k_net, feats(obs))
    b = int(cfg.buffer_size)
    replay = Replay(obs=jnp.zeros((b, *obs_shape), obs.dtype), action=jnp.zeros((b,), jnp.int32),
                    reward=jnp.zeros((b,), jnp.float32), terminated=jnp.zeros((b,), bool),
                    next_obs=jnp.zeros((b, *obs_shape), obs.dtype), ptr=jnp.int32(0), size=jnp.int32(0))
    return TeacherState(params=params, target_params=params, opt_state=tx.init(params), replay=replay,
                        env_state=env_state, obs=obs, episode=jnp.zeros((num_envs,), jnp.int32),
                        updates=jnp.int32(0), env_steps=jnp.int32(0),
                        ep_return=jnp.zeros((num_envs,), jnp.float32), rng=jax.random.key_data(k_rest))

  def push(r: Replay, obs, action, reward, terminated, next_obs) -> Replay:
    """The replay with one transition of every stream [E] written at its pointer."""
    idx = (r.ptr + jnp.arange(num_envs)) % r.action.shape[0]
    return r.replace(obs=r.obs.at[idx].set(obs), action=r.action.at[idx].set(action),
                     reward=r.reward.at[idx].set(reward), terminated=r.terminated.at[idx].set(terminated),
                     next_obs=r.next_obs.at[idx].set(next_obs),
                     ptr=(r.ptr + num_envs) % r.action.shape[0],
                     size=jnp.minimum(r.size + num_envs, r.action.shape[0]))

  def act_and_step(state: TeacherState, env_params):
    rng, (k_explore, k_rand, k_env) = _split(state.rng, 4)
    greedy = jnp.argmax(q_fn(state.params, state.obs), axis=-1)
    eps = epsilon(state.env_steps)
    explore = jax.random.uniform(k_explore, (num_envs,)) < eps
    action = jnp.where(explore, jax.random.randint(k_rand, (num_envs,), 0, num_actions), greedy)
    next_obs, env_state, reward, terminated, truncated, info = env_step(
        jax.random.split(k_env, num_envs), state.env_state, action, env_params)
    reward = reward.astype(jnp.float32)
    terminated, truncated = terminated.astype(bool), truncated.astype(bool)
    replay = push(state.replay, state.obs, action, reward, terminated, info["final_observation"])
    record = History(obs=state.obs.astype(obs_dtype), action=action.astype(jnp.int32), reward=reward,
                     terminated=terminated, truncated=truncated, episode=state.episode,
                     update=jnp.broadcast_to(state.updates, (num_envs,)),
                     greedy=greedy.astype(jnp.int32),
                     epsilon=jnp.broadcast_to(jnp.asarray(eps, jnp.float32), (num_envs,)))
    done = jnp.logical_or(terminated, truncated)
    ep_return = state.ep_return + reward
    state = state.replace(replay=replay, env_state=env_state, obs=next_obs, rng=rng,
                          episode=state.episode + done.astype(jnp.int32),
                          env_steps=state.env_steps + num_envs,
                          ep_return=jnp.where(done, 0.0, ep_return))
    return state, (record, jnp.where(done, ep_return, jnp.nan))

  def loss_fn(params, target_params, batch):
    q = q_fn(params, batch.obs)
    q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
    q_next_target = q_fn(target_params, batch.next_obs)
    if cfg.double:
      best = jnp.argmax(q_fn(params, batch.next_obs), axis=-1)
    else:
      best = jnp.argmax(q_next_target, axis=-1)
    q_next = jnp.take_along_axis(q_next_target, best[:, None], axis=-1)[:, 0]
    # Bootstrap through truncation, never through termination.
    target = batch.reward + cfg.gamma * (1.0 - batch.terminated.astype(jnp.float32)) * q_next
    td = q_taken - jax.lax.stop_gradient(target)
    if cfg.loss == "huber":
      return optax.huber_loss(td, delta=cfg.huber_delta).mean(), q_taken.mean()
    return 0.5 * jnp.square(td).mean(), q_taken.mean()

  def update(state: TeacherState):
    rng, (k_idx,) = _split(state.rng, 2)
    r = state.replay
    idx = jax.random.randint(k_idx, (int(cfg.batch_size),), 0, jnp.maximum(r.size, 1))
    batch = jax.tree.map(lambda x: x[idx], r.replace(ptr=None, size=None))
    (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.target_params, batch)
    upd, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, upd)
    learn = state.env_steps >= cfg.learning_starts
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(learn, a, b), new, old)
    params, opt_state = keep(params, state.params), keep(opt_state, state.opt_state)
    updates = state.updates + learn.astype(jnp.int32)
    sync = jnp.logical_and(learn, updates % target_every == 0)
    target_params = jax.tree.map(lambda p, t: jnp.where(sync, p, t), params, state.target_params)
    state = state.replace(params=params, opt_state=opt_state, target_params=target_params,
                          updates=updates, rng=rng)
    return state, (jnp.where(learn, loss, jnp.nan), jnp.where(learn, q_mean, jnp.nan))

  def block(carry, _):
    state, env_params = carry
    state, records = jax.lax.scan(lambda s, _: act_and_step(s, env_params), state, None,
                                  length=iters_per_update)
    state, metrics = update(state)
    return (state, env_params), (records, metrics)

  def segment(state: TeacherState, env_params):
    (state, _), ((records, ep_ret), (loss, q_mean)) = jax.lax.scan(
        block, (state, env_params), None, length=updates_per_segment)
    # [blocks, iters_per_update, E, ...] -> [E, T, ...]
    to_streams = lambda x: jnp.moveaxis(x.reshape((-1,) + x.shape[2:]), 1, 0)
    return state, SegmentOutput(history=jax.tree.map(to_streams, records),
                                episode_return=to_streams(ep_ret), loss=loss, q_mean=q_mean)

  def train(key, env_params):
    state = init(key, env_params)
    state, outs = jax.lax.scan(lambda s, _: segment(s, env_params), state, None, length=num_segments)
    history = jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1).reshape(
        (x.shape[1], -1) + x.shape[3:]), outs.history)
    ep_ret = jnp.moveaxis(outs.episode_return, 0, 1).reshape((num_envs, -1))
    return state, history, {"loss": outs.loss.reshape(-1), "q_mean": outs.q_mean.reshape(-1),
                            "episode_return": ep_ret}

  def greedy_action(params, obs):
    return jnp.argmax(q_fn(params, obs), axis=-1)

  def follow(key, env_params, stream: Transitions):
    """A fresh DQN (`init(key, env_params)`, the teacher's schedule) that learns from recorded transitions
    instead of its own: stream fields [E, T] (E = num_envs streams in lockstep). Returns greedy [E, T]:
    its argmax Q at each step, before it learns from that step, which is the action a DQN with exactly
    this experience so far would take when not exploring. The keys are drawn as in `train`, so a DQN that
    follows its own recorded history (same key, the real next observations) makes its own choices again."""
    state = init(key, env_params)
    time_major = jax.tree.map(lambda x: jnp.moveaxis(jnp.asarray(x), 1, 0), stream)

    def see(state, tr):
      rng, _ = _split(state.rng, 4)           # the keys act_and_step would draw, unused
      greedy = jnp.argmax(q_fn(state.params, tr.obs), axis=-1).astype(jnp.int32)
      replay = push(state.replay, tr.obs, tr.action.astype(jnp.int32), tr.reward.astype(jnp.float32),
                    tr.terminated.astype(bool), tr.next_obs)
      return state.replace(replay=replay, rng=rng, env_steps=state.env_steps + num_envs), greedy

    def see_block(state, trs):
      state, greedy = jax.lax.scan(see, state, trs)
      return update(state)[0], greedy

    steps = int(stream.action.shape[1])
    whole = steps // iters_per_update * iters_per_update
    blocks = jax.tree.map(lambda x: x[:whole].reshape((-1, iters_per_update) + x.shape[1:]), time_major)
    state, head = jax.lax.scan(see_block, state, blocks)
    _, tail = jax.lax.scan(see, state, jax.tree.map(lambda x: x[whole:], time_major))
    return jnp.moveaxis(jnp.concatenate([head.reshape((-1, num_envs)), tail], 0), 0, 1)

  return _Teacher(init=init, segment=segment, train=train, greedy_action=greedy_action, q_fn=q_fn,
                  network=net, num_segments=num_segments, epsilon=epsilon,
                  segment_iters=updates_per_segment * iters_per_update, follow=follow)


def make_train(config, env):
  """`train(key, env_params) -> (final TeacherState, History [E, T], metrics)`, pure and jittable."""
  return make_teacher(config, env).train


