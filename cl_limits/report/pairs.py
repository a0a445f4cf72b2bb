"""Two finished runs of one study on the same teachers, paired replicate by replicate.

A budget or model comparison (4,000 against 8,000 updates, width 64 against 128) is paired when both runs
trained their imitators on the same data with the same base seed: replicate r of one run and replicate r of
the other learned from the same DQN's history, were rolled out on the same tasks from the same keys, and
differ only in what the configs say. The unit of replication stays the independent training run: each
measure below is one number per replicate (tasks and episodes averaged inside it), and the difference
B - A gets a t-interval over replicates. Runs that are not paired (different teachers, base seed,
replicates or competence tasks) are refused in one line naming what differs, because their difference
mixes the change with the data.
"""
from __future__ import annotations

import math
import os

from cl_limits.analysis.stats import replicate_interval
from cl_limits.stages import layout

def _at(sub: str, *keys: str):
  """A reader of one per-replicate list from a run's `sub` summary at `keys` ("{arm}" filled in)."""
  def read(run: dict, arm: str):
    d = run[sub]
    for k in keys:
      d = d.get(k.format(arm=arm)) if isinstance(d, dict) else None
    return d
  return read


def _final_loss(run: dict, arm: str):
  """The imitation summary's final_loss: [arms][replicates], in the order of its "arms"."""
  names, loss = run["imitators"].get("arms") or [], run["imitators"].get("final_loss")
  return loss[names.index(arm)] if loss is not None and arm in names else None


# (label, reader, windowed) for every per-replicate measure of an arm. windowed: scored on training-length
# windows of the held-out streams (`imitation.train.seq_len`); a window's first episode, scored with little
# context, weighs more in short windows, so runs whose window lengths differ score different steps there
# and those rows are not like for like.
MEASURES = (
    ("held-out KL, nats (kept weights)", _at("imitators", "fidelity", "per_arm", "{arm}", "kl"), True),
    ("training loss, last batch, nats", _final_loss, True),
    ("behaviour entropy on the held-out stream, nats", _at("imitators", "fidelity", "per_arm", "{arm}", "entropy"),
     True),
    ("competence: gain over random at the data's end", _at("p2", "arms", "{arm}", "competence", "per_replicate"),
     False),
    ("imitator's last episodes (competence rollout)", _at("p2", "arms", "{arm}", "competence", "imitator_end"),
     False),
    ("its data's last episodes", _at("p2", "arms", "{arm}", "competence", "data_end"), False),
    ("clone of its data (a held-out stream; with several rollouts, up to half its streams): gain over random",
     _at("p2", "arms", "{arm}", "competence", "clone", "per_replicate"), False),
    ("learning in the kept data (fraction of the range)", _at("p2", "arms", "{arm}", "learning", "per_replicate"),
     False),
    ("P2 late return", _at("p2", "arms", "{arm}", "late", "per_replicate"), False),
    ("P2: late - ceiling", _at("p2", "arms", "{arm}", "late_minus_ceiling", "per_replicate"), False),
)


def load(workdir: str) -> dict:
  """What a paired comparison reads from a finished run; ValueError naming the first missing piece."""
  if not os.path.isdir(workdir):
    raise ValueError(f"{workdir}: no such run directory")
  run = {"dir": workdir, "config": layout.read_config(workdir)}
  for sub in ("imitators", "p2"):
    run[sub] = layout.summary(workdir, sub)
    if run[sub] is None:
      raise ValueError(f"{workdir}: no {sub}/summary.json; the {sub} stage has not finished there")
  record = layout.stage_record(workdir, "imitators") or {}
  run["teachers"] = (record.get("inputs") or {}).get("teachers")
  if run["config"] is None or run["teachers"] is None:
    raise ValueError(f"{workdir}: no config.json or imitators/stage.json; not a run directory of this version")
  return run


def _flat(d, prefix=""):
  out = {}
  for k, v in (d or {}).items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flat(v, key + "."))
    else:
      out[key] = v
  return out


def config_diff(a: dict, b: dict, ignore=("teachers_from",)) -> list[str]:
  """Every config field whose value differs between the runs ("field: a -> b"); where the teachers were read
  from is left aside (check_paired has already found them the same)."""
  fa, fb = _flat(a["config"]), _flat(b["config"])
  return [f"{k}: {fa.get(k, '(absent)')} -> {fb.get(k, '(absent)')}" for k in sorted(set(fa) | set(fb))
          if k not in ignore and fa.get(k, "(absent)") != fb.get(k, "(absent)")]


def check_paired(a: dict, b: dict) -> None:
  """ValueError naming what makes the two runs' replicates unpaired."""
  why = []
  if a["teachers"] != b["teachers"]:
    why.append(f"teachers {a['teachers']} vs {b['teachers']} (different data)")
  if a["config"].get("seed") != b["config"].get("seed"):
    why.append(f"seed {a['config'].get('seed')} vs {b['config'].get('seed')}")
  na, nb = a["imitators"].get("num_seeds"), b["imitators"].get("num_seeds")
  if na != nb:
    why.append(f"replicates {na} vs {nb}")
  ta, tb = a["p2"].get("competence_task_ids"), b["p2"].get("competence_task_ids")
  if ta != tb:
    why.append("competence tasks differ")
  if why:
    raise ValueError(f"{a['dir']} and {b['dir']} are not paired: " + "; ".join(why))


