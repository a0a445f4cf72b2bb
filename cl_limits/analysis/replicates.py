"""P2 per independent replicate: ceiling, headroom, competence and the late return, in one unit.

Replicate r is one independent run (teacher seed r, its imitators, their rollouts). Everything here is
computed per replicate and only then summarised over replicates (`stats.replicate_interval`), so the
uncertainty of the ceiling enters the interval of late - ceiling.

Unit: where every task has a known optimum (`ceiling.task_optimum`) returns are fractions of each task's
optimal return (tasks differ in what they allow, and the ceiling comes from the training tasks while the
late return comes from held-out ones); else raw returns.

  behaviour ceiling  best `window`-episode moving average of replicate r's kept data, chosen on half of
                     its streams and read on the other half (ceiling.py: the in-sample best is biased up)
  greedy at the cut  the teachers' argmax policy at replicate r's own cut, interpolated between the greedy
                     evaluations on either side of it
  ceiling            the larger of the two: an imitator sampled more sharply than its teachers acted can
                     pass the behaviour ceiling without learning anything its data did not show
  headroom           what a learner that went on as the teachers did, acting as the protocol acts, would
                     reach after the cut, minus the ceiling (`headroom_basis`): their best greedy evaluation
                     after the cut, or their final behaviour return where the protocol is at least as random
                     as their behaviour; AD-epsilon data's greedy policy is its fixed demonstrator, so on the
                     greedy basis its rise is at most 0 (`ceilings`' demonstrator);
                     a row needs at least `fraction` x (top - random), top = 1 (the optimum) in fractions,
                     else the teachers' final greedy return.
  competence         at the end of the data, in the imitator's own time: a rollout as long as one kept
                     history on training tasks, its last episodes against the data's last kept episodes,
                     as a gain over random with an interval over replicates
  held its data      the P2 rollout's late window against the data's end: below it by more than a margin
                     is a collapsed imitator
  learning in data   the kept data's own rise: its last `window` teacher episodes minus its first, over
                     (top - random); an imitator cannot extrapolate improvement from data that shows none
"""
from __future__ import annotations

import jax
import warnings

import numpy as np

from cl_limits.analysis import clone
from cl_limits.analysis import ceiling as ceiling_lib
from cl_limits.analysis import stats


def replicate(history, r: int, tasks: int | None = None):
  """Replicate r's histories [1, K, ...] (the first `tasks` tasks when given)."""
  k = slice(None) if tasks is None else slice(0, int(tasks))
  return jax.tree.map(lambda x: np.asarray(x)[r:r + 1, k], history)


def in_unit(returns, optimum, task_axis: int = -1):
  """returns [..., K, ...] as fractions of each task's optimum (task axis `task_axis`), or unchanged when
  optimum is None."""
  if optimum is None:
    return np.asarray(returns, np.float64)
  opt = np.asarray(optimum, np.float64)
  shape = [1] * np.ndim(returns)
  shape[task_axis] = opt.size
  return np.asarray(returns, np.float64) / opt.reshape(shape)


def data_end(d: dict, normalised: bool) -> float:
  """The mean return of the data's last kept episodes: its ceiling window, ceil(window / gap) kept ones
  (`ceiling_kept_window`)."""
  curve = d["data_curve_norm" if normalised else "data_curve"]
  curve = curve[np.isfinite(curve)]
  return float(np.mean(curve[-max(1, int(d["ceiling_kept_window"])):]))


def data_per_replicate(history, manifest, arm: dict, window: int, optimum, tasks: int | None = None) -> list:
  """`ceiling.arm_data_curves` of every replicate (its first `tasks` tasks when given)."""
  n = int(np.asarray(history.action).shape[0])
  opt = None if optimum is None else np.asarray(optimum)[:tasks] if tasks else optimum
  return [ceiling_lib.arm_data_curves(replicate(history, r, tasks), manifest, arm, window, optimum=opt)
          for r in range(n)]


BASES = ("greedy", "behaviour")


