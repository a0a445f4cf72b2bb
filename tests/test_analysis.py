"""Ceiling, exceed and verdict computations on hand-made curves with known answers."""
import numpy as np
import pytest

from cl_limits.analysis import ceiling, stats, verdicts


def test_episode_matrix_keeps_whole_episodes_in_time_order():
  # One history of 3 episodes of 4 steps; rewards make returns 1, 2, 3; keep the episodes 0 and 2.
  reward = np.array([[0, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 0]], float)
  done = np.zeros_like(reward, bool)
  done[0, [3, 7, 11]] = True
  keep = np.ones_like(done)
  keep[0, 4:8] = False
  rets, ends = ceiling.episode_matrix(reward, done, keep)
  np.testing.assert_array_equal(rets, [[1.0, 3.0]])
  np.testing.assert_array_equal(ends, [[4, 12]])
  rets, _ = ceiling.episode_matrix(reward, done)
  np.testing.assert_array_equal(rets, [[1.0, 2.0, 3.0]])


def test_ceiling_is_the_best_full_window_of_the_population_curve():
  # Two histories; population curve = 0, 1, 2, 10, 2, 1 (one spike) -> window 1: 10 at episode 3;
  # window 3: best mean of 3 consecutive = (2 + 10 + 2) / 3 at the window ending at episode 4.
  a = np.array([0, 1, 2, 12, 2, 1], float)
  b = np.array([0, 1, 2, 8, 2, 1], float)
  r = np.stack([a, b])
  assert ceiling.ceiling(r, 1) == (10.0, 3)
  value, idx = ceiling.ceiling(r, 3)
  assert value == pytest.approx(14 / 3) and idx == 4
  # A window longer than the data averages all of it.
  assert ceiling.ceiling(r, 100)[0] == pytest.approx(16 / 6)


def test_ceiling_ignores_padding_of_shorter_histories():
  r = np.array([[1.0, 2.0, 3.0], [3.0, np.nan, np.nan]])
  # population curve 2, 2, 3 -> window 2: max(2, 2.5) = 2.5 ending at episode 2.
  assert ceiling.ceiling(r, 2) == (2.5, 2)
  with pytest.raises(ValueError, match="window must be >= 1"):
    ceiling.ceiling(r, 0)
  with pytest.raises(ValueError, match="some episodes"):
    ceiling.ceiling(np.full((2, 3), np.nan), 2)


def test_rising_learning_curve_cut_early_has_its_cut_value_as_ceiling():
  # Linear learning 0 -> 10 over 100 episodes, data cut at 25: ceiling = mean of the last 5 kept.
  curve = np.linspace(0, 10, 100)
  r = np.stack([curve[:25]] * 3)
  assert ceiling.ceiling(r, 5)[0] == pytest.approx(curve[20:25].mean())


@pytest.mark.parametrize("ci,verdict", [((0.9, 0.85, 0.95), "supported"), ((0.5, 0.4, 0.6), "refuted"),
                                        ((0.8, 0.7, 0.9), "inconclusive")])
def test_p1_verdicts(ci, verdict):
  assert verdicts.p1(ci, 0.8)[0] == verdict


def test_capacity_verdicts():
  assert verdicts.capacity((1.0, 0.5, 1.5))[0] == "refuted"
  assert verdicts.capacity((-1.0, -1.5, -0.1))[0] == "supported"
  assert verdicts.capacity((0.1, -0.5, 0.6))[0] == "inconclusive"


def test_step_weighted_means_weight_episodes_by_their_steps():
  from cl_limits.analysis import curves as learners
  # Episodes of 10, 30 and 60 steps (horizon 100) with returns 1, 2, 4; the last slot never finished.
  rets = np.array([[[1.0, 2.0, 4.0, np.nan]]])
  ends = np.array([[[10, 40, 100, -1]]])
  assert learners.step_mean(rets, ends)[0, 0] == pytest.approx((10 * 1 + 30 * 2 + 60 * 4) / 100)
  # Late = episodes ending in the last 50% of the steps: only the 60-step episode ends after step 50.
  assert learners.late_mean(rets, ends, 100, 0.5)[0, 0] == pytest.approx(4.0)
  assert learners.late_mean(rets, ends, 100, 0.7)[0, 0] == pytest.approx((30 * 2 + 60 * 4) / 90)
  x, y = learners.mean_curve(rets, ends, bins=2, horizon=100)
  np.testing.assert_allclose(x, [50, 100])
  np.testing.assert_allclose(y, [[1.5, 4.0]])


def test_p3_normalisation_and_verdicts():
  from cl_limits.analysis import scores as p3
  np.testing.assert_allclose(p3.normalise(np.array([[1.0, 3.0]]), np.array([1.0, 1.0]), np.array([3.0, 5.0])),
                             [[0.0, 0.5]])
  assert verdicts.p3((0.1, 0.0, 0.3), 0.8)[0] == "supported"
  assert verdicts.p3((0.9, 0.85, 1.0), 0.8)[0] == "refuted"
  assert verdicts.p3((0.7, 0.5, 0.9), 0.8)[0] == "inconclusive"
  assert verdicts.hybrid((0.5, 0.1, 0.9))[0] == "helps"
  assert verdicts.hybrid((-0.5, -0.9, -0.1))[0] == "hurts"
  assert verdicts.hybrid((0.0, -0.1, 0.1))[0] == "inconclusive"


