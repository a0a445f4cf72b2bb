"""The verdict rows of report.md, one function per analysis stage or sweep, read from what the stages
wrote (their summary.json files, through cl_limits/stages/layout.py); the detail sections are in
sections.py; what makes a verdict count is in gates.py."""
from __future__ import annotations

import numpy as np

from cl_limits.analysis import verdicts
from cl_limits.report.gates import ci, fidelity_gate, p2_verdict, per_rep  # noqa: F401 (ci: sections)
from cl_limits import envs as envs_lib
from cl_limits.stages import layout


def one_task(name, kwargs) -> bool:
  """An env with a single task (a MinAtar game): its "held-out" task is the training task, and there is no
  hidden goal to identify."""
  kwargs = kwargs.to_dict() if hasattr(kwargs, "to_dict") else dict(kwargs or {})
  return envs_lib.num_tasks(envs_lib.make(name, **kwargs)) == 1


def fidelity_of(workdir, arm) -> dict | None:
  """The imitation summary's fidelity of `arm` (per replicate: kl, ce, entropy, nll, by thirds), or None."""
  s = layout.summary(workdir, "imitators")
  if not arm or not s or "fidelity" not in s:
    return None
  return s["fidelity"]["per_arm"].get(arm)


def fidelity_cell(workdir, arm) -> str:
  """'KL 0.04 (0.03, 0.05, ...) nats; CE 0.61 vs behaviour H 0.57' for the imitator arm a row uses:
  held-out KL(behaviour || imitator) per replicate, its mean, and the mean cross-entropy beside the
  behaviour policy's entropy; '' when the row uses no imitator."""
  if not arm:
    return ""
  f = fidelity_of(workdir, arm)
  mem = memorising_note(workdir, arm)
  if f is None:
    return f"{arm}: not measured{mem}"
  import numpy as np  # noqa: PLC0415
  kl = np.asarray(f["kl"], float)
  if not np.isfinite(kl).all():
    return f"{arm}: behaviour policy not recorded (held-out NLL {np.nanmean(f['nll']):.3f} nats){mem}"
  return (f"{arm}: KL {kl.mean():.3f} nats ({per_rep(list(kl), '{:.3f}')}); CE {np.mean(f['ce']):.3f} vs "
          f"behaviour H {np.mean(f['entropy']):.3f}{mem}")


def memorising_note(workdir, arm) -> str:
  """'; memorising: training loss below its data's behaviour entropy in 3 of 5 replicates' where the
  imitation summary flags it (`fidelity.memorising`), else ''."""
  s = layout.summary(workdir, "imitators") or {}
  flags = (s.get("memorising") or {}).get(arm)
  if not flags or not any(flags):
    return ""
  return (f"; memorising: training loss below its data's behaviour entropy in {sum(map(bool, flags))} of "
          f"{len(flags)} replicates")


def _triple(iv) -> tuple:
  return (iv["estimate"], iv["low"], iv["high"])


def p1_rows(config, workdir) -> list[dict]:
  """P1 (prompted with the teacher's last episodes) and goal identification (empty context)."""
  s = layout.summary(workdir, "p1")
  if not s or "modes" not in s:
    return []
  thr = float(s["threshold"])
  rows = []
  what = {"prompted": ("P1 snapshot: prompted with its teacher's last episodes on the same task, the imitator "
                       "plays as that teacher did at the end of training (predicted: yes)",
                       f"context filled with the last {s['prompt_steps']} steps of its replicate's teacher"),
          "empty": ("goal identification: the same imitator from an empty context (not P1: with one hidden "
                    "goal per task it must find the goal first)", "empty context")}
  if one_task(config.env.name, config.env.kwargs):       # nothing hidden to find
    what["empty"] = ("P1 snapshot, unprompted: the same imitator from an empty context (the frame is the whole "
                     "state, so no goal is hidden; predicted: yes)", "empty context")
  for mode in ("prompted", "empty"):
    m = s["modes"][mode]
    verdict, rule = verdicts.p1(_triple(m["over_behaviour"]), thr)
    kind = "p1" if mode == "prompted" or one_task(config.env.name, config.env.kwargs) else "goal_identification"
    if kind == "goal_identification":        # not a prediction: reported without a verdict
      verdict, rule = "reported, no prediction", "what the empty-context imitator does: " + rule
    else:
      verdict, rule = fidelity_gate(verdict, rule, fidelity_of(workdir, s["arm"]),
                                    float(config.experiments.p1.get("max_kl", float("inf"))))
    greedy = (f"; / final greedy {ci(m['over_greedy'], '{:.3f}')}" if "over_greedy" in m else "")
    rows.append({"prediction": what[mode][0],
                 "measured": f"{s['arm']} on {len(s['task_ids'])} of the teachers' own tasks, {what[mode][1]}, "
                             f"{s['actions']} actions; late return (last {s['late_episodes']} of {s['episodes']} "
                             f"episodes) {ci(m['late'])} over its teachers' final behaviour return on the same tasks"
                             + greedy,
                 "estimate": m["over_behaviour"], "fmt": "{:.3f}", "per_replicate": per_rep(m["over_behaviour"], "{:.3f}"),
                 "gates": "", "verdict": verdict, "rule": rule, "arm": s["arm"], "kind": kind, "threshold": thr})
  return rows