def headroom_basis(greedy: bool, temperature: float, epsilon: float, labels: str, teacher_floor: float) -> str:
  """Which of the teachers' policies after the cut the headroom gate reads for an imitator acting by this
  protocol (BUILD_NOTES, "headroom in the protocol's own terms"): "behaviour" (their epsilon-greedy play,
  final window) where the protocol is at least as random as that play -- epsilon at or above the teachers'
  floor, or sampling at temperature >= 1 from an imitator of the recorded actions -- else "greedy" (their
  best greedy evaluation; an upper bound for protocols in between)."""
  if float(epsilon) > 0 and float(epsilon) >= float(teacher_floor):
    return "behaviour"
  if not greedy and float(temperature) >= 1.0 and labels == "action":
    return "behaviour"
  return "greedy"


def per_replicate_rise(per_replicate: dict, basis: str) -> list | None:
  """The per-replicate rises on `basis` of a `ceilings` result or a P2 summary entry's "per_replicate" (None
  where not measured). A teacher-data row's summary written before both rises were kept is read too: its
  "rise" was the greedy one, and its behaviour rise is the teachers' final behaviour return
  ("teacher_final") minus the ceiling."""
  if basis not in BASES:
    raise ValueError(f"headroom: basis must be one of {BASES} (got {basis!r})")
  if "behaviour_rise" in per_replicate:
    return per_replicate[f"{basis}_rise"]
  if not all(g is not None for g in per_replicate.get("greedy_at_cut", [None])):
    return None
  if basis == "greedy":
    return per_replicate["rise"]
  if "teacher_final" in per_replicate:
    return [float(f) - float(c) for f, c in zip(per_replicate["teacher_final"], per_replicate["ceiling"])]
  return None


def headroom(per_replicate: dict, basis: str, top: float, random: float, fraction: float) -> dict:
  """The headroom gate from the per-replicate rises (`per_replicate_rise`) on `basis`: their mean against
  fraction x (top - random)."""
  rises = per_replicate_rise(per_replicate, basis)
  if rises is None:
    raise ValueError(f"headroom: no per-replicate {basis} rise (a P2 summary written before the headroom "
                     "basis existed: re-run the P2 stage)")
  if any(v is None for v in rises):
    raise ValueError(f"headroom: the {basis} rise is not measured for this data (no greedy policy)")
  needed = float(fraction * (top - random))
  rise = float(np.mean(rises))
  return {"rise": rise, "needed": needed, "ok": bool(rise >= needed), "top": float(top), "random": float(random),
          "fraction": float(fraction), "basis": basis}


