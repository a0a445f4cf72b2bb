"""Arm data selection (portion, gap, streams, labels) and AD-epsilon histories, on hand-made cases."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cl_limits import envs
from cl_limits.envs import grid
from cl_limits.histories import adeps, datasets, windows
from cl_limits.histories.history import History
from cl_limits.imitation import learner


def toy_history(streams=2, episodes=5, ep_len=4):
  """[1, 1, E, T]: episode e of stream s pays reward 10*s + e at its last step; obs = (t, s)."""
  t_len = episodes * ep_len
  t = np.arange(t_len)
  ep = t // ep_len
  done = (t % ep_len) == ep_len - 1
  reward = np.stack([np.where(done, 10 * s + ep, 0.0) for s in range(streams)])
  obs = np.stack([np.stack([t, np.full(t_len, s)], -1) for s in range(streams)]).astype(np.int8)
  action = np.stack([(t + s) % 3 for s in range(streams)])
  lead = lambda x: np.asarray(x)[None, None]
  return History(obs=lead(obs), action=lead(action), reward=lead(reward).astype(np.float32),
                 terminated=lead(np.zeros((streams, t_len), bool)), truncated=lead(np.stack([done] * streams)),
                 episode=lead(np.stack([ep] * streams)), update=lead(np.zeros((streams, t_len), np.int32)))


def episodes_of(fd):
  """Per-history list of kept episode rewards (the reward at each kept episode's last step)."""
  out, i = [], 0
  for n in fd.lengths:
    r, d = fd.reward[i:i + n], fd.done[i:i + n]
    out.append(r[d].tolist())
    i += n
  return out


def test_all_portion_keeps_everything():
  fd = datasets.select(toy_history())
  assert fd.lengths.tolist() == [20, 20]
  assert episodes_of(fd) == [[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]]
  assert fd.episodes == 10


def test_first_and_last_portions_cut_at_episode_boundaries():
  h = toy_history()
  first = datasets.select(h, portion="first", fraction=0.5)       # cut at step 10: episodes 0, 1 end < 10
  assert episodes_of(first) == [[0, 1], [10, 11]]
  last = datasets.select(h, portion="last", fraction=0.3)          # from step 14: episode 4 starts at 16
  assert episodes_of(last) == [[4], [14]]
  assert last.lengths.tolist() == [4, 4]


def test_start_drops_the_episodes_that_begin_before_it():
  """start 0.25 of 20 steps is step 5: episode 1 (steps 4-7) began before it, so the first kept episode is 2;
  with the first 65% (episodes that end before step 13) that leaves episode 2 alone, in every stream."""
  h = toy_history()
  fd = datasets.select(h, portion="first", fraction=0.65, start=0.25)
  assert episodes_of(fd) == [[2], [12]]
  assert episodes_of(datasets.select(h, start=0.2)) == [[1, 2, 3, 4], [11, 12, 13, 14]]    # step 4 begins episode 1
  arm = datasets.resolve_arm({"portion": "first", "fraction": 0.65, "start": 0.25})
  done = np.asarray(h.truncated)
  assert datasets.arm_keep(done, np.asarray(h.episode), arm).sum() == 8
  assert datasets.arm_keep(done, np.asarray(h.episode), {**arm, "start": 0.0}).sum() == 24


def test_gap_keeps_every_kth_episode_and_streams_limit():
  fd = datasets.select(toy_history(streams=3), gap=2, streams=2)
  assert episodes_of(fd) == [[0, 2, 4], [10, 12, 14]]
  with pytest.raises(ValueError, match="only 3 streams"):
    datasets.select(toy_history(streams=3), streams=4)


def test_windows_over_selected_data_stay_in_one_history():
  fd = datasets.select(toy_history(streams=3), gap=2)
  index = windows.build_index(fd.lengths, 8)
  idx = np.asarray(windows.sample(index, jax.random.key(0), 500)[0])
  hid = np.asarray(index.history_id)[idx]
  assert (hid == hid[:, :1]).all()


def test_gather_marks_history_starts_as_fresh():
  fd = datasets.select(toy_history(streams=2, episodes=2, ep_len=3))
  data = datasets.to_device(fd)
  tok, label = learner.gather(data, jnp.arange(12), num_actions=3)
  prev_action = np.asarray(tok.prev_action)
  # Step 0 and step 6 start histories: no previous action (index num_actions), done=True, reward 0.
  assert prev_action[0] == 3 and prev_action[6] == 3
  assert np.asarray(tok.prev_done)[[0, 6]].all()
  assert prev_action[1:6].tolist() == fd.action[0:5].tolist()
  assert np.asarray(tok.prev_done)[3] and not np.asarray(tok.prev_done)[4]   # step 2 ended an episode
  assert np.asarray(label).tolist() == fd.action[:12].tolist()


def test_gather_marks_exploratory_steps_where_the_greedy_action_is_recorded():
  """A step explored when its action is not the recorded greedy one; the mark reaches the next step's
  token (none at a history's start), and the build refuses to mark data that does not record greedy."""
  from cl_limits.histories import arms  # noqa: PLC0415
  hist = toy_history(streams=2, episodes=2, ep_len=3)
  action = np.asarray(hist.action)
  greedy = np.where(np.arange(action.shape[-1]) % 2 == 0, action, (action + 1) % 3)   # odd steps explore
  fd = datasets.select(hist.replace(greedy=greedy, epsilon=np.full(action.shape, 0.5, np.float32)))
  np.testing.assert_array_equal(datasets.explore_of(fd.action, fd.greedy), np.tile(np.arange(6) % 2 == 1, 2))
  tok, _ = learner.gather(datasets.to_device(fd), jnp.arange(12), num_actions=3)
  expect = np.concatenate([[False], np.arange(5) % 2 == 1] * 2)
  np.testing.assert_array_equal(np.asarray(tok.prev_explore), expect)
  plain = datasets.select(hist)                                   # greedy not recorded: nothing marked
  assert not np.asarray(learner.gather(datasets.to_device(plain), jnp.arange(12), 3)[0].prev_explore).any()
  spec = {"ad": datasets.resolve_arm({})}
  src = {"teacher": (hist, {"env": "toy", "streams_per_learner": 2, "env_steps_per_learner": 12})}
  with pytest.raises(ValueError, match="^model.mark_explore: arms.ad's teacher histories do not record"):
    arms.build(spec, src, seq_len=3, mark_explore=True)
  marked = (hist.replace(greedy=greedy, epsilon=np.full(action.shape, 0.5, np.float32)), src["teacher"][1])
  assert arms.build(spec, {"teacher": marked}, seq_len=3, mark_explore=True)[3]["arms"]["ad"]["explore_fraction"] == 0.5


def test_greedy_labels_are_the_learners_recorded_greedy_actions():
  """labels='greedy': each kept step's label is its behaviour policy's greedy action as recorded (the
  recorded action where they agree, not where the learner explored); refused where it is not recorded."""
  from cl_limits.histories import arms  # noqa: PLC0415
  hist = toy_history(streams=2, episodes=2, ep_len=3)
  action = np.asarray(hist.action)
  greedy = np.where(np.arange(action.shape[-1]) % 2 == 0, action, (action + 1) % 3)
  recorded = hist.replace(greedy=greedy, epsilon=np.full(action.shape, 0.5, np.float32))
  spec = {"g": datasets.resolve_arm(dict(labels="greedy"))}
  meta = {"env": "toy", "streams_per_learner": 2, "env_steps_per_learner": 12}
  data = arms.build(spec, {"teacher": (recorded, meta)}, seq_len=3)[0]
  np.testing.assert_array_equal(np.asarray(data.label), greedy.reshape(-1))
  np.testing.assert_array_equal(np.asarray(data.action), action.reshape(-1))
  with pytest.raises(ValueError, match="^arms.g.labels: 'greedy' needs histories that record"):
    arms.build(spec, {"teacher": (hist, meta)}, seq_len=3)


def test_oracle_labels_are_optimal_actions():
  env = envs.make("DarkRoom", size=5, episode_len=8)
  tasks = envs.select_tasks(env.all_tasks(), [6])               # goal (1, 1)
  obs = np.array([[1, 1], [3, 1], [1, 4], [0, 0]], np.int8)
  h = History(obs=obs[None, None, None], action=np.zeros((1, 1, 1, 4), np.int32),
              reward=np.zeros((1, 1, 1, 4), np.float32), terminated=np.zeros((1, 1, 1, 4), bool),
              truncated=np.zeros((1, 1, 1, 4), bool), episode=np.zeros((1, 1, 1, 4), np.int32),
              update=np.zeros((1, 1, 1, 4), np.int32))
  labels = datasets.oracle_labels(env, h, tasks)
  assert labels[0, 0, 0].tolist() == [0, 4, 2, 3]                # stay, left, down, right


def test_ad_epsilon_histories_anneal_from_random_to_oracle():
  env = envs.make("DarkRoom", size=9, episode_len=20)
  tasks = env.all_tasks()
  gen = jax.jit(jax.vmap(adeps.make_generate(env, steps=4000, streams=2, eps_floor=0.0, decay_fraction=0.5)))
  hist = jax.device_get(gen(jax.random.split(jax.random.key(0), 81), tasks))
  assert hist.action.shape == (81, 2, 4000)
  reward = np.asarray(hist.reward).reshape(81, 2, 200, 20).sum(-1)     # [tasks, streams, episodes]
  optimal = np.asarray(jax.vmap(env.optimal_return)(tasks))
  early, late = reward[..., :5].mean(), reward[..., -20:].mean(-1)
  # epsilon 0 from half-way on: every late episode is the oracle's, exactly.
  np.testing.assert_allclose(late, np.broadcast_to(optimal[:, None], late.shape))
  assert early < 0.2 * optimal.mean()
  eps = adeps.epsilon_at(np.array([0, 1000, 2000, 3999]), 4000, 0.1, 0.5)
  np.testing.assert_allclose(eps, [1.0, 0.55, 0.1, 0.1], atol=1e-6)


def test_ad_epsilon_with_no_decay_is_one_frozen_policy():
  """decay_fraction 0: epsilon at its floor from the first step, so every recorded step has the same
  behaviour policy (the oracle with probability 0.9, else uniform)."""
  env = envs.make("DarkRoom", size=9, episode_len=20)
  tasks = jax.tree.map(lambda x: x[:3], env.all_tasks())
  gen = jax.jit(jax.vmap(adeps.make_generate(env, steps=400, streams=2, eps_floor=0.1, decay_fraction=0.0)))
  hist = jax.device_get(gen(jax.random.split(jax.random.key(1), 3), tasks))
  np.testing.assert_allclose(hist.epsilon, 0.1)
  agree = (np.asarray(hist.action) == np.asarray(hist.greedy)).mean()
  assert 0.88 < agree < 0.96                       # 0.9 + 0.1 / 5 = 0.92 expected


def test_searcher_learns_in_context_and_each_episode_follows_from_the_last():
  """The scripted searcher: its sweep visits every cell once per cycle; each unrewarded episode ends on its
  probe and the next episode's probe is the sweep's next cell (so its actions follow from its own stream);
  once rewarded it returns to the goal for good; its continuation past a cut is the same stream's steps."""
  env = envs.make("DarkRoom", size=9, episode_len=20)
  cell, seen = np.array([0, 0]), set()
  for _ in range(81):
    seen.add(tuple(int(v) for v in cell))
    cell = np.asarray(env.search_next(cell))
  assert len(seen) == 81 and tuple(cell) == (0, 0)
  tasks = env.all_tasks()
  gen = jax.jit(jax.vmap(adeps.make_generate(env, steps=2000, streams=2, eps_floor=0.0, decay_fraction=0.0,
                                             demonstrator="searcher")))
  keys = jax.random.split(jax.random.key(3), 81)
  hist = jax.device_get(gen(keys, tasks))
  reward = np.asarray(hist.reward).reshape(81, 2, 100, 20)
  rets = reward.sum(-1)
  optimal = np.asarray(jax.vmap(env.optimal_return)(tasks))
  found = (rets > 0).argmax(-1)                                   # [tasks, streams]: first rewarded episode
  assert (rets.max(-1) > 0).all() and found.max() < 81            # one sweep finds every goal
  for k in range(81):
    for s in range(2):
      after = rets[k, s, found[k, s] + 1:]
      np.testing.assert_allclose(after, optimal[k])               # straight to the goal ever after
  end = np.asarray(hist.obs).reshape(81, 2, 100, 20, 2)[..., -1, :].astype(np.int32)   # each episode's last cell
  last_move = np.asarray(hist.action).reshape(81, 2, 100, 20)[..., -1]
  end = np.clip(end + grid.MOVES[last_move], 0, 8)                        # where it ended up
  for k in range(0, 81, 7):
    for e in range(found[k, 0] - 1):                              # unrewarded episodes: the probe advances
      np.testing.assert_array_equal(end[k, 0, e + 1], np.asarray(env.search_next(end[k, 0, e])))
  assert rets[..., :5].mean() < 0.3 * optimal.mean() and rets[..., -10:].mean() == pytest.approx(optimal.mean())
  cont = jax.jit(jax.vmap(adeps.make_generate(env, steps=600, streams=2, eps_floor=0.0, decay_fraction=0.0,
                                              start=400, schedule_steps=2000, demonstrator="searcher")))
  tail = jax.device_get(cont(keys[:4], jax.tree.map(lambda x: x[:4], tasks)))
  np.testing.assert_array_equal(np.asarray(tail.action), np.asarray(hist.action)[:4, :, 400:1000])
  with pytest.raises(ValueError, match="searcher"):
    adeps.make_generate(envs.make("DarkKeyToDoor", size=5, episode_len=20), 100, 1, 0.0, 0.0, demonstrator="searcher")


def test_a_searcher_with_detours_misses_every_kth_episode_after_its_goal_and_goes_back():
  """`imitation.ad_eps.search_detour` = 3 (`common.with_search`): the same search up to the first hit; after it,
  every 3rd episode it stays where it starts (action 0 throughout, no reward, where the start is not the
  goal) and the episode after is optimal again; 0 leaves the searcher and its streams as they were."""
  from cl_limits.stages import common  # noqa: PLC0415
  env = envs.make("DarkRoom", size=9, episode_len=20)
  tasks = jax.tree.map(lambda x: x[::5], env.all_tasks())
  n = int(jax.tree.leaves(tasks)[0].shape[0])
  keys = jax.random.split(jax.random.key(3), n)
  make = lambda e: jax.jit(jax.vmap(adeps.make_generate(e, steps=2000, streams=1, eps_floor=0.0,  # noqa: E731
                                                          decay_fraction=0.0, demonstrator="searcher")))
  assert common.with_search(env, {"search_detour": 0}) is env
  plain, away = (jax.device_get(make(e)(keys, tasks)) for e in (env, common.with_search(env, {"search_detour": 3})))
  assert env.search_detour == 0
  rets = [np.asarray(h.reward).reshape(n, 100, 20).sum(-1) for h in (plain, away)]
  acts = np.asarray(away.action).reshape(n, 100, 20)
  optimal = np.asarray(jax.vmap(env.optimal_return)(tasks))
  start = np.asarray(away.obs).reshape(n, 100, 20, 2)[:, :, 0]
  checked = 0
  for k in range(n):
    found = int((rets[0][k] > 0).argmax())
    np.testing.assert_array_equal(rets[1][k, :found + 1], rets[0][k, :found + 1])    # the same search
    for i, e in enumerate(range(found + 1, 100)):
      if i % 3 == 2:                                                  # the detour: it stays put
        assert (acts[k, e] == 0).all()
        at_goal = (start[k, e] == np.asarray(tasks.goal)[k]).all()
        assert rets[1][k, e] == (optimal[k] if at_goal else 0.0)
        checked += not at_goal
      else:
        assert rets[1][k, e] == pytest.approx(optimal[k])             # straight back to the goal
  assert checked > 20


def test_arm_validation_names_the_field():
  with pytest.raises(ValueError, match=r"^arms.x.portion"):
    datasets.validate_arm("x", {"portion": "middle"})
  with pytest.raises(ValueError, match=r"^arms.x.gap"):
    datasets.validate_arm("x", {"gap": 0})
  with pytest.raises(ValueError, match=r"^arms.x.fraction"):
    datasets.validate_arm("x", {"fraction": 0.0})
  with pytest.raises(ValueError, match=r"^arms.x.start: must be in \[0, 1\) and below arms.x.fraction"):
    datasets.validate_arm("x", {"portion": "first", "fraction": 0.3, "start": 0.3})
  with pytest.raises(ValueError, match=r"^arms.x.start: must be 0 with portion 'last'"):
    datasets.validate_arm("x", {"portion": "last", "fraction": 0.3, "start": 0.1})
  datasets.validate_arm("x", {"portion": "first", "fraction": 0.3, "start": 0.025})


def ragged_history():
  """[1, 1, 2, 30]: stream 0 has episodes of 3 steps, stream 1 of 7, its last unfinished (so a record-time gap leaves the
  streams different lengths and pads the shorter)."""
  t = np.arange(30)
  eps = [t // 3, t // 7]
  done = np.stack([(t % 3) == 2, (t % 7) == 6])
  reward = np.where(done, np.stack(eps) + 1.0, 0.0).astype(np.float32)
  lead = lambda x: np.asarray(x)[None, None]
  return History(obs=lead(np.stack([t, t + 100])[..., None].astype(np.int16)),
                 action=lead(np.stack([t % 4, t % 3])), reward=lead(reward),
                 terminated=lead(done), truncated=lead(np.zeros_like(done)),
                 episode=lead(np.stack(eps).astype(np.int32)), update=lead(np.stack([t, t]).astype(np.int32)))


@pytest.mark.parametrize("record_gap,arm_gap", [(2, 1), (2, 2), (2, 4), (3, 3), (3, 6)])
def test_record_time_gap_equals_selection_time_gap(record_gap, arm_gap):
  from cl_limits.histories.history import keep_every
  h = ragged_history()
  stored = keep_every(h, record_gap)
  assert (np.asarray(stored.episode) == -1).any()       # one stream keeps fewer steps and is padded
  assert stored.action.shape[-1] < h.action.shape[-1]
  want = datasets.select(h, gap=int(np.lcm(record_gap, arm_gap)))
  got = datasets.select(stored, gap=arm_gap)
  assert got.lengths.tolist() == want.lengths.tolist()
  for f in ("obs", "action", "reward", "done"):
    np.testing.assert_array_equal(getattr(got, f), getattr(want, f))
  assert got.episodes == want.episodes


def test_each_replicates_windows_come_from_its_own_teacher_only():
  """Three replicates (teacher seeds) whose rewards are 100 x seed + ...: window group a * R + r (the model
  of arm a, replicate r) starts only in replicate r's histories, so no imitator sees another run's data."""
  from cl_limits.histories import arms  # noqa: PLC0415
  one = toy_history()
  hist = jax.tree.map(lambda *xs: np.concatenate(xs, 0), *[
      one.replace(reward=np.asarray(one.reward) + 100.0 * r) for r in range(3)])        # [3, 1, 2, 20]
  arm_specs = {"ad": datasets.resolve_arm(dict(portion="first", fraction=0.6)),
               "bc": datasets.resolve_arm(dict(portion="last", fraction=0.4))}
  data, starts, n_starts, meta, _ = arms.build(arm_specs, {"teacher": (hist, {"env": "toy", "streams_per_learner": 2,
                                                                          "env_steps_per_learner": 40})},
                                            seq_len=4, replicates=3)
  assert starts.shape[0] == 6 and meta["arms"]["ad"]["replicates"] == 3
  assert meta["arms"]["ad"]["steps_per_replicate"] == [24, 24, 24]
  reward, done = np.asarray(data.reward), np.asarray(data.done)
  for g in range(6):
    r = g % 3
    idx = starts[g, :n_starts[g]][:, None] + np.arange(4)[None]
    paid = reward[idx][done[idx]]
    assert paid.size and ((paid >= 100 * r) & (paid < 100 * (r + 1))).all(), g
  with pytest.raises(ValueError, match="^num_seeds: 2 replicates, but the teacher histories hold 3"):
    arms.build(arm_specs, {"teacher": (hist, {"env": "toy", "streams_per_learner": 2, "env_steps_per_learner": 40})},
               seq_len=4, replicates=2)


def test_heldout_stream_is_cut_like_training_and_never_trained_on():
  """heldout_streams=1: every group trains on stream 0 only (obs[..., 1] == 0 in every window) and its
  held-out part is stream 1 cut the same way (the same kept episodes), with the behaviour record."""
  from cl_limits.histories import arms  # noqa: PLC0415
  one = toy_history(streams=2)
  one = one.replace(greedy=np.asarray(one.action), epsilon=np.full(np.asarray(one.action).shape, 0.25, np.float32))
  hist = jax.tree.map(lambda *xs: np.concatenate(xs, 0), one, one)                    # 2 replicates
  spec = {"ad": datasets.resolve_arm(dict(portion="first", fraction=0.6, gap=2))}
  src = {"teacher": (hist, {"env": "toy", "streams_per_learner": 2, "env_steps_per_learner": 40})}
  data, starts, n_starts, meta, heldout = arms.build(spec, src, seq_len=4, replicates=2, heldout_streams=1)
  obs = np.asarray(data.obs)
  for g in range(2):
    idx = starts[g, :n_starts[g]][:, None] + np.arange(4)[None]
    assert (obs[idx][..., 1] == 0).all()
  assert len(heldout) == 2
  train_eps = episodes_of(datasets.select(jax.tree.map(lambda x: np.asarray(x)[:1], hist), portion="first",
                                          fraction=0.6, gap=2, streams=1))
  for fd in heldout:
    assert (fd.obs[:, 1] == 1).all()
    assert [[r - 10 for r in h] for h in episodes_of(fd)] == train_eps     # same episodes, stream 1
    assert (fd.epsilon == 0.25).all() and (fd.greedy == fd.action).all()
  assert meta["arms"]["ad"]["trained_streams_per_learner"] == 1
  with pytest.raises(ValueError, match="^fidelity.heldout_streams: 2 held-out streams leave none"):
    arms.build(spec, src, seq_len=4, replicates=2, heldout_streams=2)


def test_behaviour_floor_is_the_epsilon_greedy_policys_entropy_and_best_accuracy():
  """datasets.behaviour_floor: at epsilon 1 the policy is uniform (entropy ln A, best accuracy 1 / A), at 0
  deterministic (0, 1); at 0.5 with 4 actions the greedy action has 0.625 and each other 0.125. Unrecorded
  steps (NaN) are left out; none recorded gives None."""
  f = datasets.behaviour_floor(np.array([1.0, 0.0, np.nan]), 4)
  assert f["steps"] == 2
  np.testing.assert_allclose(f["entropy"], np.log(4) / 2)
  np.testing.assert_allclose(f["accuracy"], (0.25 + 1.0) / 2)
  half = datasets.behaviour_floor(np.array([0.5]), 4)
  np.testing.assert_allclose(half["entropy"], -(0.625 * np.log(0.625) + 3 * 0.125 * np.log(0.125)))
  np.testing.assert_allclose(half["accuracy"], 0.625)
  assert datasets.behaviour_floor(np.array([np.nan, np.nan]), 4) is None


def test_memorising_flags_replicates_whose_training_loss_beats_the_behaviour_entropy():
  """The imitation stage's memorisation check: a replicate whose last training loss lies below its data's
  behaviour entropy is flagged and named in the log; an arm without a floor (relabelled) is left out."""
  from cl_limits.imitation import fidelity  # noqa: PLC0415
  meta = {"arms": {"ad": {"behaviour_floor": [{"entropy": 0.5}, {"entropy": 0.5}]}, "bc": {}}}
  lines = []
  out = fidelity.memorising(["ad", "bc"], meta, [[0.3, 0.7], [0.1, 0.1]], lines.append)
  assert out == {"ad": [True, False]}
  assert len(lines) == 1 and "1 of 2 replicates below it" in lines[0]
  assert fidelity.memorising(["ad"], meta, [[0.6, 0.7]], lines.append) == {"ad": [False, False]}
  assert "below it" not in lines[-1]
  assert "last training loss 0.300 to 0.700 over replicates" in lines[0] and "on its data 0.500 nats" in lines[0]
  # a deterministic behaviour policy's entropy, rounding below zero, reads 0.000
  det = {"arms": {"s": {"behaviour_floor": [{"entropy": -1e-12}, {"entropy": -2e-12}]}}}
  fidelity.memorising(["s"], det, [[0.004, 0.011]], lines.append)
  assert "on its data 0.000 nats" in lines[-1] and "-0.000" not in lines[-1]