def data_rise(e) -> float | None:
  """The kept data's own rise in the row's unit (the learning-in-data gate's mean over replicates, which it
  holds as a fraction of (top - random)); None for summaries made before that gate."""
  g = e.get("learning")
  if not g:
    return None
  rises = np.asarray(g["per_replicate"], np.float64)
  return float(np.mean(rises)) * (float(e["headroom"]["top"]) - float(e["headroom"]["random"]))


def p2_rows(workdir) -> list[dict]:
  """Per P2 source: late - ceiling and the trend; the power control with the same rule."""
  s = layout.summary(workdir, "p2")
  if not s or "protocol" not in s or "unit" not in s.get("protocol", {}):
    return []
  unit, rows, trends = s["protocol"]["unit"], [], []
  same_game = "the teachers' own game (one task)"     # held-out tasks = training tasks: a one-task env
  rank = {"p2": 0, "power_control": 1, "known_positive": 2}
  order = sorted(s["arms"].items(), key=lambda kv: (rank[kv[1]["kind"]], kv[1]["fraction"]))
  kept = (layout.read_json(layout.path(workdir, "imitators", "data.json")) or {}).get("arms", {})
  start = lambda name: (f" (from {kept[name]['start']:.1%} of each stream: the episodes before it dropped)"
                        if kept.get(name, {}).get("start") else "")
  for name, e in order:
    gates, verdict, rule, g = p2_verdict(e)
    rise, needed, comp_ok, held_ok, learning_ok, clone = (g[k] for k in ("rise", "needed", "comp_ok", "held_ok",
                                                                         "learning_ok", "clone_ok"))
    skipped = "skipped" in e
    diff = e["ceiling"] if skipped else e["late_minus_ceiling"]      # no late return: the gate decides
    pr = e["per_replicate"]
    control = e["kind"] in ("power_control", "known_positive")
    searcher = s.get("generator") == "searcher"
    how = s.get("generator_description") or envs_lib.grid.DarkRoom.search_description   # summaries before the field
    head = {"power_control": (f"P2 power control: a scripted searcher's histories cut at {e['fraction']:.0%} of its "
                              f"stream, {name}: {how} (expected: refuted)"
                              if searcher else f"P2 power control: AD-epsilon data cut half way through its "
                              f"epsilon decay, {name} (expected: refuted)"),
            "known_positive": (f"P2 known positive: no imitator, the searcher itself continued past the same cut "
                               f"({name}) (must be refuted)" if searcher else
                               f"P2 known positive: no imitator, the AD-epsilon generator itself continued past "
                               f"the same cut ({name}), epsilon still falling (must be refuted)"),
            "p2": f"P2 beyond the ceiling, data cut at {e['fraction']:.0%} of training{start(name)}, {name} (predicted: no "
                  "improvement past the ceiling)"}[e["kind"]]
    demo = control and all(v is not None for v in pr.get("greedy_at_cut") or [None])   # its demonstrator's return
    owner = "its demonstrator's" if demo else "the teachers'"
    whose = f"{owner} {'greedy' if demo else e['headroom'].get('basis', 'greedy')}"      # whose policy had no room
    ceiling_txt = ("the data's behaviour ceiling" if control and not demo else
                   f"the ceiling (the larger of the data's behaviour ceiling and {owner} greedy return at the cut)")
    ceil_txt = (f"ceiling {ci(e['ceiling'], '{:.3f}')} (behaviour {per_rep(pr['behaviour_ceiling'], '{:.3f}')}"
                + ("" if control and not demo else f"; greedy at cut {per_rep(pr['greedy_at_cut'], '{:.3f}')}") + ")")
    if skipped:
      measured = (f"{ceil_txt}, {unit}; {whose} policy left no room above it after the cut, so no "
                  f"late return could pass it: the {e['horizon_steps']:,}-step held-out rollout was not run "
                  "(the estimate shown is the ceiling)")
    else:
      eps = e.get("episodes_per_replicate")
      window = (f"last {e['late_episodes']} of {e['episodes']} episodes" if not eps or min(eps) == max(eps) else
                f"last {e['late_fraction']:.0%} of each replicate's own {min(eps):,.0f}-{max(eps):,.0f} episodes")
      measured = (f"late return ({window}, {e['horizon_steps']:,} steps "
                  f"in {same_game if s.get('competence_task_ids') == s['task_ids'] else str(len(s['task_ids'])) + ' held-out tasks'}) "
                  f"minus {ceiling_txt}, {unit}; late "
                  f"{ci(e['late'], '{:.3f}')}, {ceil_txt}")
    if e["kind"] == "power_control":
      rule = rule + ". " + verdicts.power_control(verdict, comp_ok)
    elif e["kind"] == "known_positive":
      rule = (rule + ". A learner known to keep improving past its data, scored exactly as the imitators are: "
              + ("the P2 scoring says refuted when it should" if verdict == verdicts.REFUTED else
                 f"it came out {verdict}: the P2 scoring itself is broken"))
    rows.append({"prediction": head, "measured": measured, "estimate": diff, "fmt": "{:.3f}",
                 "per_replicate": per_rep(diff, "{:.3f}"), "gates": gates,
                 "verdict": verdict, "rule": rule, "arm": "" if e["kind"] == "known_positive" else name,
                 "kind": e["kind"], "competence_ok": comp_ok})
    if skipped or e["kind"] == "known_positive":    # the generator's epsilon reaches its floor early: no trend
      continue
    top, rnd, own_rise = e["headroom"]["top"], e["headroom"]["random"], data_rise(e)
    t_verdict, t_rule = verdicts.trend(_triple(e["trend"]), rise, needed, top, rnd, data_rise=own_rise)
    if own_rise is not None:        # the rule as first registered, shown beside (amended 2026-12-04)
      t_rule += f" (by the rule before 2026-12-04: {verdicts.trend(_triple(e['trend']), rise, needed, top, rnd)[0]})"
    if t_verdict == verdicts.SUPPORTED and learning_ok is False:      # the trend's gates are the row's
      t_verdict = verdicts.NO_LEARNING
    elif t_verdict == verdicts.SUPPORTED and not comp_ok:
      t_verdict = verdicts.NO_POWER if clone is False else verdicts.BELOW_DATA
    elif t_verdict == verdicts.SUPPORTED and held_ok is False:
      t_verdict = verdicts.COLLAPSED
    if control:                      # a control's trend is no prediction: shown, not decided
      t_verdict, t_rule = "reported, no prediction", f"by the trend rule it would read {t_verdict}: {t_rule}"
    trends.append({"prediction": f"trend, {name}: the frozen imitator's return stops rising late in the rollout "
                               f"({'reported, no prediction' if control else 'predicted: yes'})",
                 "measured": f"slope of return ({unit}) against log(episode) over the second half of the "
                             f"{e['episodes']} episodes, per replicate",
                 "estimate": e["trend"], "fmt": "{:.4f}", "per_replicate": per_rep(e["trend"], "{:.4f}"),
                 "gates": gates.split(";")[0], "verdict": t_verdict, "rule": t_rule, "arm": name,
                 "kind": "trend_control" if control else "p2_trend"})
  if s.get("power_control_note"):
    rows.append({"prediction": "P2 power control", "measured": s["power_control_note"], "estimate": None,
                 "verdict": "none applies", "rule": "a power control needs data from a learner known to "
                 "improve past the cut, scored by the same rule"})
  return rows + trends