def ceilings(data: list, greedy, greedy_steps, optimum, top_raw: float | None = None, random: float = 0.0,
             headroom_fraction: float = 0.2, basis: str = "greedy", demonstrator=None) -> dict:
  """Per replicate: behaviour ceiling, greedy return at the cut, the ceiling (their max) and the headroom
  rises (greedy and behaviour; "rise" is the one `basis` names), in the unit (fractions when optimum is
  given).

  data: `data_per_replicate` (all teacher tasks); greedy [R, K, segments] at greedy_steps, or None for data
  without teachers' greedy curves (the basis is then "behaviour" unless `demonstrator` is given); random: the random policy's
  return in the unit; top_raw: the top in raw units when there is no optimum (None: the teachers' final
  greedy return). demonstrator: per replicate, the greedy return (unit) of AD-epsilon data's fixed demonstrator:
  on the greedy basis, the greedy return at the cut and after it (BUILD_NOTES, "the power control's ceiling")."""
  norm = optimum is not None
  demo = greedy is None and demonstrator is not None and basis == "greedy"
  basis = "behaviour" if greedy is None and not demo else basis
  out = {k: [] for k in ("behaviour_ceiling", "greedy_at_cut", "ceiling", "rise", "after_cut_best",
                         "in_sample_ceiling", "cut", "greedy_rise", "behaviour_rise")}
  g_unit = None if greedy is None else in_unit(greedy, optimum, task_axis=1)
  for r, d in enumerate(data):
    behaviour = float(d["ceiling_norm" if norm else "ceiling"])
    cut = int(d["cut_learner_steps"])
    at_cut = None
    if g_unit is not None:
      steps = np.asarray(greedy_steps, np.float64)
      after = steps > cut
      # Interpolated between the evaluations on either side of this replicate's own cut (a cut that lands
      # just before an evaluation, as episode ends place it, no longer falls back a whole segment).
      at_cut = (float(np.mean([np.interp(cut, steps, g) for g in g_unit[r]])) if steps.size and cut >= steps[0]
                else None)
      greedy_best = float(g_unit[r][:, after].mean(0).max()) if after.any() else float("-inf")
    if demo:
      at_cut = greedy_best = float(demonstrator[r])
    final = float(d["teacher_final_norm" if norm else "teacher_final"])   # the data's own continuation
    best_after = greedy_best if basis == "greedy" else final
    ceil = behaviour if at_cut is None else max(behaviour, at_cut)
    in_sample = float(d.get("ceiling_in_sample_norm" if norm else "ceiling_in_sample", behaviour))
    for k, v in (("behaviour_ceiling", behaviour), ("greedy_at_cut", at_cut), ("ceiling", ceil),
                 ("rise", best_after - ceil), ("after_cut_best", best_after), ("in_sample_ceiling", in_sample),
                 ("cut", cut), ("greedy_rise", None if g_unit is None and not demo else greedy_best - ceil),
                 ("behaviour_rise", final - ceil)):
      out[k].append(v)
  top = 1.0 if norm else top_raw
  if top is None:   # the teachers' final greedy return, or the demonstrator's / the data's own continuation
    top = np.mean(g_unit[..., -1]) if g_unit is not None else np.mean(out["after_cut_best"])
  out["headroom"] = headroom(out, basis, float(top), random, headroom_fraction)
  return out


def competence(imitator_returns, data: list, optimum, random: float, fraction: float, rollouts: int = 1) -> dict:
  """The competence gate at the end of the data, in the imitator's own time. imitator_returns [R, M x K, E]:
  `rollouts` M rollouts (each with its own key; tasks 0..K-1, then again) from an empty context on the first
  K training tasks for as many steps as one kept history (one stream's kept episodes: gap and streams
  accounted for), so episode i of the rollout stands where kept episode i stood in the data; data:
  `data_per_replicate` of those K tasks; optimum, where given, [M x K] as the rollouts are.
  Per replicate: the imitator's last n episodes and the data's last n kept episodes (n = the data's
  `ceiling_kept_window`), and the gain over random, (imitator - random) / (data end - random). The gate
  passes when the interval over replicates has its lower end at or above `fraction`; a replicate whose
  data end is not above random makes the gain undefined and the gate not measurable (it fails). More
  rollouts per task shrink the measurement's noise inside a replicate, not the spread between replicates."""
  norm = optimum is not None
  rets = in_unit(imitator_returns, optimum, task_axis=1)
  if rets.shape[0] != len(data):
    raise ValueError(f"competence: {rets.shape[0]} replicates' rollouts for {len(data)} replicates' data")
  n = [max(1, int(d["ceiling_kept_window"])) for d in data]
  # Each (replicate, task)'s own last n finished episodes (NaN past their end; none finished: NaN, no warning).
  mean = lambda x: float(np.mean(x)) if np.size(x) else float("nan")
  imitator_end = [mean(np.concatenate([own_last(rets[r][k], n[r]) for k in range(rets.shape[1])]))
                  for r in range(rets.shape[0])]
  ends = [data_end(d, norm) for d in data]
  span = np.asarray(ends) - float(random)
  gain = np.where(span > 0, (np.asarray(imitator_end) - float(random)) / np.where(span > 0, span, 1.0), np.nan)
  iv = stats.replicate_interval(gain) if np.isfinite(gain).all() and gain.size > 1 else None
  return {"imitator_end": imitator_end, "data_end": ends, "random": float(random), "episodes": n,
          "rollouts": int(rollouts), "per_replicate": gain.tolist(), "interval": iv, "needed": float(fraction),
          "ok": bool(iv is not None and iv["low"] >= fraction),
          "ratio": float(np.mean(imitator_end) / np.mean(ends)) if np.mean(ends) > 0 else float("nan"),
          "clone": clone.clone_competence(data, norm, random, fraction, rollouts)}