def test_binned_curve_is_the_per_window_episode_mean():
  from cl_limits.analysis import curves as learners
  rets = np.array([[[1.0, 3.0, 5.0, 7.0, np.nan]]])
  ends = np.array([[[4, 10, 11, 30, -1]]])
  # windows (0, 10], (10, 20], (20, 30]: ends 4 and 10 fall in the first, 11 in the second, 30 in the third
  np.testing.assert_allclose(learners.binned_curve(rets, ends, bin_steps=10, num_bins=3)[0, 0], [2.0, 5.0, 7.0])
  np.testing.assert_allclose(learners.binned_curve(rets, ends, bin_steps=10, num_bins=4)[0, 0],
                             [2.0, 5.0, 7.0, np.nan])
  np.testing.assert_allclose(learners.binned_curve(rets, ends, bin_steps=15, num_bins=2)[0, 0], [3.0, 7.0])


def test_ceiling_as_fractions_of_each_tasks_optimum():
  """Two teacher tasks whose optima are 10 and 20, each teacher playing optimally throughout: the raw
  ceiling is 15 (the mean), the normalised ceiling and teachers' final are 1. An imitator playing optimally
  on held-out tasks whose optimum is 10 sits 5 below the raw ceiling and exactly at the normalised one."""
  from types import SimpleNamespace

  from cl_limits import envs
  from cl_limits.analysis import ceiling as p2
  # [seeds 1, tasks 2, streams 1, T 8]: episodes of 2 steps, return paid on the episode's last step.
  t = np.arange(8)
  done = np.broadcast_to(t % 2 == 1, (1, 2, 1, 8))
  reward = np.where(done, np.array([10.0, 20.0])[None, :, None, None], 0.0)
  hist = SimpleNamespace(terminated=np.zeros_like(done), truncated=done, reward=reward,
                         episode=np.broadcast_to(t // 2, (1, 2, 1, 8)))
  manifest = {"streams_per_learner": 1}
  arm = dict(portion="first", fraction=1.0, gap=1, streams=0)
  d = p2.arm_data_curves(hist, manifest, arm, window=2, optimum=np.array([10.0, 20.0]))
  assert d["ceiling"] == pytest.approx(15.0) and d["optimal_mean"] == pytest.approx(15.0)
  assert d["ceiling_norm"] == pytest.approx(1.0) and d["teacher_final_norm"] == pytest.approx(1.0)
  from cl_limits.analysis import replicates
  late = np.full((2, 3), 10.0)                         # replicates x held-out tasks, all at their optimum of 10
  np.testing.assert_allclose(replicates.in_unit(late, np.full(3, 10.0)) - d["ceiling_norm"], 0.0)
  np.testing.assert_allclose(d["data_curve_norm"], [1.0] * 4)
  with pytest.raises(ValueError, match="2 teacher tasks"):
    p2.arm_data_curves(hist, manifest, arm, window=2, optimum=np.array([10.0]))
  # DarkRoom's oracle: 20 - distance + 1 from the centre of a 9x9 room; none for a random start cell.
  room = envs.make("DarkRoom", size=9, episode_len=20)
  goals = [i for i, g in enumerate(np.asarray(room.all_tasks().goal)) if tuple(g) in ((4, 5), (0, 0))]
  np.testing.assert_allclose(sorted(p2.task_optimum(room, goals)), [13.0, 20.0])
  assert p2.task_optimum(envs.make("DarkRoom", size=9, episode_len=20, start="random"), goals) is None


def test_ceiling_is_the_larger_of_behaviour_and_greedy_at_the_cut_per_replicate():
  """Two replicates, one task of optimum 10; the teachers' greedy return 2, 6, 8, 9 after segments ending at
  100..400 steps (fractions 0.2 .. 0.9), data cut at 200. Behaviour ceilings 0.5 and 0.7: the ceilings are
  max(0.5, 0.6) = 0.6 and max(0.7, 0.6) = 0.7; the best greedy after the cut is 0.9, so the rises are 0.3
  and 0.2, mean 0.25 >= 0.2 x (1 - 0): headroom. Converged teachers (greedy at the optimum from the start)
  leave none; data without a greedy policy use their own continuation."""
  from cl_limits.analysis import replicates
  data = [{"ceiling": 5.0, "ceiling_norm": 0.5, "cut_learner_steps": 200, "teacher_final_norm": 0.95,
           "teacher_final": 9.5},
          {"ceiling": 7.0, "ceiling_norm": 0.7, "cut_learner_steps": 200, "teacher_final_norm": 0.95,
           "teacher_final": 9.5}]
  greedy = np.array([[[2.0, 6.0, 8.0, 9.0]], [[2.0, 6.0, 8.0, 9.0]]])       # [R 2, K 1, segments 4]
  steps = np.array([100, 200, 300, 400])
  c = replicates.ceilings(data, greedy, steps, np.array([10.0]))
  np.testing.assert_allclose(c["greedy_at_cut"], [0.6, 0.6])
  np.testing.assert_allclose(c["ceiling"], [0.6, 0.7])
  np.testing.assert_allclose(c["rise"], [0.3, 0.2])
  assert c["headroom"]["rise"] == pytest.approx(0.25) and c["headroom"]["needed"] == pytest.approx(0.2)
  assert c["headroom"]["ok"]
  flat = np.full((2, 1, 4), 10.0)
  assert not replicates.ceilings(data, flat, steps, np.array([10.0]))["headroom"]["ok"]
  none = replicates.ceilings(data, None, None, np.array([10.0]), random=0.05)
  np.testing.assert_allclose(none["ceiling"], [0.5, 0.7])
  np.testing.assert_allclose(none["rise"], [0.45, 0.25])
  assert none["headroom"]["needed"] == pytest.approx(0.19)
  # Raw units without an optimum: top = the teachers' final greedy return (9), random 1 -> needs 1.6.
  raw = replicates.ceilings(data, greedy, steps, None, random=1.0)
  np.testing.assert_allclose(raw["ceiling"], [6.0, 7.0])
  assert raw["headroom"]["needed"] == pytest.approx(1.6) and raw["headroom"]["ok"]


def test_headroom_reads_the_teachers_policy_that_the_protocol_plays_like():
  """Greedy teachers rise to 0.9 of the optimum after the cut, but at their epsilon floor (0.1) they end at
  0.65 (teacher_final_norm), with ceilings 0.6 and 0.7. An argmax protocol reads the greedy rise (0.25:
  headroom); epsilon 0.1 around the argmax, or sampling at temperature 1 from an imitator of the recorded
  actions, plays like the teachers' behaviour: rises 0.05 and -0.05, no headroom. Epsilon below the floor,
  a sharper temperature, or greedy labels keep the greedy basis (its upper bound)."""
  from cl_limits.analysis import replicates
  basis = replicates.headroom_basis
  assert basis(True, 1.0, 0.0, "greedy", 0.1) == "greedy"
  assert basis(True, 1.0, 0.1, "greedy", 0.1) == "behaviour"
  assert basis(True, 1.0, 0.05, "greedy", 0.1) == "greedy"
  assert basis(False, 1.0, 0.0, "action", 0.1) == "behaviour"
  assert basis(False, 0.5, 0.0, "action", 0.1) == "greedy"
  assert basis(False, 1.0, 0.0, "greedy", 0.1) == "greedy"
  assert basis(True, 1.0, 0.0, "action", 0.0) == "greedy"
  data = [{"ceiling": 5.0, "ceiling_norm": 0.5, "cut_learner_steps": 200, "teacher_final_norm": 0.65},
          {"ceiling": 7.0, "ceiling_norm": 0.7, "cut_learner_steps": 200, "teacher_final_norm": 0.65}]
  greedy = np.array([[[2.0, 6.0, 8.0, 9.0]], [[2.0, 6.0, 8.0, 9.0]]])
  steps = np.array([100, 200, 300, 400])
  g = replicates.ceilings(data, greedy, steps, np.array([10.0]))
  b = replicates.ceilings(data, greedy, steps, np.array([10.0]), basis="behaviour")
  assert g["headroom"]["ok"] and g["headroom"]["basis"] == "greedy"
  np.testing.assert_allclose(b["rise"], [0.05, -0.05])
  assert not b["headroom"]["ok"] and b["headroom"]["basis"] == "behaviour"
  # Both rises are kept either way, so another protocol can re-read the gate from a stored summary.
  np.testing.assert_allclose(g["behaviour_rise"], b["behaviour_rise"])
  np.testing.assert_allclose(b["greedy_rise"], [0.3, 0.2])
  assert replicates.headroom(g, "behaviour", 1.0, 0.0, 0.2) == b["headroom"]
  with pytest.raises(ValueError, match="re-run the P2 stage"):
    replicates.headroom({"rise": [0.3]}, "behaviour", 1.0, 0.0, 0.2)
  # A P2 summary entry written before both rises were kept (its "rise" was the greedy one) reads either way.
  old = {"rise": [0.3, 0.2], "greedy_at_cut": [0.6, 0.6], "ceiling": [0.6, 0.7], "teacher_final": [0.65, 0.65]}
  np.testing.assert_allclose(replicates.per_replicate_rise(old, "behaviour"), [0.05, -0.05])
  assert replicates.headroom(old, "greedy", 1.0, 0.0, 0.2)["rise"] == pytest.approx(g["headroom"]["rise"])
  # Data without a greedy policy read their own continuation whatever is asked.
  assert replicates.ceilings(data, None, None, np.array([10.0]))["headroom"]["basis"] == "behaviour"


def test_ad_epsilon_data_under_a_sharp_protocol_read_their_demonstrators_greedy_return():
  """AD-epsilon data (no teachers' greedy curves) whose demonstrator plays 0.9 and 0.8 of the optimum
  greedily, behaviour ceilings 0.5 / 0.7 at the cut, the generator's final behaviour 0.95. On the greedy
  basis (an argmax protocol) the demonstrator's return is the greedy return at the cut and after it: the
  ceilings are 0.9 / 0.8, the rises 0, so no headroom, where the behaviour basis read rises 0.45 / 0.25
  (the noise falling) and passed. The behaviour basis ignores the demonstrator, and a demonstrator below
  the behaviour ceiling still leaves a rise of at most 0."""
  from cl_limits.analysis import replicates
  data = [{"ceiling": 5.0, "ceiling_norm": 0.5, "cut_learner_steps": 200, "teacher_final_norm": 0.95},
          {"ceiling": 7.0, "ceiling_norm": 0.7, "cut_learner_steps": 200, "teacher_final_norm": 0.95}]
  opt = np.array([10.0])
  sharp = replicates.ceilings(data, None, None, opt, random=0.05, demonstrator=[0.9, 0.8])
  np.testing.assert_allclose(sharp["greedy_at_cut"], [0.9, 0.8])
  np.testing.assert_allclose(sharp["ceiling"], [0.9, 0.8])
  np.testing.assert_allclose(sharp["rise"], [0.0, 0.0])
  np.testing.assert_allclose(sharp["greedy_rise"], [0.0, 0.0])
  np.testing.assert_allclose(sharp["behaviour_rise"], [0.05, 0.15])
  assert sharp["headroom"]["basis"] == "greedy" and not sharp["headroom"]["ok"]
  sampled = replicates.ceilings(data, None, None, opt, random=0.05, demonstrator=[0.9, 0.8], basis="behaviour")
  plain = replicates.ceilings(data, None, None, opt, random=0.05)
  for k in ("ceiling", "rise", "greedy_at_cut", "greedy_rise"):
    assert sampled[k] == plain[k], k
  assert sampled["headroom"] == plain["headroom"] and plain["headroom"]["ok"]
  low = replicates.ceilings(data, None, None, opt, demonstrator=[0.3, 0.3])
  np.testing.assert_allclose(low["ceiling"], [0.5, 0.7])
  np.testing.assert_allclose(low["rise"], [-0.2, -0.4])
  # Raw units (no optimum): the top of the range is the demonstrator's greedy return.
  raw = replicates.ceilings([{**d, "teacher_final": 9.5} for d in data], None, None, None, random=1.0,
                            demonstrator=[9.0, 8.0])
  assert raw["headroom"]["top"] == pytest.approx(8.5) and raw["headroom"]["needed"] == pytest.approx(1.5)


def test_the_demonstrators_greedy_return_is_the_oracles_optimum_or_the_final_dqns_last_evaluation():
  import ml_collections
  from cl_limits.stages import artifacts
  cfg = lambda demo: ml_collections.ConfigDict({"imitation": {"ad_eps": {"demonstrator": demo}}})
  greedy = np.array([[[1.0, 4.0, 6.0], [1.0, 2.0, 8.0]], [[0.0, 3.0, 5.0], [0.0, 3.0, 3.0]]])   # [R 2, K 2, 3]
  assert artifacts.demonstrator_greedy(cfg("oracle"), greedy, np.array([10.0, 20.0]), 2) == [1.0, 1.0]
  assert artifacts.demonstrator_greedy(cfg("oracle"), greedy, None, 2) is None
  np.testing.assert_allclose(artifacts.demonstrator_greedy(cfg("teacher"), greedy, None, 2), [7.0, 4.0])
  np.testing.assert_allclose(artifacts.demonstrator_greedy(cfg("teacher"), greedy, np.array([10.0, 20.0]), 2),
                             [0.5, 0.325])
  assert artifacts.demonstrator_greedy(cfg("teacher"), None, None, 2) is None


def test_competence_is_a_gain_over_random_at_the_end_of_the_data_with_an_interval():
  """Imitators' last episodes (the data's kept window: 2 episodes) at 0.45 and 0.40 of an optimum of 10,
  their data's last kept episodes at 0.5, random 0.05: gains 0.4 / 0.45 and 0.35 / 0.45, both above 0.75,
  yet two replicates' t-interval reaches far below it, so the gate fails; five close replicates pass."""
  from cl_limits.analysis import replicates
  rets = np.zeros((2, 1, 20))
  rets[0, :, -2:], rets[1, :, -2:] = 4.5, 4.0                     # only the last kept window counts
  data = [{"data_curve_norm": np.array([0.1, 0.3, 0.5, 0.5]), "ceiling_kept_window": 2}] * 2
  c = replicates.competence(rets, data, np.array([10.0]), 0.05, 0.75)
  np.testing.assert_allclose(c["per_replicate"], [0.4 / 0.45, 0.35 / 0.45])
  np.testing.assert_allclose(c["imitator_end"], [0.45, 0.40])
  np.testing.assert_allclose(c["data_end"], [0.5, 0.5])
  assert c["interval"]["estimate"] == pytest.approx(0.375 / 0.45) and c["interval"]["low"] < 0.75
  assert not c["ok"]
  five = np.zeros((5, 1, 20))
  five[:, :, -2:] = np.array([4.6, 4.7, 4.8, 4.6, 4.7])[:, None, None]
  c5 = replicates.competence(five, [data[0]] * 5, np.array([10.0]), 0.05, 0.75)
  assert c5["ok"] and c5["interval"]["low"] > 0.9
  # Data whose end is not above random: the gain is undefined and the gate cannot pass.
  flat = [{"data_curve_norm": np.array([0.05, 0.05]), "ceiling_kept_window": 1}] * 5
  cf = replicates.competence(five, flat, np.array([10.0]), 0.05, 0.75)
  assert cf["interval"] is None and not cf["ok"]
  verdict, _ = verdicts.p2_gated((-0.2, -0.3, -0.1), 0.5, 0.2, c5["ok"])
  assert verdict == "supported"
  assert verdicts.p2_gated((-0.2, -0.3, -0.1), 0.5, 0.2, c["ok"])[0] == "inconclusive: imitator below its data"


def test_competence_averages_several_rollouts_per_task_and_its_clone_as_many_streams():
  """Three rollouts of each of two tasks ([M x K] = tasks 0, 1, 0, 1, 0, 1; optima 10 and 20): a
  replicate's value is the mean over all six rollouts' last episodes, each in its own task's unit. The
  clone with M rollouts reads the mean end of the last min(M, streams // 2) streams against the others' (two
  disjoint sets); with one it is the held-out stream against the rest."""
  from cl_limits.analysis import clone, replicates
  ends = [0.2, 0.4, 0.6]                                            # rollouts 0, 1, 2 end at these fractions
  rets = np.zeros((2, 6, 10))
  for m, e in enumerate(ends):
    rets[:, 2 * m, -2:], rets[:, 2 * m + 1, -2:] = 10 * e, 20 * e   # task 0 (optimum 10), task 1 (optimum 20)
  rets[1] *= 1.5
  data = [{"data_curve_norm": np.array([0.1, 0.5, 0.5]), "ceiling_kept_window": 2,
           "stream_end_norm": np.array([0.4, 0.5, 0.6, 0.3])}] * 2
  c = replicates.competence(rets, data, np.tile([10.0, 20.0], 3), 0.0, 0.75, rollouts=3)
  np.testing.assert_allclose(c["imitator_end"], [0.4, 0.6])
  np.testing.assert_allclose(c["per_replicate"], [0.8, 1.2])
  assert c["rollouts"] == 3
  # The clone: 4 streams, so the last 2 (0.6, 0.3) against the first 2 (0.4, 0.5).
  np.testing.assert_allclose(c["clone"]["per_replicate"], [0.45 / 0.45] * 2)
  assert c["clone"]["streams_used"] == 2
  # Streams whose ends are noise around 0.5: the disjoint clone keeps their spread (a leave-one-out mean of
  # ratios would read about 1 at every replicate).
  rng = np.random.default_rng(0)
  noisy = [{**data[0], "stream_end_norm": rng.uniform(0.1, 0.9, 8)} for _ in range(5)]
  spread = np.std(clone.clone_competence(noisy, True, 0.0, 0.75, rollouts=8)["per_replicate"])
  assert clone.clone_competence(noisy, True, 0.0, 0.75, rollouts=8)["streams_used"] == 4 and spread > 0.1
  one = clone.clone_competence(data, True, 0.0, 0.75)
  np.testing.assert_allclose(one["per_replicate"], [0.3 / 0.5] * 2)
  assert one["streams_used"] == 1
  assert clone.clone_competence(data, True, 0.0, 0.75, rollouts=8)["streams_used"] == 2   # half the streams


def test_an_imitator_below_its_data_late_in_the_rollout_has_collapsed():
  """Late windows 0.2 under a data end of 0.5 (top 1, random 0): -0.3 of the range, past the 0.1 margin."""
  from cl_limits.analysis import replicates
  data = [{"data_curve_norm": np.array([0.1, 0.5]), "ceiling_kept_window": 1}] * 4
  gone = replicates.held_data([0.2, 0.21, 0.19, 0.2], data, True, 1.0, 0.0, 0.1)
  kept = replicates.held_data([0.5, 0.52, 0.48, 0.5], data, True, 1.0, 0.0, 0.1)
  assert not gone["ok"] and np.allclose(gone["per_replicate"], [-0.3, -0.29, -0.31, -0.3])
  assert kept["ok"]
  below = (-0.3, -0.4, -0.2)
  assert verdicts.p2_gated(below, 0.5, 0.2, True, held_ok=False)[0] == "inconclusive: imitator collapsed"
  assert verdicts.p2_gated(below, 0.5, 0.2, True, held_ok=True)[0] == "supported"
  assert verdicts.p2_gated((0.3, 0.2, 0.4), 0.5, 0.2, True, held_ok=False)[0] == "refuted"
  # An interval that straddles 0 names the collapse too, and competence before it.
  assert verdicts.p2_gated((0.0, -0.1, 0.1), 0.5, 0.2, True, held_ok=False)[0] == "inconclusive: imitator collapsed"
  assert verdicts.p2_gated((0.0, -0.1, 0.1), 0.5, 0.2, False, held_ok=False)[0] == \
      "inconclusive: imitator below its data"
  assert verdicts.p2_gated((0.0, -0.1, 0.1), 0.5, 0.2, True, held_ok=True)[0] == "inconclusive"


def test_p3_score_known_answer():
  """One task, DQN logging windows of 10 steps over 40: the DQN's curve 0, 2, 4, 4 (final = the last half
  of the windows = 4), a random policy at 1 per episode (AUC 1). Imitator seed 0 goes 1, 1, 4, 4 (AUC 2.5,
  final 4), seed 1 stays at 1. Normalised (x - 1) / (4 - 1): seed 0 AUC 0.5, final 1; seed 1 0 and 0."""
  from cl_limits.analysis import scores
  ends = np.array([[[10, 20, 30, 40]]])
  frozen = (np.array([[[1.0, 1.0, 4.0, 4.0]], [[1.0, 1.0, 1.0, 1.0]]]), np.repeat(ends, 2, 0))
  random = (np.ones((1, 1, 4)), ends)
  dqn = np.array([[[0.0, 2.0, 4.0, 4.0]]])
  out = scores.score({"frozen": frozen}, random, dqn, bin_steps=10, horizon=40, frac=0.5, log=lambda *_: None)
  assert out["tasks_used"] == 1 and out["bins"] == 4 and out["late_bins"] == 2
  assert out["random_return"] == [1.0] and out["dqn_final_return"] == [4.0]
  f = out["learners"]["frozen"]
  assert f["auc"][0] == pytest.approx(0.25) and f["final"][0] == pytest.approx(0.5)   # mean of 2 replicates
  assert f["final_per_replicate"] == pytest.approx([1.0, 0.0]) and f["replicates"] == 2
  # t-interval on 1 degree of freedom: 0.5 +- 12.706 * 0.7071 / sqrt(2)
  assert f["final"][1] == pytest.approx(0.5 - 6.353, abs=1e-3) and f["final"][2] == pytest.approx(0.5 + 6.353, abs=1e-3)
  assert f["final_raw"] == pytest.approx(2.5) and f["auc_raw"] == pytest.approx(1.75)
  d = out["learners"]["dqn"]
  assert d["final"][0] == pytest.approx(1.0) and d["auc"][0] == pytest.approx(0.5)
  # A DQN that never beats the random policy gives nothing to normalise by.
  flat = scores.score({"frozen": frozen}, random, np.ones((1, 1, 4)), 10, 40, 0.5, log=lambda *_: None)
  assert flat["tasks_used"] == 0 and flat["learners"] == {} and "did not beat" in flat["note"]


def test_segment_bins_put_a_segments_last_step_in_its_own_window():
  """Teacher segments of 400 learner steps, 2 streams, logging windows of 200: an episode ending at the
  segment's last stream step (learner step 400) belongs to window (200, 400], not to the next segment's."""
  from cl_limits.teachers import population
  ep_ret = np.full((1, 1, 2, 200), np.nan)          # [seeds, tasks, streams, stream steps]
  ep_ret[0, 0, 0, 199] = 5.0                        # learner step 0 + 200 * 2 = 400
  ep_ret[0, 0, 1, 99] = 3.0                         # learner step 200: window (0, 200]
  sums, counts = population.segment_curve_bins(ep_ret, 0, 2, 200, 1_200)
  np.testing.assert_array_equal(counts[0, 0], [1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(sums[0, 0], [3, 5, 0, 0, 0, 0])
  # The next segment (learner steps 400-800): its first stream step is learner step 402, window (400, 600].
  ep_ret2 = np.full((1, 1, 2, 200), np.nan)
  ep_ret2[0, 0, 0, 0] = 7.0
  sums2, counts2 = population.segment_curve_bins(ep_ret2, 400, 2, 200, 1_200)
  np.testing.assert_array_equal(counts2[0, 0], [0, 0, 1, 0, 0, 0])


def test_replicate_interval_is_a_t_interval_over_per_replicate_means():
  """A [replicates 4, tasks 10] matrix with a shared replicate effect (one model evaluated on every task):
  the interval is mean +- t(0.975, 3) * sd(row means) / sqrt(4), whatever the spread inside a row; an
  interval that resampled tasks independently would be far narrower."""
  effect = np.array([-1.0, 0.0, 0.5, 2.5])
  noise = np.tile(np.linspace(-3, 3, 10), (4, 1))          # within-replicate spread, mean 0 per row
  x = 10.0 + effect[:, None] + noise
  out = stats.replicate_interval(x)
  t975 = 3.182446305284263                                   # Student t, 3 df
  half = t975 * np.std(effect, ddof=1) / 2.0
  assert out["estimate"] == pytest.approx(10.5) and out["n"] == 4
  assert (out["low"], out["high"]) == (pytest.approx(10.5 - half), pytest.approx(10.5 + half))
  np.testing.assert_allclose(out["per_replicate"], 10.0 + effect)
  assert "bootstrap" not in out and "3 df" in out["method"]
  # From 10 replicates on, a whole-replicate bootstrap is given beside it, within the same range.
  many = stats.replicate_interval(np.arange(12.0)[:, None] + np.zeros((12, 3)))
  lo, hi = many["bootstrap"]
  assert many["low"] < lo < 5.5 < hi < many["high"]
  with pytest.raises(ValueError, match="non-finite"):
    stats.replicate_interval(np.array([1.0, np.nan]))


@pytest.mark.parametrize("diff,headroom,competence,want", [
    ((-0.3, -0.4, -0.2), 0.05, True, "inconclusive: no headroom"),     # teachers did not improve either
    ((-0.3, -0.4, -0.2), 0.5, False, "inconclusive: imitator below its data"),
    ((-0.3, -0.4, -0.2), 0.5, True, "supported"),
    ((0.3, 0.2, 0.4), 0.5, False, "refuted"),                          # passing the ceiling needs no gate
    ((0.0, -0.1, 0.1), 0.5, True, "inconclusive"),
    ((0.0, -0.1, 0.1), 0.5, False, "inconclusive: imitator below its data"),   # the failed gate is the reason
])
def test_p2_gates(diff, headroom, competence, want):
  assert verdicts.p2_gated(diff, headroom, 0.2, competence)[0] == want


def test_power_control_refutes_on_curves_that_keep_improving():
  """Synthetic improving data: five replicates whose late return exceeds a ceiling by about 0.3, with
  headroom; the gated P2 rule on a replicate interval says refuted, and the control row says so."""
  late_minus_ceiling = np.array([0.25, 0.3, 0.35, 0.28, 0.33])[:, None] + np.zeros((5, 4))
  ci = stats.as_ci(stats.replicate_interval(late_minus_ceiling))
  verdict, _ = verdicts.p2_gated(ci, headroom=0.5, headroom_needed=0.2, competence_ok=True)
  assert verdict == "refuted"
  assert verdicts.power_control(verdict) == "the P2 test can say refuted on data that allow it"
  assert "has not been shown" in verdicts.power_control("supported")


def test_log_episode_slope_known_answers():
  """return = 2 + 0.5 log(episode) has slope 0.5 over any part of the rollout; a flat one has 0; an
  unfinished tail is skipped."""
  from cl_limits.analysis import curves
  e = np.arange(1, 101, dtype=np.float64)
  rets = np.stack([2 + 0.5 * np.log(e), np.full(100, 3.0)])
  np.testing.assert_allclose(curves.log_episode_slope(rets), [0.5, 0.0], atol=1e-12)
  rets[0, 90:] = np.nan
  assert curves.log_episode_slope(rets)[0] == pytest.approx(0.5)
  assert np.isnan(curves.log_episode_slope(np.array([[1.0, np.nan, np.nan, np.nan]]))[0])


@pytest.mark.parametrize("slope,headroom,want", [
    ((0.3, 0.1, 0.5), 0.5, "refuted"),                    # still rising
    ((0.0, -0.05, 0.05), 0.5, "supported"),               # flat: below the margin 0.1 / ln 2
    ((0.1, -0.05, 0.25), 0.5, "inconclusive"),
    ((0.3, 0.1, 0.5), 0.1, "inconclusive: no headroom"),
])
def test_trend_rule(slope, headroom, want):
  assert verdicts.trend(slope, headroom, 0.2, 1.0, 0.0)[0] == want


def test_the_split_ceiling_removes_the_in_sample_maximums_bias():
  """Pure noise around a flat 1.0: the in-sample best window is above 1 by selection alone; choosing the
  window on the even streams and reading it on the odd ones (and the other way round) is not."""
  from cl_limits.analysis import ceiling as ceiling_lib
  rng = np.random.default_rng(0)
  split, best = [], []
  for _ in range(200):
    r = 1.0 + rng.normal(0.0, 1.0, (4, 100))                  # 4 streams, 100 episodes
    a, b = ceiling_lib.split_ceiling(r, 5, 4)
    split.append(a)
    best.append(b)
  assert np.mean(best) > 1.3                                   # the maximum over ~96 windows of noise
  assert abs(np.mean(split) - 1.0) < 0.05                      # unbiased within noise (SE ~ 0.025)
  # A real peak is found by both halves: a rise to 3 in episodes 40-49 of every stream.
  r = np.ones((4, 100))
  r[:, 40:50] = 3.0
  assert ceiling_lib.split_ceiling(r, 10, 4) == (pytest.approx(3.0), pytest.approx(3.0))
  assert ceiling_lib.split_ceiling(r[:1], 10, 1)[0] == pytest.approx(3.0)       # one stream: nothing to split


def test_greedy_at_the_cut_is_interpolated_at_each_replicates_own_cut():
  from cl_limits.analysis import replicates
  steps = np.array([2000, 4000, 6000])
  greedy = np.array([[[0.2, 0.6, 1.0]], [[0.1, 0.5, 0.9]]])                 # [R=2, K=1, segments]
  data = [{"ceiling": 0.0, "cut_learner_steps": 3990, "teacher_final": 0.0},
          {"ceiling": 0.0, "cut_learner_steps": 5000, "teacher_final": 0.0}]
  c = replicates.ceilings(data, greedy, steps, None, random=0.0)
  assert c["greedy_at_cut"] == [pytest.approx(0.2 + 0.4 * 1990 / 2000), pytest.approx(0.7)]
  assert c["cut"] == [3990, 5000]


def test_late_windows_are_read_at_each_replicates_own_end():
  """Variable-length episodes: replicate 0 finished 10 episodes (rising to 1), replicate 1 only 4 (its
  last one 0.5). Each is read at its own end, not cut to the shorter row's count."""
  from cl_limits.analysis import replicates
  r = np.full((2, 1, 10), np.nan)
  r[0, 0] = np.linspace(0.1, 1.0, 10)
  r[1, 0, :4] = [0.2, 0.3, 0.4, 0.5]
  np.testing.assert_allclose(replicates.own_late(r, 0.2), [0.95, 0.5])      # 2 of 10, 1 of 4
  slopes = replicates.own_trend(r, 0.5)
  assert slopes[0] > 0 and slopes[1] > 0 and np.isfinite(slopes).all()


def test_competence_reads_each_rollouts_own_last_episodes():
  """Variable-length rollouts are NaN past each row's end: the imitator's end is its own last episodes."""
  from cl_limits.analysis import replicates
  rets = np.full((3, 1, 8), np.nan)
  rets[:, 0, :5] = [0.0, 0.0, 0.0, 4.0, 4.0]
  rets[1, 0, 5:] = [0.0, 5.0, 5.0]                                  # a longer row ends at 5
  data = [{"data_curve": np.array([1.0, 4.0, 4.0]), "ceiling_kept_window": 2}] * 3
  c = replicates.competence(rets, data, None, 0.0, 0.75)
  np.testing.assert_allclose(c["imitator_end"], [4.0, 5.0, 4.0])
  assert c["interval"] is not None and np.allclose(c["per_replicate"], [1.0, 1.25, 1.0])


def test_the_data_axis_starts_where_the_kept_data_begins():
  """Episodes of 2 steps in 2 streams of 8 steps: an arm whose start is 0.3 keeps the episodes that begin at or
  after step 2, so its data begin at stream step 2 after 1 dropped episode; the figures then draw an imitator's
  step s at learner step (2 + s x gap) x 2, and the known positive (the generator from its cut) from the cut."""
  from types import SimpleNamespace

  from cl_limits.analysis import ceiling
  from cl_limits.stages import p2_figures
  t = np.arange(8)
  done = np.broadcast_to(t % 2 == 1, (1, 1, 2, 8))
  hist = SimpleNamespace(terminated=np.zeros_like(done), truncated=done, reward=np.where(done, 1.0, 0.0),
                         episode=np.broadcast_to(t // 2, (1, 1, 2, 8)))
  manifest = {"streams_per_learner": 2}
  base = dict(portion="first", fraction=1.0, gap=1, streams=0)
  d0 = ceiling.arm_data_curves(hist, manifest, base, window=1)
  assert (d0["first_kept_stream_step"], d0["dropped_episodes"]) == (0.0, 0.0)
  d = ceiling.arm_data_curves(hist, manifest, {**base, "start": 0.3}, window=1)
  assert (d["first_kept_stream_step"], d["dropped_episodes"]) == (2.0, 1.0)
  assert d["cut_stream_steps"] == 8 and d["cut_learner_steps"] == 16
  a = p2_figures.axis_arrays("x", "p2", {**base, "gap": 3}, [d0, d])
  np.testing.assert_allclose(a["x/axis_x0"], [0.0, 4.0])
  assert float(a["x/axis_scale"]) == 6.0
  np.testing.assert_allclose(a["x/axis_dropped"], [0.0, 1.0])
  k = p2_figures.axis_arrays("k", "known_positive", base, [d])
  np.testing.assert_allclose(k["k/axis_x0"], [16.0])
  assert float(k["k/axis_scale"]) == 2.0


def test_smooth_log_widens_its_window_with_the_episode_and_skips_nans():
  from cl_limits.stages.p2_figures import smooth_log
  x = np.arange(1, 101, dtype=float)
  s = smooth_log(x, 5)
  assert s[19] == pytest.approx(18.0)          # episode 20: the last 5 (10% of 20 is 2)
  assert s[99] == pytest.approx(95.5)          # episode 100: the last 10 (10% of 100)
  np.testing.assert_allclose(smooth_log([1.0, np.nan, 3.0], 2), [1.0, 1.0, 3.0])
  assert np.isnan(smooth_log([np.nan, np.nan, 3.0], 1)[1])


def test_tb_runs_puts_the_imitator_on_its_datas_learner_axis():
  from cl_limits.stages import p2_figures
  arrays = {"a/axis_x0": np.array([4.0, 8.0]), "a/axis_scale": np.array(6.0)}
  ends = np.array([[[10.0, 20.0]], [[5.0, np.nan]]])                       # [R 2, K 1, E 2]
  (runs, horizon) = p2_figures.tb_runs(arrays, "a", np.ones_like(ends), ends, 30)
  np.testing.assert_allclose(runs["imitator"][1], [[[64.0, 124.0]], [[38.0, np.nan]]])
  assert horizon == 8 + 6 * 30


def test_competence_of_a_replicate_that_finished_no_episode_is_nan_without_a_warning():
  """A competence rollout shorter than its first episode (a generator continued into a 1,000-step episode)
  finishes nothing: that replicate's gain is NaN, the gate not measurable, and numpy says nothing."""
  import warnings  # noqa: PLC0415
  from cl_limits.analysis import replicates  # noqa: PLC0415
  data = [{"data_curve": np.array([1.0, 3.0, 16.0]), "ceiling_kept_window": 2}] * 3
  rets = np.full((3, 1, 4), np.nan)
  rets[1:, 0, :2] = [3.0, 16.0]
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    c = replicates.competence(rets, data, None, 0.5, 0.75)
  assert np.isnan(c["per_replicate"][0]) and np.allclose(c["per_replicate"][1:], 1.0)
  assert c["interval"] is None and not c["ok"]