def hybrid_rows(workdir) -> list[dict]:
  """The hybrid section: does test-time SGD recover learning? (On P2's test, and in each P3 target.) A row
  names the actions it played: the evaluation section's, which are P2's own only where P2 plays them."""
  out = []
  s = layout.summary(workdir, "hybrid")
  if s and isinstance(s.get("ceiling"), dict):
    for k, e in s["learners"].items():
      if k == "frozen":
        continue
      verdict, rule = verdicts.hybrid(_triple(e["late_minus_frozen"]))
      out.append({"prediction": f"hybrid ({k}), P2's test, {s['protocol']['actions']}: SGD on its own experience every "
                                f"{s['learner']['act_steps']:,} steps",
                  "measured": f"{s['arm']} on {len(s['task_ids'])} held-out tasks, {s['horizon_steps']:,} steps: "
                              f"late ({s['unit']}) {ci(e['late'], '{:.3f}')} minus the frozen imitator's "
                              f"{ci(s['learners']['frozen']['late'], '{:.3f}')} (same tasks and keys); late - "
                              f"ceiling {ci(e['late_minus_ceiling'], '{:.3f}')}",
                  "estimate": e["late_minus_frozen"], "fmt": "{:.3f}",
                  "per_replicate": per_rep(e["late_minus_frozen"], "{:.3f}"), "gates": "",
                  "verdict": verdict, "rule": rule, "arm": s["arm"]})
  p3 = layout.summary(workdir, "p3")
  for name, t in ((p3 or {}).get("hybrid") or {}).items():
    for k, e in t["learners"].items():
      if k in ("dqn", "frozen") or "final_minus_frozen" not in e:
        continue
      verdict, rule = verdicts.hybrid(e["final_minus_frozen"])
      out.append({"prediction": f"hybrid ({k}) in the P3 target {name} ({t['env']})",
                  "measured": f"normalised final (0 random, 1 DQN) {ci(e['final'])} minus the frozen imitator's "
                              f"{ci(t['learners']['frozen']['final'])} on the same {e['tasks']} tasks and keys",
                  "estimate": e["final_minus_frozen"], "per_replicate": per_rep(e["final_minus_frozen_per_replicate"]),
                  "gates": "", "verdict": verdict, "rule": rule, "arm": p3.get("arm", "")})
  return out


