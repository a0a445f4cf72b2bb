"""Fidelity in nats against the exact behaviour policy: known answers with stand-in imitators."""
import jax.numpy as jnp
import numpy as np

from cl_limits.histories import datasets
from cl_limits.histories.history import behaviour_probs
from cl_limits.imitation import fidelity

A, EPS = 4, 0.2


class StandIn:
  """An 'imitator' whose logits are a function of the observation, which holds the behaviour's greedy
  action: 'exact' returns log of the behaviour policy itself, 'uniform' equal logits, 'greedy' puts 0.97 on
  the greedy action."""

  def __init__(self, mode):
    self.mode = mode

  def apply(self, params, tokens):
    g = tokens.obs[..., 0].astype(jnp.int32)
    if self.mode == "exact":
      return jnp.log(behaviour_probs(g, jnp.full(g.shape, EPS), A))
    if self.mode == "onehot":       # a model of the greedy labels, certain of them
      return jnp.where(jnp.arange(A) == g[..., None], 0.0, -1e4)
    if self.mode == "uniform":
      return jnp.zeros(g.shape + (A,))
    if self.mode == "swapped":      # the behaviour policy with actions 0 and 2 swapped (one class below)
      p = behaviour_probs(g, jnp.full(g.shape, EPS), A)
      return jnp.log(p[..., jnp.array([2, 1, 0, 3])])
    p = jnp.where(jnp.arange(A) == g[..., None], 0.97, 0.01)
    return jnp.log(p)


def part(n_hist=(10, 25), seed=0):
  rng = np.random.default_rng(seed)
  n = sum(n_hist)
  greedy = rng.integers(0, A, n).astype(np.int32)
  action = np.where(rng.random(n) < EPS, rng.integers(0, A, n), greedy).astype(np.int32)
  return datasets.FlatData(obs=greedy[:, None].astype(np.int8), action=action, label=action,
                           reward=np.zeros(n, np.float32), done=np.zeros(n, bool), lengths=np.asarray(n_hist),
                           episodes=0, time=np.concatenate([np.arange(k) for k in n_hist]).astype(np.int32),
                           greedy=greedy, epsilon=np.full(n, EPS, np.float32))


def score(mode, parts, seq_len=8, classes=None, explores=None):
  held = fidelity.held_out(parts, seq_len, max_windows=0)
  run = fidelity.make_fidelity(StandIn(mode), seq_len, A, action_classes=classes, explores=explores)
  group = np.arange(len(parts))
  stats = run(jnp.zeros((len(parts),)), held, group)
  return fidelity.summarize(stats, held, group), stats, held


def test_kl_is_zero_for_the_behaviour_policy_and_log_a_minus_h_for_uniform():
  b = np.array([1 - EPS + EPS / A] + [EPS / A] * (A - 1))
  h = -(b * np.log(b)).sum()
  parts = [part(seed=0), part((7, 3, 12), seed=1)]
  exact, stats, _ = score("exact", parts)
  np.testing.assert_allclose(exact["kl"], 0.0, atol=1e-5)
  np.testing.assert_allclose(exact["entropy"], h, rtol=1e-5)
  np.testing.assert_allclose(exact["ce"], h, rtol=1e-5)
  assert (np.asarray(stats.valid).sum((1, 2)) == [35, 22]).all()     # every held-out step scored once
  uni, _, _ = score("uniform", parts)
  np.testing.assert_allclose(uni["kl"], np.log(A) - h, rtol=1e-5)
  np.testing.assert_allclose(uni["nll"], np.log(A), rtol=1e-5)
  for p in fidelity.POSITIONS:
    np.testing.assert_allclose(uni[f"kl_{p}"], np.log(A) - h, rtol=1e-5)
  # A near-greedy imitator: KL = sum_a b(a) log(b(a) / q(a)), by hand.
  q = np.array([0.97] + [0.01] * (A - 1))
  near, _, _ = score("greedy", parts)
  np.testing.assert_allclose(near["kl"], (b * np.log(b / q)).sum(), rtol=1e-4)


def test_subsampled_windows_and_env_step_bins():
  held = fidelity.held_out([part((100,))], seq_len=8, max_windows=5)
  assert held.n_windows.tolist() == [5]
  assert held.starts[0, 0] == 0 and held.starts[0, 4] == 96        # evenly spaced, first and last kept
  _, stats, held = score("uniform", [part((40,))])
  x, kl = fidelity.by_env_step(stats, held, streams_per_learner=4, bins=4)
  assert x.shape == (4,) and np.isfinite(kl).all() and x[0] < x[-1] <= 4 * 41


def test_equivalent_actions_are_one_action():
  """Actions 0 and 2 in one class (as a MinAtar game's missing actions act as its no-op): an imitator that
  swaps them is exact over the classes (kl 0) but not over the raw actions (kl_actions > 0)."""
  parts = [part(seed=3)]
  same, _, _ = score("swapped", parts, classes=[0, 1, 0, 2])
  np.testing.assert_allclose(same["kl"], 0.0, atol=1e-5)
  assert (same["kl_actions"] > 0.1).all()
  raw, _, _ = score("swapped", parts)
  np.testing.assert_allclose(raw["kl"], raw["kl_actions"], rtol=1e-5)
  from cl_limits import envs  # noqa: PLC0415
  assert envs.make("MinAtar-Breakout").action_classes == (0, 1, 0, 2, 0, 0)   # noop, left, right; the rest no-ops


