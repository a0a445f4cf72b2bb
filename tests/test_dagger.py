"""DAgger's parts: a learner's labels on recorded rollouts, and models drawing from their own parts."""
import jax
import jax.numpy as jnp
import numpy as np

from cl_limits import envs
from cl_limits.histories import datasets
from cl_limits.histories.history import History
from cl_limits.imitation import dagger
from cl_limits.imitation import learner
from cl_limits.teachers import dqn
from conftest import tiny_dqn


def _walks(key, s, k, r, t, size=5):
  """Random walks on DarkRoom [s, k, r, t] as a rollout records them (and their real next cells)."""
  from cl_limits.envs.grid import _move  # noqa: PLC0415
  action = np.asarray(jax.random.randint(key, (s, k, r, t), 0, 5), np.int32)
  pos = np.zeros((s, k, r, t + 1, 2), np.int8)
  pos[..., 0, :] = size // 2
  ep = 10
  for i in range(t):
    start = (i % ep) == 0
    cur = np.where(start, size // 2, pos[..., i, :]) if i else pos[..., 0, :]
    pos[..., i, :] = cur
    pos[..., i + 1, :] = np.asarray(_move(jnp.asarray(cur, jnp.int32), jnp.asarray(action[..., i]), size))
  truncated = np.broadcast_to((np.arange(t) % ep) == ep - 1, (s, k, r, t)).copy()
  hist = History(obs=pos[..., :t, :], action=action, reward=np.zeros((s, k, r, t), np.float32),
                 terminated=np.zeros((s, k, r, t), bool), truncated=truncated,
                 episode=np.broadcast_to(np.arange(t) // ep, (s, k, r, t)).astype(np.int32),
                 update=np.broadcast_to(np.arange(t), (s, k, r, t)).astype(np.int32),
                 greedy=action.copy(), epsilon=np.ones((s, k, r, t), np.float32))
  return hist, pos[..., 1:, :]


def test_labels_are_each_groups_dqn_following_its_rollouts_as_its_streams():
  """With num_envs = 2, rollouts (0, 1) and (2, 3) of each task are one DQN's two streams: the labels
  equal `follow` called on each group with its own key and task, and a group's labels do not depend on
  another group's rollouts."""
  env = envs.make("DarkRoom", size=5)
  teacher = dqn.make_teacher(tiny_dqn(num_envs=2, total_steps=400, segment_steps=400, learning_starts=40,
                                      train_every=2, gamma=0.9), env)
  tasks = envs.select_tasks(env.all_tasks(), [3, 20])
  hist, nxt = _walks(jax.random.key(0), 2, 2, 4, 60)
  hist = hist.replace(reward=(np.asarray(nxt) == np.asarray(tasks.goal)[None, :, None, None]).all(-1).astype(np.float32))
  keys = jax.random.split(jax.random.key(1), 2 * 2 * 2).reshape(2, 2, 2)
  labels = dagger.labels_of(teacher.follow, 2, keys, tasks, hist, nxt)
  assert labels.shape == (2, 2, 4, 60)
  s, k, g = 1, 1, 1
  one = dqn.Transitions(obs=hist.obs[s, k, 2 * g:2 * g + 2], action=hist.action[s, k, 2 * g:2 * g + 2],
                        reward=hist.reward[s, k, 2 * g:2 * g + 2], terminated=hist.terminated[s, k, 2 * g:2 * g + 2],
                        next_obs=nxt[s, k, 2 * g:2 * g + 2])
  direct = np.asarray(jax.jit(teacher.follow)(keys[s, k, g], jax.tree.map(lambda x: x[k], tasks), one))
  np.testing.assert_array_equal(labels[s, k, 2:4], direct)
  changed = hist.replace(action=hist.action.copy())
  changed.action[s, k, 0:2] = (changed.action[s, k, 0:2] + 1) % 5
  again = dagger.labels_of(teacher.follow, 2, keys, tasks, changed, nxt)
  np.testing.assert_array_equal(again[s, k, 2:4], labels[s, k, 2:4])
  assert (again[s, k, 0:2] != labels[s, k, 0:2]).any()


def test_rollouts_per_task_must_fill_the_teachers_streams():
  env = envs.make("DarkRoom", size=5)
  teacher = dqn.make_teacher(tiny_dqn(num_envs=2, total_steps=400, segment_steps=400, train_every=2), env)
  hist, nxt = _walks(jax.random.key(0), 1, 1, 3, 20)
  try:
    dagger.labels_of(teacher.follow, 2, None, None, hist, nxt)
  except ValueError as e:
    assert "rollouts per task: 3 is not a multiple of the teachers' num_envs=2" in str(e)
  else:
    raise AssertionError("3 rollouts for 2 streams per DQN were accepted")


def test_labelled_rollouts_keep_the_imitators_marks_and_train_on_the_labels():
  """The training data of labelled rollouts: labels from the learner, exploration marks as the imitator
  saw them when acting (its action against its own choice, not against the label)."""
  hist, _ = _walks(jax.random.key(2), 1, 2, 2, 30)
  choice = hist.action.copy()
  choice[..., ::3] = (choice[..., ::3] + 1) % 5                    # a third of the steps explored
  hist = hist.replace(greedy=choice)
  labels = np.asarray(jax.random.randint(jax.random.key(3), hist.action.shape, 0, 5), np.int32)
  fd = dagger.flat(hist, labels)
  assert fd.num_steps == 2 * 2 * 30
  np.testing.assert_array_equal(fd.label, labels.reshape(-1))
  dev = datasets.to_device(fd)
  np.testing.assert_array_equal(np.asarray(dev.explore), (hist.action != choice).reshape(-1))
  np.testing.assert_allclose(dagger.label_agreement(choice, labels), [(choice == labels).mean()])


def test_each_group_draws_only_from_its_own_parts_in_proportion_to_their_steps():
  parts = []
  for i, n in enumerate((200, 100, 300)):
    h, _ = _walks(jax.random.key(10 + i), 1, 1, 1, n)
    parts.append(dagger.flat(h, np.full(h.action.shape, i, np.int32)))     # label = the part's index
  data, starts, n_starts = dagger.grouped_data(parts, [[0], [1, 2]], seq_len=20)
  assert data.action.shape[0] == 600                                           # every part once
  label = np.asarray(data.label)
  for g, allowed in ((0, {0}), (1, {1, 2})):
    idx, valid = learner.draw_windows(jax.random.key(g), data, jnp.asarray(starts), jnp.asarray(n_starts),
                                      g, 2_000, 20)
    seen = label[np.asarray(idx)[np.asarray(valid)]]
    assert set(np.unique(seen).tolist()) == allowed
    if g == 1:
      share = (seen == 2).mean()
      assert abs(share - 300 / 400) < 0.05, share


def test_a_p2_row_reads_headroom_on_the_policy_its_protocol_plays_like():
  """A Breakout-like stage entry from before both rises were kept: the teachers' greedy policy rose 3 past
  the ceilings (7, 8), their behaviour at the floor (epsilon 0.1) ends at 8 and 8.5 (rises 1 and 0.5).
  Played at argmax the row has headroom (needs 0.2 x (16 - 1) = 3); with epsilon 0.1 around the argmax, the
  DAgger test's protocol, it plays like the teachers' behaviour and has none: the verdict says so."""
  import types  # noqa: PLC0415

  import ml_collections  # noqa: PLC0415

  from cl_limits.report import gates  # noqa: PLC0415
  from experiments import arm_rollouts  # noqa: PLC0415 (not experiments.dagger: its absl flags)
  config = ml_collections.ConfigDict({"teacher": {"dqn": {"eps_end": 0.1}}})
  r = types.SimpleNamespace(arm={"labels": "greedy"})
  iv = {"estimate": -1.0, "low": -2.0, "high": -0.1}
  entry = {"per_replicate": {"rise": [3.0, 3.0], "greedy_at_cut": [7.0, 6.0], "ceiling": [7.0, 8.0],
                             "teacher_final": [8.0, 8.5], "late": [6.0, 7.0]},
           "headroom": {"rise": 3.0, "needed": 3.0, "ok": True, "top": 16.0, "random": 1.0, "fraction": 0.2},
           "learning": {"ok": True, "interval": {"estimate": 0.3, "low": 0.2, "high": 0.4}, "per_replicate": [0.3, 0.3],
                        "needed": 0.1},
           "late_minus_ceiling": iv, "ceiling": iv,
           "competence": {"ok": True, "needed": 0.75, "interval": {"estimate": 1.0, "low": 0.9, "high": 1.1},
                          "per_replicate": [1.0, 1.0], "horizon_steps": 100}}
  argmax = {"greedy": True, "temperature": 1.0, "epsilon": 0.0, "epsilon_decay": 0}
  floor = {**argmax, "epsilon": 0.1, "epsilon_decay": 12_500}
  reread = lambda p, e=entry: arm_rollouts.reread(config, r, p, e)
  a, b = reread(argmax), reread(floor)
  assert a["headroom"]["ok"] and a["headroom"]["basis"] == "greedy" and a["per_replicate"]["rise"] == [3.0, 3.0]
  assert not b["headroom"]["ok"] and b["headroom"]["basis"] == "behaviour"
  np.testing.assert_allclose(b["per_replicate"]["rise"], [1.0, 0.5])
  assert gates.p2_verdict(b)[1] == "inconclusive: no headroom"
  assert "headroom: behaviour rise past the ceiling 0.750" in gates.p2_verdict(b)[0]
  # A finished DAgger directory whose P2 rows predate the basis is re-read once, keeping what it read.
  import json, os, tempfile  # noqa: E401, PLC0415
  d = tempfile.mkdtemp()
  p2, rounds = os.path.join(d, "p2.json"), os.path.join(d, "rounds.json")
  json.dump({"round": 1, "control": {**entry, "verdict": "supported"}, "dagger": {**entry, "verdict": "supported"}},
            open(p2, "w"))
  json.dump([{"round": 0}, {"round": 1, "p2": {m: {"verdict": "supported"} for m in ("control", "dagger")}}],
            open(rounds, "w"))
  for _ in range(2):
    arm_rollouts.rescore(p2, rounds, ("control", "dagger"), lambda e: reread(floor, e))
  got, res = json.load(open(p2)), json.load(open(rounds))
  assert got["dagger"]["verdict"] == "inconclusive: no headroom" and got["dagger"]["headroom"]["basis"] == "behaviour"
  assert got["dagger"]["before_headroom_basis"]["verdict"] == "supported"
  assert res[-1]["p2"]["control"] == {"verdict": "inconclusive: no headroom",
                                      "verdict_before_headroom_basis": "supported"}