def p3_rows(config, workdir) -> list[dict]:
  """One row per P3 target for the frozen imitator (the positive control last)."""
  return p3_rows_from(layout.summary(workdir, "p3"))


def p3_rows_from(s, unit: str = "tasks") -> list[dict]:
  """Verdict rows of a P3-shaped summary ({"targets": {name: {"learners": ...}}, "threshold", "arm"})."""
  if not s:
    return []
  rows = []
  targets = sorted(s["targets"].items(), key=lambda kv: kv[1].get("role") == "positive_control")
  for name, t in targets:
    dqn = t["learners"].get("dqn", {})
    control = t.get("role") == "positive_control"
    for k, e in t["learners"].items():
      if k == "dqn" or "final" not in e or k.startswith("hybrid") or k.startswith("frozen_"):
        continue
      verdict, rule = verdicts.p3(e["final"], s["threshold"])
      what = t.get("labels", {}).get(k) or ("frozen imitator" if k == "frozen" else k)
      if control:
        on = ("its training game itself, scored against its own teachers' curve" if one_task(t["env"], t["env_kwargs"])
              else "held-out goals of its training family")
        prediction = (f"P3 positive control: {what} on {on} ({t['env']} {t['env_kwargs']}) (expected: refuted)")
        rule += ". " + verdicts.positive_control(verdict)
      else:
        prediction = (f"P3 transplant to {name} ({t['env']} {t['env_kwargs']}), {what} (predicted: it does "
                      "not learn it as a DQN does)")
      rows.append({"prediction": prediction,
                   "measured": f"{t.get('arm', s.get('arm'))}: final return, normalised (0 random, 1 DQN "
                               f"final), {e['tasks']} {unit}, {t['horizon_steps']:,} steps; AUC {ci(e['auc'])} vs the "
                               f"DQN's {ci(dqn['auc']) if 'auc' in dqn else 'n/a'}",
                   "estimate": e["final"], "per_replicate": per_rep(e.get("final_per_replicate", [])),
                   "gates": "", "verdict": verdict, "rule": rule, "arm": t.get("arm", s.get("arm", "")),
                   "kind": "p3_positive_control" if control else "p3", "threshold": s["threshold"]})
  return rows


def _capacity_summary(workdir) -> dict | None:
  return layout.summary(workdir, "capacity")


def capacity_rows(workdir) -> list[dict]:
  s = _capacity_summary(workdir)
  if not s:
    return []
  rows = []
  for c in s.get("comparisons", []):
    verdict, rule = verdicts.capacity(c["gain"])
    rows.append({"prediction": f"capacity ({c['axis']}): in-context learning plateaus",
                 "measured": f"{c.get('measure', 'late return')} at {c['larger']} minus at {c['smaller']} "
                             "(mean over replicates, paired by replicate)",
                 "estimate": c["gain"], "fmt": "{:.3f}", "verdict": verdict, "rule": rule})
  return rows


def gap_rows(workdir) -> list[dict]:
  s = layout.summary(workdir, "gap")
  if not s or not s.get("replay_slope"):
    return []
  iv = s["replay_slope"]
  verdict, rule = verdicts.replay(_triple(iv))
  return [{"prediction": "gap x streams: does the imitator's in-context speed follow how much teacher "
                         "experience a kept episode stands for?",
           "measured": f"slope of log(episodes to half the improvement) on log(gap x streams) over "
                       f"{len([r for r in s['runs'] if 'error' not in r])} runs, per replicate "
                       f"({s['replay_slope_replicates_used']} with enough improving runs)",
           "estimate": iv, "fmt": "{:.2f}", "per_replicate": per_rep(iv), "gates": "",
           "verdict": verdict, "rule": rule}]