def test_actions_with_the_same_effect_here_are_one_action_here():
  """Per-state classes: where the observation says actions 0 and 2 do the same (obs[1] == 1), an imitator
  that swaps them is exact there; where they differ (obs[1] == 0) its KL is the swap's."""
  rng = np.random.default_rng(5)
  fd = part(seed=4)
  walled = rng.random(fd.obs.shape[0]) < 0.5
  fd = datasets.FlatData(**{**fd.__dict__, "obs": np.stack([fd.obs[:, 0], walled.astype(np.int8)], 1)})
  held = fidelity.held_out([fd], 8, max_windows=0)

  def classes_at(obs):
    merged = jnp.array([0, 1, 0, 3], jnp.int32)
    return jnp.where(obs[..., 1:2] == 1, merged, jnp.arange(A, dtype=jnp.int32))

  run = fidelity.make_fidelity(StandIn("swapped"), 8, A, classes_at=classes_at)
  stats = run(jnp.zeros((1,)), held, np.arange(1))
  kl, valid, idx = (np.asarray(x) for x in (stats.kl, stats.valid, stats.idx))
  here = walled[idx] & valid
  np.testing.assert_allclose(kl[here], 0.0, atol=1e-5)
  swapped_away = valid & ~walled[idx] & np.isin(fd.greedy[idx], [0, 2])    # the greedy action moved elsewhere
  assert swapped_away.any() and (kl[swapped_away] > 0.5).all()


def test_envs_declare_which_actions_do_the_same_at_a_state():
  from cl_limits import envs  # noqa: PLC0415
  room = envs.make("DarkRoom")                       # 0 stay, 1 up (y+1), 2 down (y-1), 3 right, 4 left
  classes = np.asarray(room.action_classes_at(jnp.array([[0, 0], [4, 4], [8, 8]], jnp.int8)))
  assert classes.tolist() == [[0, 1, 0, 3, 0], [0, 1, 2, 3, 4], [0, 0, 2, 0, 4]]
  game = envs.make("MinAtar-Breakout")               # classes (0, 1, 0, 2, 0, 0): noop, left, right
  frames = np.zeros((3, 10, 10, 4), bool)
  for i, col in enumerate((0, 5, 9)):
    frames[i, 9, col, 0] = True                      # the paddle
  classes = np.asarray(game.action_classes_at(jnp.asarray(frames)))
  assert classes.tolist() == [[0, 0, 0, 2, 0, 0], [0, 1, 0, 2, 0, 0], [0, 1, 0, 0, 0, 0]]
  other = envs.make("MinAtar-SpaceInvaders")
  assert np.asarray(other.action_classes_at(jnp.zeros((2, 10, 10, 4), bool))).tolist() == [list(other.action_classes)] * 2


def test_the_floor_analysis_classes_darkroom_steps_by_state():
  """analysis/fidelity_floor.by_state on a hand-made DarkRoom history (goal (6, 4), start (4, 4), 4-step
  episodes): the goal is read from the rewarded moves; each step is on the goal, one shortest move from it,
  or one of two (an off-axis cell); the first episode of each window is told apart; KL is averaged per
  class; the tie-copy rate compares the same cell one episode earlier."""
  from cl_limits import envs  # noqa: PLC0415
  from cl_limits.analysis import fidelity_floor  # noqa: PLC0415
  env = envs.make("DarkRoom", episode_len=4)
  # Episode: (4,4) right -> (5,4) right -> (6,4) stay -> (6,4) stay; then one from the off-axis (5,5).
  obs = np.array([[4, 4], [5, 4], [6, 4], [6, 4], [5, 5], [5, 4], [6, 4], [6, 4]], np.int8)
  action = np.array([3, 3, 0, 0, 2, 3, 0, 0], np.int32)
  reward = np.array([0, 1, 1, 1, 0, 1, 1, 1], np.float32)
  greedy = np.array([3, 3, 0, 0, 2, 3, 0, 0], np.int32)
  fd = datasets.FlatData(obs=obs, action=action, label=action, reward=reward, done=np.zeros(8, bool),
                         lengths=np.array([8]), episodes=2, time=np.arange(8, dtype=np.int32), greedy=greedy,
                         epsilon=np.full(8, 0.1, np.float32))
  from cl_limits.envs.grid import MOVES  # noqa: PLC0415
  assert fidelity_floor.goal_of_each_step(fd, MOVES, env.size).tolist() == [[6, 4]] * 8
  kl = np.array([[1.0, 2.0, 0.0, 0.0, 4.0, 0.5, 0.1, 0.1]])       # one window of 8 steps
  valid = np.ones((1, 8), bool)
  idx = np.arange(8)[None]
  rows, copy = fidelity_floor.by_state(fd, kl, valid, idx, env, seq_len=8)
  assert rows["one shortest move, first episode of its window"] == (2 / 8, 1.5)
  assert rows["on the goal, first episode of its window"] == (2 / 8, 0.0)
  assert rows["two shortest moves, later episodes"] == (1 / 8, 4.0)
  assert rows["one shortest move, later episodes"] == (1 / 8, 0.5)
  assert np.isnan(copy)            # (5, 5) was not visited one episode earlier


def test_a_greedy_label_model_is_scored_as_the_epsilon_greedy_policy_it_acts_with():
  """A model certain of the greedy action, scored as a greedy-label model (its policy: epsilon-greedy
  around its choice with each step's recorded epsilon), is the behaviour policy: KL 0. Scored as it
  stands (an action model), the same logits are far from it; groups are told apart."""
  parts = [part(seed=0), part((7, 3, 12), seed=1)]
  mixed, _, _ = score("onehot", parts, explores=[True, False])
  np.testing.assert_allclose(mixed["kl"][0], 0.0, atol=1e-5)
  assert mixed["kl"][1] > 1.0
  plain, _, _ = score("onehot", parts)
  assert (plain["kl"] > 1.0).all()