def _cell(iv: dict | None) -> str:
  if iv is None:
    return "n/a (a replicate has no value)"
  return f"{iv['estimate']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"


def compare(a: dict, b: dict, arm: str) -> list[dict]:
  """Per measure both runs have for `arm`: {label, a, b, diff, per_replicate, windowed} (replicate
  intervals; diff is B - A per replicate); a measure one run lacks (an older run, no held-out stream) is
  left out."""
  rows = []
  for label, read, windowed in MEASURES:
    va, vb = read(a, arm), read(b, arm)
    if not isinstance(va, list) or not isinstance(vb, list) or len(va) != len(vb) or not va:
      continue
    va, vb = [_number(v) for v in va], [_number(v) for v in vb]
    diff = [y - x for x, y in zip(va, vb)]
    rows.append({"label": label, "a": _interval(va), "b": _interval(vb), "diff": _interval(diff),
                 "per_replicate": diff, "windowed": windowed})
  return rows


def _number(v) -> float:
  return float("nan") if v is None else float(v)


def _interval(values: list[float]) -> dict | None:
  """The replicate interval, or None where a replicate has no value (a competence undefined because its
  data end is not above random): no interval is made from the replicates that happen to have one."""
  return replicate_interval(values) if all(math.isfinite(v) for v in values) else None


def _kept_differences(a: dict, b: dict, arm: str) -> list[str]:
  """"field A vs B" for the arm's fields that choose which steps of a history it keeps (gap, fraction),
  where the runs differ."""
  fa, fb = _flat(a["config"]), _flat(b["config"])
  pairs = [(k, fa.get(f"imitation.arms.{arm}.{k}"), fb.get(f"imitation.arms.{arm}.{k}")) for k in ("gap", "fraction")]
  return [f"{k} {u} vs {v}" for k, u, v in pairs if u != v]


def _horizons(a: dict, b: dict, arm: str) -> str:
  """" (A vs B steps)": the competence gate's horizon in each run, where both summaries record it."""
  ha, hb = (_at("p2", "arms", "{arm}", "competence", "horizon_steps")(r, arm) for r in (a, b))
  return f" ({ha} vs {hb} steps)" if ha is not None and hb is not None else ""


def unlike_windows(a: dict, b: dict, arm: str) -> str:
  """The mark for `arm`'s window-scored rows where the two runs score other steps there (other window
  lengths, or an arm that keeps other episodes or another share of each history); "" where they are like
  for like."""
  wa, wb = (_flat(r["config"]).get("imitation.train.seq_len") for r in (a, b))
  why = [f"windows of {wa} vs {wb} steps"] if wa != wb else []
  why += _kept_differences(a, b, arm)
  return f" (not like for like: {'; '.join(why)})" if why else ""


def common_arms(a: dict, b: dict) -> list[str]:
  arms_b = set(b["p2"].get("arms") or {})
  return [arm for arm in (a["p2"].get("arms") or {}) if arm in arms_b]


def table(dir_a: str, dir_b: str, arms: list[str] | None = None) -> list[str]:
  """The markdown comparison: what differs between the configs, then per arm one row per measure with
  both runs' intervals, B - A paired over replicates, and each replicate's difference."""
  a, b = load(dir_a), load(dir_b)
  check_paired(a, b)
  shared = common_arms(a, b)
  arms = arms or shared
  missing = [arm for arm in arms if arm not in shared]
  if missing:
    raise ValueError(f"arm {missing[0]!r} is not in both runs' P2 summaries (both have: {', '.join(shared) or 'none'})")
  if not arms:
    raise ValueError(f"{dir_a} and {dir_b} have no P2 arm in common")
  name_a, name_b = os.path.basename(os.path.normpath(dir_a)), os.path.basename(os.path.normpath(dir_b))
  n = a["imitators"].get("num_seeds")
  lines = [f"A = {name_a}, B = {name_b}: the same teachers ({a['teachers']}), base seed "
           f"{a['config'].get('seed')}, {n} replicates paired by index (t-intervals over replicates, 95%).",
           "", "What differs between the configs:"]
  lines += [f"- {d}" for d in config_diff(a, b)] or ["- nothing (a repeat of the same config)"]
  wa, wb = (_flat(r["config"]).get("imitation.train.seq_len") for r in (a, b))
  if wa != wb:
    lines += ["", f"The training windows differ ({wa} vs {wb} steps): the rows marked so are scored on "
              "windows of each run's length, which weigh a window's first episode differently; compare "
              "them by state with `experiments.fidelity_floor`."]
  for arm in arms:
    lines += ["", f"**{arm}**", ""]
    unlike = unlike_windows(a, b, arm)
    kept = _kept_differences(a, b, arm)
    if kept:
      lines += [f"The arm keeps other steps of each history ({'; '.join(kept)}): its windows, and so the rows "
                "marked, hold other steps and another behaviour entropy, and its competence gate runs for one "
                f"kept history of each run{_horizons(a, b, arm)}.", ""]
    lines += ["| measure | A | B | B - A (paired) | B - A per replicate |", "|---|---|---|---|---|"]
    for r in compare(a, b, arm):
      per = ", ".join(f"{v:+.3f}" for v in r["per_replicate"])
      label = r["label"] + (unlike if r["windowed"] else "")
      lines.append(f"| {label} | {_cell(r['a'])} | {_cell(r['b'])} | {_cell(r['diff'])} | {per} |")
  return lines
