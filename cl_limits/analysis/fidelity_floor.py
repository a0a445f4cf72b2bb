"""Where an imitator's held-out KL to its behaviour policy comes from (`experiments/fidelity_floor.py`):
DarkRoom steps by state (on the goal, one or two shortest moves; first episode of a context window or a
later one); the teachers' drift is read in the script itself (it needs a run's checkpoints)."""
import numpy as np


def _mean(x, m):
  return float((x * m).sum() / m.sum()) if m.sum() else float("nan")


def goal_of_each_step(fd, moves, size):
  """[N, 2]: each step's goal, the cell its history's rewarded moves end in most often (-1 if none)."""
  goal = np.full((fd.num_steps, 2), -1, np.int64)
  offsets = np.concatenate([[0], np.cumsum(fd.lengths)])
  for a, b in zip(offsets[:-1], offsets[1:]):
    after = np.clip(fd.obs[a:b, :2].astype(np.int64) + moves[fd.action[a:b]], 0, size - 1)
    hits = after[fd.reward[a:b] > 0]
    if len(hits):
      cells, counts = np.unique(hits, axis=0, return_counts=True)
      goal[a:b] = cells[counts.argmax()]
  return goal


def by_state(fd, kl, valid, idx, env, seq_len):
  """{class: (share of scored steps, mean KL)} and the tie-copy agreement, for one model's held-out set."""
  from cl_limits.envs.grid import MOVES  # noqa: PLC0415
  obs = fd.obs[:, :2].astype(np.int64)
  goal = goal_of_each_step(fd, MOVES, env.size)
  nxt = np.clip(obs[:, None, :] + MOVES[None], 0, env.size - 1)
  dist = np.abs(nxt - goal[:, None]).sum(-1)
  shortest = dist == dist.min(1, keepdims=True)
  cells = np.array([len({tuple(c) for c, s in zip(nxt[i], shortest[i]) if s}) for i in range(len(obs))])
  on_goal = (obs == goal).all(1)
  kind = np.where(on_goal, 0, np.where(cells == 1, 1, 2))
  ep = int(env.episode_len)
  first = np.broadcast_to(np.arange(seq_len) < ep, valid.shape)
  out = {}
  for k, name in enumerate(("on the goal", "one shortest move", "two shortest moves")):
    for f, where in ((True, "first episode of its window"), (False, "later episodes")):
      m = valid & (kind[idx] == k) & (first == f)
      out[f"{name}, {where}"] = (m.sum() / valid.sum(), _mean(kl, m))
  hist = np.repeat(np.arange(len(fd.lengths)), fd.lengths)
  prev = np.arange(len(obs)) - ep
  ok = (prev >= 0) & (hist == hist[np.maximum(prev, 0)]) & (obs == obs[np.maximum(prev, 0)]).all(1) & (kind == 2)
  copy = float((fd.greedy == fd.greedy[np.maximum(prev, 0)])[ok].mean()) if ok.any() else float("nan")
  return out, copy
