"""The gymnax MinAtar games behind one interface: same observation shape, same six actions.

Observations are the game's boolean channels zero-padded to `NUM_CHANNELS` (Freeway's 7, the most of the
four games), shape [10, 10, 7], dtype bool. Actions are MinAtar's full set
(0 no-op, 1 left, 2 up, 3 right, 4 down, 5 fire) in every game: gymnax's games are built with
`use_minimal_action_set=False`, and each game ignores the actions it lacks, so those act as a no-op,
exactly as in the original MinAtar's full action set.

gymnax MinAtar differs from the original MinAtar: no sticky actions, and episodes are cut at
`max_steps_in_episode` (1000; Freeway 2500). Say so wherever returns are compared with published ones.
"""
from __future__ import annotations

import jax.numpy as jnp
from gymnax.environments import environment, spaces
from gymnax.environments.minatar import asterix, breakout, freeway, space_invaders

GAMES = {
    "Breakout": breakout.MinBreakout,
    "SpaceInvaders": space_invaders.MinSpaceInvaders,
    "Asterix": asterix.MinAsterix,
    "Freeway": freeway.MinFreeway,
}
NUM_CHANNELS = 7
NUM_ACTIONS = 6
ACTION_NAMES = ("noop", "left", "up", "right", "down", "fire")


# Breakout's scripted learner: a ladder of ball-tracking policies (experiments/breakout_policies.py). On rung h it
# moves the paddle toward the ball's column once the ball is at row h or lower (rows 0 top .. 9 the paddle's),
# else stays; it starts at h = 9 and goes one row up after every episode, down to 0. Its returns per episode
# climb 0.5, 1, 1, 1, 1, 3, 16 and then 84 (every ball kept until gymnax cuts the episode at 1,000 steps): a
# learner whose greedy policy improves within its stream, what its stream shows being all it knows (its rung is
# its count of episodes). Its memory is the rung.
LADDER_TOP = 9


def track(state, column):
  """Breakout's paddle move toward `column` (1 left, 3 right, 0 there)."""
  return jnp.where(state.pos > column, 1, jnp.where(state.pos < column, 3, 0))


def ladder_action(h, state):
  """Rung h of the ladder: toward the ball's column once the ball is at row h or lower, else stay."""
  return jnp.where(state.ball_y >= h, track(state, state.ball_x), 0).astype(jnp.int32)


def _ladder_start(key):
  return jnp.int32(LADDER_TOP)


def _ladder_update(h, state, action, reward, done):
  return jnp.where(done, jnp.maximum(h - 1, 0), h).astype(jnp.int32)


class SharedMinAtar(environment.Environment):
  """One MinAtar game with the shared observation and action interface; params are the game's own."""

  def __init__(self, game: str):
    if game not in GAMES:
      raise ValueError(f"unknown MinAtar game {game!r}; choose from {sorted(GAMES)}")
    super().__init__()
    self.game = game
    self.inner = GAMES[game](use_minimal_action_set=False)
    self.minimal_actions = tuple(int(a) for a in self.inner.minimal_action_set)
    # Actions with the same effect, as one class each: the game's own actions, and every action it lacks in
    # the no-op's class (it acts as the no-op). Fidelity is measured over these classes.
    noop = self.minimal_actions.index(0) if 0 in self.minimal_actions else 0
    self.action_classes = tuple(self.minimal_actions.index(a) if a in self.minimal_actions else noop
                                for a in range(NUM_ACTIONS))
    self._pad = NUM_CHANNELS - self.inner.obs_shape[-1]
    if game == "Breakout":            # the scripted in-context learner (`imitation.ad_eps.demonstrator='searcher'`)
      self.search_start, self.search_action, self.search_update = _ladder_start, ladder_action, _ladder_update
      self.search_description = ("it tracks the ball from one row higher up after each episode (returns 0.5, 1, "
                                 "1, 1, 1, 3, 16, then 84 an episode), every action following from its stream")

  @property
  def name(self) -> str:
    return f"MinAtar-{self.game}"

  @property
  def default_params(self):
    return self.inner.default_params

  @property
  def num_actions(self) -> int:
    return NUM_ACTIONS

  def action_space(self, params=None):
    return spaces.Discrete(NUM_ACTIONS)

  def observation_space(self, params=None):
    return spaces.Box(0, 1, (10, 10, NUM_CHANNELS), jnp.bool_)

  def _pad_obs(self, obs):
    return jnp.pad(obs.astype(jnp.bool_), ((0, 0), (0, 0), (0, self._pad)))

  def step_env(self, key, state, action, params):
    obs, state, reward, terminated, info = self.inner.step_env(key, state, action, params)
    return self._pad_obs(obs), state, reward, terminated, info

  def reset_env(self, key, params):
    obs, state = self.inner.reset_env(key, params)
    return self._pad_obs(obs), state

  @property
  def max_episode_len(self) -> int:
    """gymnax's cut (`max_steps_in_episode`): no episode is longer; most are shorter."""
    return int(self.inner.default_params.max_steps_in_episode)

  def is_truncated(self, state, params):
    return self.inner.is_truncated(state, params)

  def is_terminated(self, state, params):
    return self.inner.is_terminated(state, params)

  @property
  def action_classes_rule(self) -> str:
    return ("left with the paddle at the left wall and right at the right wall are the no-op"
            if self.game == "Breakout" else "")

  def action_classes_at(self, obs):
    """int32 [..., 6]: the class of each action at this observation (`action_classes`, and in Breakout a
    move into a wall: left with the paddle at column 0, right at column 9, leaves it where it is and shares
    the no-op's class). Other games' walls are not modelled: their classes are `action_classes`."""
    classes = jnp.broadcast_to(jnp.asarray(self.action_classes, jnp.int32), obs.shape[:-3] + (NUM_ACTIONS,))
    if self.game != "Breakout":
      return classes
    paddle = obs[..., 9, :, 0]                                                       # [..., 10]
    noop = self.action_classes[0]
    left = jnp.where(paddle[..., 0], noop, self.action_classes[1])
    right = jnp.where(paddle[..., 9], noop, self.action_classes[3])
    return classes.at[..., 1].set(left).at[..., 3].set(right)

  def features(self, obs):
    return obs.astype(jnp.float32)
