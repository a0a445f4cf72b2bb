"""The registered readings of a finished DAgger run (`experiments/dagger.py --out=DIR`), and of several
such runs with different base seeds side by side.

Read from the run's files alone (rounds.json, p2.json, p2_x10.json), in the order BUILD_NOTES fixed
before the runs:
  (a) competence on the training tasks after the last round: "passes" where the run's own competence
      gate passed it (its interval's lower end at or above the gate's `needed`, 0.75 in the one-stream
      config; `replicates.competence`), else "fails";
  (b) the `dagger` model's P2 row as today's P2 rule gives it from the row's stored gates
      (`gates.p2_verdict`; the config has no power control, so it is not counted whatever it says), with
      the verdict its run wrote beside it where the two differ (rows without the gates' fields: the
      stored verdict);
  (c) held-out late return, dagger - control, paired over replicates: "dagger above control" where the
      interval's lower end is above 0, "dagger below control" where its upper end is below 0, else
      "inconclusive";
  (d) the 10x P2 row's verdict, and 10x - 1x late return of the `dagger` model, paired: "keeps improving
      past its data's length" (lower end above 0), "falls back" (upper end below 0), else "inconclusive".
A reading whose files are missing is "not played"; before the run's last round (flags.json's
"rounds") every reading is "not finished". Across runs a reading that differs reads "unsettled"
(`seeds.across`).
"""
from __future__ import annotations

import functools
import json
import os

import numpy as np

from cl_limits.analysis import stats
from cl_limits.report import gates, seeds
from cl_limits.report.gates import ci

NOT_PLAYED = "not played"
LETTERS = ("a", "b", "c", "d")


def _per(xs, f: str = "{:.2f}") -> str:
  return ", ".join(f.format(x) for x in xs)


def _sign(iv: dict, above: str, below: str) -> str:
  return above if iv["low"] > 0 else below if iv["high"] < 0 else "inconclusive"


def _load(path: str):
  if not os.path.exists(path):
    return None
  try:
    return json.load(open(path))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def _verdict(e: dict) -> tuple[str, str]:
  """(a stored P2 row's verdict by today's rule, a note naming the verdict its run wrote where they differ);
  an entry without the gates' fields keeps its stored verdict."""
  try:
    now = gates.p2_verdict(e)[1]
  except KeyError:
    return e["verdict"], ""
  return now, ("" if now == e["verdict"] else f" (its run wrote {e['verdict']!r}, by the rule of then)")


def _named(fn):
  """ValueError naming the run directory and the missing field where a run's files lack what a reading
  reads (a file of another tool or another version), instead of a KeyError from deep inside."""
  @functools.wraps(fn)
  def wrapped(out, *args):
    try:
      return fn(out, *args)
    except (KeyError, IndexError, TypeError) as e:
      raise ValueError(f"{out}: its rounds.json / p2.json / p2_x10.json lack a field the readings need "
                       f"({type(e).__name__}: {e}); is it an experiments.dagger --out directory?") from None
  return wrapped


@_named
def readings(out: str) -> dict:
  """{letter: {"verdict", "text"}} for readings (a)-(d) of one run directory, plus "rounds" (the last
  round read). ValueError where the directory holds no rounds.json or no finished round."""
  rounds = _load(os.path.join(out, "rounds.json"))
  if not rounds or len(rounds) < 2:
    raise ValueError(f"{out}: no finished DAgger round (rounds.json missing or holding round 0 only)")
  last = rounds[-1]
  c = last["dagger"]["interval"]
  planned = (_load(os.path.join(out, "flags.json")) or {}).get("rounds", last["round"])
  if last["round"] < planned:
    word = f"not finished (round {last['round']} of {planned})"
    return {"rounds": last["round"], **{k: {"verdict": word, "text": "no reading before the last round"} for k in LETTERS}}
  p2 = _load(os.path.join(out, "p2.json"))
  needed = "" if p2 is None else f", lower end against {p2['dagger']['competence']['needed']:g}"
  res = {"rounds": last["round"],
         "a": {"verdict": "passes" if last["dagger"]["ok"] else "fails",
               "text": f"after round {last['round']}: competence {ci(c, '{:.3f}')} ({_per(c['per_replicate'])})"
                       + needed}}
  for k in ("b", "c", "d"):
    res[k] = {"verdict": NOT_PLAYED, "text": "no p2.json" if p2 is None else "no p2_x10.json"}
  if p2 is None:
    return res
  e = p2["dagger"]
  late = np.asarray(e["per_replicate"]["late"], np.float64)
  verdict, note = _verdict(e)
  res["b"] = {"verdict": verdict,
              "text": f"late {_per(late)}; late - ceiling {ci(e['late_minus_ceiling'], '{:+.3f}')}; late - data "
                      f"end {ci(e['held']['interval'], '{:+.3f}')} of (top - random){note}"}
  d = late - np.asarray(p2["control"]["per_replicate"]["late"], np.float64)
  iv = stats.replicate_interval(d)
  res["c"] = {"verdict": _sign(iv, "dagger above control", "dagger below control"),
              "text": f"held-out late, dagger - control: {ci(iv, '{:+.3f}')} ({_per(d, '{:+.2f}')})"}
  x10 = _load(os.path.join(out, "p2_x10.json"))
  if x10 is not None:
    x = x10["dagger"]
    d = np.asarray(x["per_replicate"]["late"], np.float64) - late
    iv = stats.replicate_interval(d)
    verdict, note = _verdict(x)
    res["d"] = {"verdict": f"{verdict}; " + _sign(iv, "keeps improving past its data's length", "falls back"),
                "text": f"10x: late {_per(x['per_replicate']['late'])}, late - data end "
                        f"{ci(x['held']['interval'], '{:+.3f}')}{note}; 10x - 1x late: {ci(iv, '{:+.3f}')} "
                        f"({_per(d, '{:+.2f}')})"}
  return res


def table(outs: list[str]) -> tuple[list[str], dict]:
  """Markdown lines: one row per reading, one cell per run, and the reading across runs ("unsettled"
  where they differ); counts {"readings", "settled"}."""
  runs = [readings(o) for o in outs]
  names = [f"{os.path.basename(os.path.normpath(o))} (round {r['rounds']})" for o, r in zip(outs, runs)]
  lines = ["| reading | " + " | ".join(names) + " | across runs |", "|---|" + "---|" * (len(runs) + 1)]
  settled = 0
  for k in LETTERS:
    verdicts = [r[k]["verdict"] for r in runs]
    across = seeds.across(verdicts) if len(runs) > 1 else verdicts[0]
    settled += not across.startswith(seeds.UNSETTLED)
    cells = [f"{r[k]['text']}: **{r[k]['verdict']}**" for r in runs]
    lines.append(f"| ({k}) | " + " | ".join(cells) + f" | **{across}** |")
  return lines, {"readings": len(LETTERS), "settled": settled}


@_named
def round_lines(out: str) -> list[str]:
  """One line per finished round: both models' competence and their paired difference, with seconds."""
  rounds = _load(os.path.join(out, "rounds.json"))
  if not rounds:
    raise ValueError(f"{out}: no rounds.json")
  lines = []
  for row in rounds[1:]:
    paired = ci(row.get("paired"), "{:+.3f}")          # "n/a" where the round has none
    lines.append(f"  round {row['round']}: dagger {ci(row['dagger']['interval'], '{:.3f}')} "
                 f"({_per(row['dagger']['per_replicate'])}), control {ci(row['control']['interval'], '{:.3f}')}, "
                 f"paired {paired}, {row['seconds']:.0f} s")
  return lines
