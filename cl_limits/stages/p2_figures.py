"""The P2 stage's figures (`<workdir>/p2/curves.png`, `gap.png`), beside the stage in cl_limits/stages/p2.py."""
from __future__ import annotations

import warnings

import numpy as np

from cl_limits.histories import history as history_lib
from cl_limits.stages import outputs


def plot(summary, arrays, path, title):
  """Per P2 row, on one environment-step axis and in the summary's unit: the teachers' behaviour (each
  replicate) and greedy policy, the cut, every replicate's ceiling, and every replicate's imitator; below,
  the competence rollouts on training tasks against the data's end-of-data return."""
  names = [n for n, e in summary["arms"].items() if "skipped" not in e]
  smooth = history_lib.moving_average
  w = max(1, int(summary["protocol"]["ceiling_window_episodes"]))
  if not names:
    return
  with outputs.figure(path, ncols=len(names), size=(6, 4)) as (fig, axes):
    for ax, name in zip(axes, names):
      e = summary["arms"][name]
      pr = e["per_replicate"]
      x = np.nanmax(arrays[f"{name}/episode_end"], axis=(0, 1))
      with warnings.catch_warnings():                 # all-NaN columns past a replicate's own end
        warnings.simplefilter("ignore", RuntimeWarning)
        per_rep = np.stack([smooth(np.nanmean(r, axis=0), w) for r in arrays[f"{name}/unit_return"]])
      for r, cv in enumerate(per_rep):
        ax.plot(x, cv, color="C0", lw=0.7, alpha=0.5, label="imitator, each replicate" if r == 0 else None)
      ax.plot(x, per_rep.mean(0), color="C0", lw=2, label="imitator, mean")
      tx = arrays[f"{name}/teacher_x"]
      for r in range(len(pr["ceiling"])):
        tc = arrays.get(f"{name}/teacher_curve_{r}")
        if tc is not None:
          tx_r = arrays.get(f"{name}/teacher_x_{r}", tx)
          n = min(tx_r.size, tc.size)
          ax.plot(tx_r[:n], smooth(tc, w)[:n], color="k", lw=0.7, alpha=0.5,
                  label="teachers' behaviour, each replicate" if r == 0 else None)
        ax.hlines(pr["ceiling"][r], 0, x[-1], color="C3", ls="--", lw=0.8,
                  label="ceiling, each replicate" if r == 0 else None)
      if e["kind"] == "p2" and "teacher_greedy" in arrays:
        g = arrays["teacher_greedy"]
        for r in range(g.shape[0]):
          ax.plot(arrays["teacher_greedy_steps"], g[r], color="C2", marker=".", lw=0.7,
                  label="teachers' greedy policy, each replicate" if r == 0 else None)
      ax.axvline(e["cut_learner_steps"], color="gray", ls=":", lw=1.2, label="data cut")
      ax.set_xscale("symlog", linthresh=max(1, e["cut_learner_steps"]))
      ax.set_xlabel("environment steps (teachers: training; imitator: its rollout)")
      ax.set_ylabel(f"episode return ({summary['protocol']['unit']}; {w}-episode moving average)")
      iv = e["competence"].get("interval")
      ax.set_title(f"{name} ({e['kind']}): cut at {e['fraction']:.0%}, competence "
                   + ("not measurable" if iv is None else f"{iv['estimate']:.2f} of its data's gain"), fontsize=9)
      ax.legend(fontsize=6)
    fig.suptitle(title)


def plot_gap(summary, arrays, streams: int, path):
  """The gap in view, per P2 row, on the imitator's episode axis: the data it saw (one point per kept
  episode), the imitator (per own episode, each replicate), and the teachers with their stream episode i at
  i / gap (a learner has then made i x streams episodes: gap x streams of its episodes per kept one). An
  imitator that replays its data follows the data curve, not the teachers'."""
  names = [n for n, e in summary["arms"].items() if "skipped" not in e]
  smooth = history_lib.moving_average
  if not names:
    return
  with outputs.figure(path, ncols=len(names), size=(5, 4)) as (fig, axes):
    for ax, name in zip(axes, names):
      e = summary["arms"][name]
      gap = max(1, int(e["gap"]))
      n_rep = len(e["per_replicate"]["ceiling"])
      for r in range(n_rep):
        dc = arrays[f"{name}/data_curve_{r}"]
        ax.plot(np.arange(1, dc.size + 1), dc, color="C1", lw=0.8, alpha=0.6,
                label="data (per kept episode), each replicate" if r == 0 else None)
        tc = arrays[f"{name}/teacher_curve_{r}"]
        ax.plot(np.arange(1, tc.size + 1) / gap, smooth(tc, gap), color="k", lw=0.6, alpha=0.5,
                label=f"teachers (stream episode / {gap})" if r == 0 else None)
      rets = arrays[f"{name}/unit_return"].mean(1)                               # [R, E]
      for r, c in enumerate(rets):
        ax.plot(np.arange(1, c.size + 1), c, color="C0", lw=0.6, alpha=0.5,
                label="imitator (per own episode), each replicate" if r == 0 else None)
      ax.set_xscale("log")
      ax.set_xlabel(f"imitator episode = kept data episode = {gap} x {streams} teacher learner episodes")
      ax.set_ylabel(f"return ({summary['protocol']['unit']})")
      ax.set_title(f"{name}: gap {gap}, {streams} streams", fontsize=9)
      ax.legend(fontsize=6)
    fig.suptitle("the gap in view: data, imitator and teachers on the imitator's episode axis", fontsize=9)