def held_data(late, data: list, normalised: bool, top: float, random: float, margin: float) -> dict:
  """Whether a P2 rollout's late window held its data's level: per replicate (late - data end) / (top -
  random), the data end being its last kept window of episodes on all teacher tasks; the imitator is
  "collapsed" when the interval's lower end is below -margin (it fell under the data it imitates, so its
  staying below the ceiling says nothing about a ceiling)."""
  ends = np.asarray([data_end(d, normalised) for d in data])
  scale = float(top) - float(random)
  drop = (np.asarray(late, np.float64) - ends) / scale if scale > 0 else np.full(ends.shape, np.nan)
  iv = stats.replicate_interval(drop) if np.isfinite(drop).all() and drop.size > 1 else None
  return {"per_replicate": drop.tolist(), "data_end": ends.tolist(), "interval": iv, "margin": float(margin),
          "ok": bool(iv is not None and iv["low"] >= -margin)}


def learning_in_data(data: list, normalised: bool, top: float, random: float, fraction: float) -> dict:
  """Whether the kept data shows learning: per replicate, the mean return of its last ceiling window of
  kept episodes minus that of its first, as a fraction of (top - random); the gate passes when the
  interval over replicates has its lower end at or above `fraction`."""
  rise = []
  for d in data:
    curve = np.asarray(d["data_curve_norm" if normalised else "data_curve"], np.float64)
    curve = curve[np.isfinite(curve)]
    n = max(1, int(d["ceiling_kept_window"]))
    rise.append(float(np.mean(curve[-n:]) - np.mean(curve[:n])) if curve.size else float("nan"))
  scale = float(top) - float(random)
  gain = np.asarray(rise) / scale if scale > 0 else np.full(len(rise), np.nan)
  iv = stats.replicate_interval(gain) if np.isfinite(gain).all() else None
  return {"per_replicate": gain.tolist(), "interval": iv, "needed": float(fraction),
          "ok": bool(iv is not None and iv["low"] >= fraction)}


def own_late(returns, fraction: float) -> np.ndarray:
  """Each replicate's late return: per (replicate, task) the mean of the last `fraction` of the episodes it
  finished itself (NaN past its end), then the mean over tasks. returns [R, K, E] -> [R]. With episodes of
  one fixed length every row finishes the same number and this is the last fraction of all; with
  variable-length episodes a replicate that finished fewer episodes is read at its own end, not cut to
  the shortest row's count (which would read the longer rows mid-rollout)."""
  r = np.asarray(returns, np.float64)
  out = np.full(r.shape[:2], np.nan)
  for i in range(r.shape[0]):
    for k in range(r.shape[1]):
      n = int(np.isfinite(r[i, k]).sum())
      if n:
        out[i, k] = own_last(r[i, k], max(1, int(round(fraction * n)))).mean()
  return out.mean(-1)


def own_last(row, m: int) -> np.ndarray:
  return row[np.isfinite(row)][-m:]     # the last m finished episodes of one rollout's returns [E]


def own_trend(returns, first_fraction: float) -> np.ndarray:
  """Each replicate's trend (`curves.log_episode_slope` of its mean over tasks) over its own finished
  episodes: returns [R, K, E] -> [R]."""
  from cl_limits.analysis import curves  # noqa: PLC0415
  r = np.asarray(returns, np.float64)
  with warnings.catch_warnings():                       # all-NaN columns past a replicate's end
    warnings.simplefilter("ignore", RuntimeWarning)
    mean = np.nanmean(r, axis=1)                                              # [R, E]
  out = []
  for row in mean:
    n = int(np.flatnonzero(np.isfinite(row)).max(initial=-1)) + 1
    out.append(float(curves.log_episode_slope(row[:n], first_fraction)) if n >= 2 else float("nan"))
  return np.asarray(out)
