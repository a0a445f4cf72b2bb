"""The P2 stage's figures (`<workdir>/p2/curves.png`, `gap.png`), beside the stage in cl_limits/stages/p2.py."""
from __future__ import annotations

import warnings

import numpy as np

from cl_limits.histories import history as history_lib
from cl_limits.stages import outputs


def axis_arrays(name: str, kind: str, arm: dict, data: list) -> dict:
  """Where each replicate's rollout sits on its data's learner-step axis, for the figures.

  An imitator's step plays one kept stream's step, and one kept step stands for `gap` of a stream's steps
  and `streams` of its learner's: step s of its rollout is drawn at learner step (first kept stream step +
  s x gap) x streams, so the end of one kept history lands on the cut. The known positive (the generator
  continued from its cut) is drawn from the cut at `streams` learner steps per step. Also each replicate's
  stream episodes dropped before its first kept one (an arm's `start`), for the gap figure."""
  d0 = data[0]
  streams = max(1, int(d0["cut_learner_steps"]) // max(1, int(d0["cut_stream_steps"])))
  if kind == "known_positive":
    x0, scale = [float(d0["cut_stream_steps"]) * streams] * len(data), float(streams)
  else:
    x0 = [float(d.get("first_kept_stream_step", 0.0)) * streams for d in data]
    scale = float(int(arm["gap"]) * streams)
  return {f"{name}/axis_x0": np.asarray(x0), f"{name}/axis_scale": np.asarray(scale),
          f"{name}/axis_dropped": np.asarray([float(d.get("dropped_episodes", 0.0)) for d in data])}


def learner_steps(arrays, name: str, steps):
  """Rollout steps [R, ...] (per replicate) on the row's data's learner-step axis (`axis_arrays`)."""
  x0, scale = np.asarray(arrays[f"{name}/axis_x0"], np.float64), float(arrays[f"{name}/axis_scale"])
  return np.asarray(steps, np.float64) * scale + x0.reshape((-1,) + (1,) * (np.ndim(steps) - 1))


def tb_runs(arrays, name: str, rets, ends, horizon: int):
  """The imitator's episodes on its data's learner-step axis, for TensorBoard, where the teachers' curve of
  the same row lies on that axis: ({"imitator": (rets, ends there)}, horizon there)."""
  there = learner_steps(arrays, name, ends)
  return {"imitator": (rets, there)}, int(np.ceil(learner_steps(arrays, name, np.full(len(ends), horizon)).max()))


def smooth_log(x, window: int, share: float = 0.1):
  """Trailing mean of x [N] over the last max(window, share x i) points at point i, NaNs left out (NaN
  where the span holds none): readable on a log episode axis, where a fixed window is noise at the end."""
  x = np.asarray(x, np.float64)
  ok = np.isfinite(x)
  c = np.cumsum(np.concatenate([[0.0], np.where(ok, x, 0.0)]))
  n = np.cumsum(np.concatenate([[0], ok.astype(np.int64)]))
  idx = np.arange(1, x.size + 1)
  lo = np.maximum(idx - np.maximum(int(window), np.ceil(share * idx).astype(np.int64)), 0)
  cnt = n[idx] - n[lo]
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(cnt > 0, (c[idx] - c[lo]) / np.maximum(cnt, 1), np.nan)


def title(config, task_ids, train_ids) -> str:
  """The P2 figure's title: the held-out tasks of the env, or the env itself where they are its training
  tasks (one game)."""
  same = list(task_ids) == list(train_ids)
  return f"P2 on {config.env.name if same else 'held-out ' + config.env.name + ' tasks'}"


def _title(name: str, kind: str) -> str:
  return name if kind in name else f"{name} ({kind})"


def plot(summary, arrays, path, title):
  """Per P2 row, on its data's learner-step axis (`axis_arrays`) and in the summary's unit: the teachers'
  behaviour (each replicate) and greedy policy, the cut, every replicate's ceiling, and every replicate's
  imitator."""
  names = [n for n, e in summary["arms"].items() if "skipped" not in e]
  smooth = history_lib.moving_average
  w = max(1, int(summary["protocol"]["ceiling_window_episodes"]))
  if not names:
    return
  with outputs.figure(path, ncols=len(names), size=(6, 4.2)) as (fig, axes):
    for ax, name in zip(axes, names):
      e = summary["arms"][name]
      pr = e["per_replicate"]
      x0, scale = arrays[f"{name}/axis_x0"], float(arrays[f"{name}/axis_scale"])
      there = learner_steps(arrays, name, arrays[f"{name}/episode_end"])              # [R, K, E]
      with warnings.catch_warnings():                 # all-NaN columns past a replicate's own end
        warnings.simplefilter("ignore", RuntimeWarning)
        per_rep = np.stack([smooth_log(np.nanmean(r, axis=0), w) for r in arrays[f"{name}/unit_return"]])
        xs = np.nanmax(there, axis=1)                                                  # [R, E]
        x_mean = float(np.mean(x0)) + scale * np.nanmax(arrays[f"{name}/episode_end"], axis=(0, 1))
      for r, cv in enumerate(per_rep):
        ax.plot(xs[r], cv, color="C0", lw=0.7, alpha=0.5, label="imitator, each replicate" if r == 0 else None)
      ax.plot(x_mean, per_rep.mean(0), color="C0", lw=2, label="imitator, mean (while every replicate plays)")
      tx = arrays[f"{name}/teacher_x"]
      for r in range(len(pr["ceiling"])):
        tc = arrays.get(f"{name}/teacher_curve_{r}")
        if tc is not None:
          tx_r = arrays.get(f"{name}/teacher_x_{r}", tx)
          n = min(tx_r.size, tc.size)
          ax.plot(tx_r[:n], smooth(tc, w)[:n], color="k", lw=0.7, alpha=0.5,
                  label="its data's learners (behaviour), each replicate" if r == 0 else None)
        ax.hlines(pr["ceiling"][r], 0, np.nanmax(x_mean), color="C3", ls="--", lw=0.8,
                  label="ceiling, each replicate" if r == 0 else None)
      if e["kind"] == "p2" and "teacher_greedy" in arrays:
        g = arrays["teacher_greedy"]
        for r in range(g.shape[0]):
          ax.plot(arrays["teacher_greedy_steps"], g[r], color="C2", marker=".", lw=0.7,
                  label="teachers' greedy policy, each replicate" if r == 0 else None)
      ax.axvline(e["cut_learner_steps"], color="gray", ls=":", lw=1.2, label="data cut")
      ax.set_xscale("symlog", linthresh=max(1, e["cut_learner_steps"]))
      ax.set_xlim(left=0)
      ax.set_xlabel(f"learner steps (imitator: its own step x {scale:g}, from its data's first kept step)"
                    if e["kind"] != "known_positive" else "learner steps (the generator from its cut)", fontsize=8)
      ax.set_ylabel(f"return ({summary['protocol']['unit']})", fontsize=8)
      iv = e["competence"].get("interval")
      ax.set_title(f"{_title(name, e['kind'])}: cut at {e['fraction']:.0%}, competence "
                   + ("not measurable" if iv is None else f"{iv['estimate']:.2f}"), fontsize=9)
      ax.legend(fontsize=6)
    fig.suptitle(f"{title}\nmeans of {w} episodes (the imitator's: of {w} or its last 10%, the more)", fontsize=9)


def plot_gap(summary, arrays, streams: int, path):
  """The gap in view, per P2 row, on the imitator's episode axis: the data it saw (kept episode i at i),
  the imitator (its own episode i, each replicate and the mean), and the teachers with their stream
  episode j at (j - dropped) / gap, where `dropped` are the stream's episodes before its first kept one (a
  learner has then made gap x streams of its episodes per kept one). Curves are means over the ceiling's
  window in kept episodes. An imitator that replays its data follows the data curve, not the teachers'."""
  names = [n for n, e in summary["arms"].items() if "skipped" not in e and e["kind"] != "known_positive"]
  smooth = history_lib.moving_average
  if not names:
    return
  with outputs.figure(path, ncols=len(names), size=(5.5, 4.2)) as (fig, axes):
    for ax, name in zip(axes, names):
      e = summary["arms"][name]
      gap = max(1, int(e["gap"]))
      w = max(1, -(-int(summary["protocol"]["ceiling_window_episodes"]) // gap))
      dropped = arrays[f"{name}/axis_dropped"]
      for r in range(len(e["per_replicate"]["ceiling"])):
        tc = arrays[f"{name}/teacher_curve_{r}"]
        tx = (np.arange(1, tc.size + 1) - dropped[r]) / gap
        ax.plot(tx[tx > 0], smooth(tc, w * gap)[tx > 0], color="k", lw=0.6, alpha=0.4,
                label=f"its data's learners (stream episode - dropped) / {gap}" if r == 0 else None)
        dc = arrays[f"{name}/data_curve_{r}"]
        ax.plot(np.arange(1, dc.size + 1), smooth(dc, w), color="C1", lw=1.0, alpha=0.8, zorder=3,
                label="data (kept episodes), each replicate" if r == 0 else None)
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rets = np.stack([smooth_log(c, w) for c in np.nanmean(arrays[f"{name}/unit_return"], axis=1)])   # [R, E]
        for r, c in enumerate(rets):
          ax.plot(np.arange(1, c.size + 1), c, color="C0", lw=0.6, alpha=0.4,
                  label="imitator (own episodes), each replicate" if r == 0 else None)
        ax.plot(np.arange(1, rets.shape[1] + 1), rets.mean(0), color="C0", lw=2,       # NaN once one has ended
                label="imitator, mean (while every replicate plays)")
      ax.set_xscale("log")
      ax.set_xlabel(f"imitator episode = kept data episode ({gap} x {streams} learner episodes)", fontsize=8)
      ax.set_ylabel(f"return ({summary['protocol']['unit']})", fontsize=8)
      ax.set_title(f"{_title(name, e['kind'])}: gap {gap}, {streams} streams, means of {w} kept episodes", fontsize=9)
      ax.legend(fontsize=6)
    fig.suptitle("the gap in view: data, imitator and its data's learners on the imitator's episode axis\n"
                 "(the imitator's means: or of its last 10% of episodes, the more)", fontsize=9)

