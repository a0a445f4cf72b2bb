"""Dark grid worlds of Algorithm Distillation: DarkRoom, DarkRoomHard and DarkKeyToDoor.

The agent sees only its own cell (and, in key-to-door, whether it holds the key); the task is a set of
hidden cells carried in `EnvParams`, so vmapping over params is vmapping over tasks. Every env has an
oracle (`optimal_action`, `optimal_return`) and enumerates its tasks (`all_tasks`).

Actions: 0 stay, 1 up (y+1), 2 down (y-1), 3 right (x+1), 4 left (x-1). Moves into a wall stay put.
Reward is paid for the cell the agent is in after its move.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

MOVES = np.array([[0, 0], [0, 1], [0, -1], [1, 0], [-1, 0]], dtype=np.int32)
NUM_ACTIONS = 5


@struct.dataclass
class GridState(environment.EnvState):
  pos: chex.Array          # int32 [2] (x, y)
  has_key: chex.Array      # bool: key picked up (key-to-door) / goal already paid (hard room)
  done_task: chex.Array    # bool: door opened (key-to-door)
  time: int


@struct.dataclass
class DarkRoomParams(environment.EnvParams):
  goal: chex.Array = struct.field(default_factory=lambda: jnp.array([0, 0], jnp.int32))
  max_steps_in_episode: int = 20


@struct.dataclass
class KeyToDoorParams(environment.EnvParams):
  key_pos: chex.Array = struct.field(default_factory=lambda: jnp.array([0, 0], jnp.int32))
  door_pos: chex.Array = struct.field(default_factory=lambda: jnp.array([1, 1], jnp.int32))
  max_steps_in_episode: int = 50


def _move(pos, action, size):
  return jnp.clip(pos + jnp.asarray(MOVES)[action], 0, size - 1)


def _step_toward(pos, target):
  """Oracle move: close the x gap first, then y; stay when there."""
  dx = target[0] - pos[0]
  dy = target[1] - pos[1]
  return jnp.where(dx > 0, 3, jnp.where(dx < 0, 4, jnp.where(dy > 0, 1, jnp.where(dy < 0, 2, 0))))


def _manhattan(a, b):
  return jnp.abs(a[0] - b[0]) + jnp.abs(a[1] - b[1])


class _Grid(environment.Environment):
  """Shared mechanics: a size x size room, fixed start cell, fixed episode length."""

  obs_dim: int = 2

  def __init__(self, size: int = 9, episode_len: int = 20, start: str = "center"):
    super().__init__()
    if size < 2:
      raise ValueError(f"grid size must be >= 2, got {size}")
    if episode_len < 1:
      raise ValueError(f"episode_len must be >= 1, got {episode_len}")
    if start not in ("center", "random"):
      raise ValueError(f"start must be 'center' or 'random', got {start!r}")
    self.size = size
    self.episode_len = episode_len
    self.start = start

  @property
  def num_actions(self) -> int:
    return NUM_ACTIONS

  def action_space(self, params=None):
    return spaces.Discrete(NUM_ACTIONS)

  @property
  def obs_nvec(self) -> tuple[int, ...]:
    """Cardinality of each integer observation entry (for one-hot or embedding features)."""
    return (self.size, self.size)

  def observation_space(self, params=None):
    return spaces.Box(0, self.size - 1, (self.obs_dim,), jnp.int8)

  def _start_pos(self, key):
    if self.start == "center":
      return jnp.array([self.size // 2, self.size // 2], jnp.int32)
    return jax.random.randint(key, (2,), 0, self.size, dtype=jnp.int32)

  def reset_env(self, key, params):
    state = GridState(pos=self._start_pos(key), has_key=jnp.array(False),
                      done_task=jnp.array(False), time=0)
    return self.get_obs(state), state

  def get_obs(self, state, params=None, key=None):
    return state.pos.astype(jnp.int8)

  def is_terminated(self, state, params):
    return jnp.array(False)

  action_classes_rule = "a move into a wall (the agent stays put) is the stay action"

  def action_classes_at(self, obs):
    """int32 [..., 5]: the class of each action at this observation. A move into a wall leaves the agent
    where it is, so it has the stay action's effect and shares its class (0); every other action is its own
    class. Fidelity is measured over these classes (`cl_limits/imitation/fidelity.py`)."""
    pos = obs[..., None, :2].astype(jnp.int32)                                     # [..., 1, 2]
    moved = jnp.any(jnp.clip(pos + jnp.asarray(MOVES), 0, self.size - 1) != pos, axis=-1)
    return jnp.where(moved, jnp.arange(NUM_ACTIONS, dtype=jnp.int32), 0)

  def features(self, obs):
    """float32 features for an MLP: one-hot of every integer observation entry, concatenated."""
    obs = obs.astype(jnp.int32)
    return jnp.concatenate(
        [jax.nn.one_hot(obs[..., i], n, dtype=jnp.float32) for i, n in enumerate(self.obs_nvec)],
        axis=-1)


class DarkRoom(_Grid):
  """AD's Dark Room: reward 1 on every step spent on the hidden goal (hard: only the first time)."""

  def __init__(self, size: int = 9, episode_len: int = 20, hard: bool = False, start: str = "center"):
    super().__init__(size, episode_len, start)
    self.hard = hard

  @property
  def name(self) -> str:
    return "DarkRoomHard" if self.hard else "DarkRoom"

  @property
  def fixed_episode_len(self) -> int:
    """Every episode lasts exactly this many steps (no terminal state)."""
    return self.episode_len

  @property
  def default_params(self) -> DarkRoomParams:
    return DarkRoomParams(goal=jnp.array([self.size - 1, self.size - 1], jnp.int32),
                          max_steps_in_episode=self.episode_len)

  def step_env(self, key, state, action, params):
    pos = _move(state.pos, action, self.size)
    at_goal = jnp.all(pos == params.goal)
    if self.hard:
      reward = jnp.logical_and(at_goal, ~state.has_key).astype(jnp.float32)
      paid = jnp.logical_or(state.has_key, at_goal)
    else:
      reward = at_goal.astype(jnp.float32)
      paid = state.has_key
    state = state.replace(pos=pos, has_key=paid, time=state.time + 1)
    return self.get_obs(state), state, reward, jnp.array(False), {}

  def optimal_action(self, state, params):
    return _step_toward(state.pos, params.goal)

  def optimal_action_from_obs(self, obs, params):
    """The oracle's action from an observation (the observation is the whole state here)."""
    return _step_toward(obs[:2].astype(jnp.int32), params.goal)

  def optimal_return(self, params, start_pos=None):
    """Return of the oracle from `start_pos` (default: the fixed start cell)."""
    start = jnp.array([self.size // 2] * 2) if start_pos is None else start_pos
    d = _manhattan(start, params.goal)
    horizon = params.max_steps_in_episode
    if self.hard:
      return jnp.where(d <= horizon, 1.0, 0.0)
    # Reward is paid on arrival (step d, or every step if the goal is the start cell) and every step after.
    return jnp.clip(horizon - jnp.maximum(d, 1) + 1, 0, horizon).astype(jnp.float32)

  # The scripted searcher (`imitation.ad_eps.demonstrator='searcher'`): an in-context learner whose every
  # action follows from its own stream. Each episode it walks (x first, then y) to one probe cell and stays
  # there; a rewarded step makes the cell it stands on its target for good (the goal, found); an episode that
  # ends unrewarded moves the probe to the next cell of a boustrophedon sweep of the room (cyclic). Its first
  # probe is drawn uniformly, so across streams every step of the sweep appears. With `search_detour` = k > 0
  # (`imitation.ad_eps.search_detour`, set on a copy of the env by `common.with_search`), every k-th episode
  # after the goal was found it stays where it starts instead (no reward), and goes back the episode after:
  # data that show a miss after a hit and the return from it.
  search_description = ("it probes one cell per episode along a sweep and returns to a goal once found, every "
                        "action following from its own stream")
  search_detour = 0

  def search_start(self, key):
    """(target [2], found, episodes since found) of a fresh searcher: a uniformly drawn first probe."""
    return jax.random.randint(key, (2,), 0, self.size, dtype=jnp.int32), jnp.array(False), jnp.int32(0)

  def search_next(self, cell):
    """The cell after `cell` in the sweep: row by row, even rows left to right, odd rows back; cyclic."""
    n = self.size
    x, y = cell[0], cell[1]
    idx = (y * n + jnp.where(y % 2 == 0, x, n - 1 - x) + 1) % (n * n)
    ny, off = idx // n, idx % n
    return jnp.stack([jnp.where(ny % 2 == 0, off, n - 1 - off), ny]).astype(jnp.int32)

  def search_action(self, memory, state):
    target, found, since = memory
    k = int(self.search_detour)
    away = found & (since % max(k, 1) == 0) if k > 0 else jnp.array(False)   # since = k, 2k, ...: a detour
    return jnp.where(away, 0, _step_toward(state.pos, target))

  def search_update(self, memory, state, action, reward, done):
    """The searcher's memory after taking `action` in `state` (before the step) for `reward`; `done`: that step
    ended the episode (the env's auto-reset is not read: the cell is the one the move led to)."""
    target, found, since = memory
    hit = reward > 0
    since = jnp.where(done & found, since + 1, since)          # episodes finished since the goal was found
    target = jnp.where(hit, _move(state.pos, action, self.size), target)
    found = found | hit
    return jnp.where(done & ~found, self.search_next(target), target), found, since

  def all_tasks(self, params=None) -> DarkRoomParams:
    """Every goal cell, as params with a leading task axis [size*size]."""
    params = self.default_params if params is None else params
    xs, ys = np.meshgrid(np.arange(self.size), np.arange(self.size), indexing="ij")
    goals = jnp.asarray(np.stack([xs.ravel(), ys.ravel()], -1), jnp.int32)
    n = goals.shape[0]
    return params.replace(goal=goals, max_steps_in_episode=jnp.full((n,), params.max_steps_in_episode))


class DarkKeyToDoor(_Grid):
  """AD's Dark Key-To-Door: 1 for reaching the key, then 1 for reaching the door with it (episode ends)."""

  obs_dim = 3

  def __init__(self, size: int = 9, episode_len: int = 50, start: str = "center"):
    super().__init__(size, episode_len, start)

  @property
  def name(self) -> str:
    return "DarkKeyToDoor"

  @property
  def obs_nvec(self):
    return (self.size, self.size, 2)

  def observation_space(self, params=None):
    return spaces.Box(0, self.size - 1, (3,), jnp.int8)

  @property
  def default_params(self) -> KeyToDoorParams:
    return KeyToDoorParams(key_pos=jnp.array([0, 0], jnp.int32),
                           door_pos=jnp.array([self.size - 1, self.size - 1], jnp.int32),
                           max_steps_in_episode=self.episode_len)

  def get_obs(self, state, params=None, key=None):
    return jnp.concatenate([state.pos, state.has_key[None].astype(jnp.int32)]).astype(jnp.int8)

  def step_env(self, key, state, action, params):
    pos = _move(state.pos, action, self.size)
    got_key = jnp.logical_and(~state.has_key, jnp.all(pos == params.key_pos))
    opened = jnp.logical_and(state.has_key, jnp.all(pos == params.door_pos))
    reward = (got_key.astype(jnp.float32) + opened.astype(jnp.float32))
    state = state.replace(pos=pos, has_key=jnp.logical_or(state.has_key, got_key),
                          done_task=opened, time=state.time + 1)
    return self.get_obs(state), state, reward, opened, {}

  def is_terminated(self, state, params):
    return state.done_task

  def optimal_action(self, state, params):
    target = jnp.where(state.has_key, params.door_pos, params.key_pos)
    return _step_toward(state.pos, target)

  def optimal_action_from_obs(self, obs, params):
    """The oracle's action from an observation (x, y, has_key), which is the whole state."""
    target = jnp.where(obs[2] > 0, params.door_pos, params.key_pos)
    return _step_toward(obs[:2].astype(jnp.int32), target)

  def optimal_return(self, params, start_pos=None):
    start = jnp.array([self.size // 2] * 2) if start_pos is None else start_pos
    # The key is paid on the first step that ends on it (at least one step, even from the key cell).
    to_key = jnp.maximum(_manhattan(start, params.key_pos), 1)
    to_door = to_key + _manhattan(params.key_pos, params.door_pos)
    horizon = params.max_steps_in_episode
    return jnp.where(to_key <= horizon, 1.0, 0.0) + jnp.where(to_door <= horizon, 1.0, 0.0)

  def all_tasks(self, params=None) -> KeyToDoorParams:
    """Every (key, door) pair of distinct cells, as params with a leading task axis."""
    params = self.default_params if params is None else params
    cells = np.stack(np.meshgrid(np.arange(self.size), np.arange(self.size), indexing="ij"), -1)
    cells = cells.reshape(-1, 2)
    ki, di = np.meshgrid(np.arange(len(cells)), np.arange(len(cells)), indexing="ij")
    keep = ki.ravel() != di.ravel()
    n = int(keep.sum())
    return params.replace(key_pos=jnp.asarray(cells[ki.ravel()[keep]], jnp.int32),
                          door_pos=jnp.asarray(cells[di.ravel()[keep]], jnp.int32),
                          max_steps_in_episode=jnp.full((n,), params.max_steps_in_episode))
