"""The verdict rows and detail sections of report.md, one pair per analysis stage, read from what the
stages wrote (their summary.json files, through cl_limits/stages/layout.py)."""
from __future__ import annotations

from cl_limits.analysis import verdicts
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import layout


def ci(t, fmt="{:.2f}"):
  """'est [low, high]' of a (estimate, low, high) triple or a `stats.replicate_interval` dict."""
  if isinstance(t, dict):
    t = (t["estimate"], t["low"], t["high"])
  return f"{fmt.format(t[0])} [{fmt.format(t[1])}, {fmt.format(t[2])}]"


def per_rep(values, fmt="{:.2f}") -> str:
  """Every replicate's value, in replicate order."""
  if isinstance(values, dict):
    values = values["per_replicate"]
  return ", ".join("n/a" if v is None else fmt.format(v) for v in values)


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
  for mode in ("prompted", "empty"):
    m = s["modes"][mode]
    verdict, rule = verdicts.p1(_triple(m["over_behaviour"]), thr)
    greedy = (f"; / final greedy {ci(m['over_greedy'], '{:.3f}')}" if "over_greedy" in m else "")
    rows.append({"prediction": what[mode][0],
                 "measured": f"{s['arm']} on {len(s['task_ids'])} of the teachers' own tasks, {what[mode][1]}, "
                             f"{s['actions']} actions; late return (last {s['late_episodes']} of {s['episodes']} "
                             f"episodes) {ci(m['late'])} over its teachers' final behaviour return on the same tasks"
                             + greedy,
                 "estimate": m["over_behaviour"], "fmt": "{:.3f}", "per_replicate": per_rep(m["over_behaviour"], "{:.3f}"),
                 "gates": "", "verdict": verdict, "rule": rule})
  return rows


def _p2_gates(e) -> tuple[str, tuple]:
  h, c = e["headroom"], e["competence"]
  gates = (f"headroom: greedy rise past the ceiling {h['rise']:.3f} (needs {h['needed']:.3f}: "
           f"{h['fraction']:g} x ({h['top']:.2f} - random {h['random']:.3f})) {'ok' if h['ok'] else 'FAILS'}; "
           f"competence: {c['ratio']:.2f} of its data on the training tasks (needs {c['needed']:g}) "
           f"{'ok' if c['ratio'] >= c['needed'] else 'FAILS'}")
  return gates, (h["rise"], h["needed"], c["ratio"], c["needed"])


def p2_rows(workdir) -> list[dict]:
  """Per P2 source: late - ceiling and the trend; the power control with the same rule."""
  s = layout.summary(workdir, "p2")
  if not s or "protocol" not in s or "unit" not in s.get("protocol", {}):
    return []
  unit, rows, trends = s["protocol"]["unit"], [], []
  order = sorted(s["arms"].items(), key=lambda kv: (kv[1]["kind"] == "power_control", kv[1]["fraction"]))
  for name, e in order:
    gates, (rise, needed, comp, comp_needed) = _p2_gates(e)
    skipped = "skipped" in e
    diff = e["ceiling"] if skipped else e["late_minus_ceiling"]      # no late return: the gate decides
    verdict, rule = verdicts.p2_gated(_triple(diff), rise, needed, comp, comp_needed)
    pr = e["per_replicate"]
    control = e["kind"] == "power_control"
    head = (f"P2 power control: AD-epsilon data cut half way through its epsilon decay, {name} (expected: "
            "refuted)" if control else
            f"P2 beyond the ceiling, data cut at {e['fraction']:.0%} of training, {name} (predicted: no "
            "improvement past the ceiling)")
    ceiling_txt = ("the data's behaviour ceiling" if control else
                   "the ceiling (the larger of the data's behaviour ceiling and the teachers' greedy return at the cut)")
    ceil_txt = (f"ceiling {ci(e['ceiling'], '{:.3f}')} (behaviour {per_rep(pr['behaviour_ceiling'], '{:.3f}')}"
                + ("" if control else f"; greedy at cut {per_rep(pr['greedy_at_cut'], '{:.3f}')}") + ")")
    if skipped:
      measured = (f"{ceil_txt}, {unit}; the teachers' greedy policy left no room above it after the cut, so no "
                  f"late return could pass it: the {e['horizon_steps']:,}-step held-out rollout was not run "
                  "(the estimate shown is the ceiling)")
    else:
      measured = (f"late return (last {e['late_episodes']} of {e['episodes']} episodes, {e['horizon_steps']:,} steps "
                  f"on {len(s['task_ids'])} held-out tasks) minus {ceiling_txt}, {unit}; late "
                  f"{ci(e['late'], '{:.3f}')}, {ceil_txt}")
    if control:
      rule = rule + ". " + verdicts.power_control(verdict)
    rows.append({"prediction": head, "measured": measured, "estimate": diff, "fmt": "{:.3f}",
                 "per_replicate": per_rep(diff, "{:.3f}"), "gates": gates,
                 "verdict": verdict, "rule": rule})
    if skipped:
      continue
    t_verdict, t_rule = verdicts.trend(_triple(e["trend"]), rise, needed, e["headroom"]["top"],
                                       e["headroom"]["random"])
    trends.append({"prediction": f"trend, {name}: the frozen imitator's return stops rising late in the rollout "
                               f"({'expected: refuted' if control else 'predicted: yes'})",
                 "measured": f"slope of return ({unit}) against log(episode) over the second half of the "
                             f"{e['episodes']} episodes, per replicate",
                 "estimate": e["trend"], "fmt": "{:.4f}", "per_replicate": per_rep(e["trend"], "{:.4f}"),
                 "gates": gates.split(";")[0], "verdict": t_verdict, "rule": t_rule})
  return rows + trends


def hybrid_rows(workdir) -> list[dict]:
  """The hybrid section: does test-time SGD recover learning? (P2 protocol, and each P3 target)."""
  out = []
  s = layout.summary(workdir, "hybrid")
  if s and isinstance(s.get("ceiling"), dict):
    for k, e in s["learners"].items():
      if k == "frozen":
        continue
      verdict, rule = verdicts.hybrid(_triple(e["late_minus_frozen"]))
      out.append({"prediction": f"hybrid ({k}), P2 protocol: SGD on its own experience every "
                                f"{s['learner']['act_steps']:,} steps",
                  "measured": f"{s['arm']} on {len(s['task_ids'])} held-out tasks, {s['horizon_steps']:,} steps: "
                              f"late ({s['unit']}) {ci(e['late'], '{:.3f}')} minus the frozen imitator's "
                              f"{ci(s['learners']['frozen']['late'], '{:.3f}')} (same tasks and keys); late - "
                              f"ceiling {ci(e['late_minus_ceiling'], '{:.3f}')}",
                  "estimate": e["late_minus_frozen"], "fmt": "{:.3f}",
                  "per_replicate": per_rep(e["late_minus_frozen"], "{:.3f}"), "gates": "",
                  "verdict": verdict, "rule": rule})
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
                  "gates": "", "verdict": verdict, "rule": rule})
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
        prediction = (f"P3 positive control: {what} on held-out goals of its training family ({t['env']} "
                      f"{t['env_kwargs']}) (expected: refuted)")
        rule += ". " + verdicts.positive_control(verdict)
      else:
        prediction = (f"P3 transplant to {name} ({t['env']} {t['env_kwargs']}), {what} (predicted: it does "
                      "not learn it as a DQN does)")
      rows.append({"prediction": prediction,
                   "measured": f"{t.get('arm', s.get('arm'))}: final return, normalised (0 random, 1 DQN "
                               f"final), {e['tasks']} {unit}, {t['horizon_steps']:,} steps; AUC {ci(e['auc'])} vs the "
                               f"DQN's {ci(dqn['auc']) if 'auc' in dqn else 'n/a'}",
                   "estimate": e["final"], "per_replicate": per_rep(e.get("final_per_replicate", [])),
                   "gates": "", "verdict": verdict, "rule": rule})
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


def _p2_section(workdir) -> list[str]:
  s = layout.summary(workdir, "p2")
  if not s or "unit" not in s.get("protocol", {}):
    return []
  p = s["protocol"]
  f3 = "{:.3f}"
  lines = ["## P2: beyond the ceiling, per replicate", "",
           f"Protocol: {rollout_lib.actions_phrase(p['actions'])}, {p['horizon']}, context {p['context']}, "
           f"{len(s['task_ids'])} held-out tasks {s['task_ids']}; late = {p['late']}; unit: {p['unit']}. "
           f"Behaviour ceiling = best {p['ceiling_window_episodes']}-teacher-episode moving average of the "
           "replicate's data; the ceiling of a teacher-data row is the larger of that and the teachers' greedy "
           f"return at the cut. Competence: {p['competence']} (tasks {s['competence_task_ids']}). Trend: "
           f"{p['trend']}. Random policy: {s['random_return']:.3f}. Intervals: {p['ci']}.", "",
           "| row | replicate | behaviour ceiling | greedy at cut | ceiling | greedy rise after the cut | late | "
           "late - ceiling | trend | competence (imitator / data end) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  fmt = lambda v: "n/a" if v is None else f3.format(v)
  for name, e in s["arms"].items():
    pr, c = e["per_replicate"], e["competence"]
    if "skipped" in e:
      for r in range(len(pr["ceiling"])):
        lines.append(f"| {name} | {r} | {fmt(pr['behaviour_ceiling'][r])} | {fmt(pr['greedy_at_cut'][r])} | "
                     f"{fmt(pr['ceiling'][r])} | {fmt(pr['rise'][r])} | not run | | | "
                     f"{fmt(c['imitator_end'][r])} / {fmt(c['data_end'][r])} |")
      lines.append(f"| {name} | mean [95% CI] | | | {ci(e['ceiling'], f3)} | {e['headroom']['rise']:.3f} | "
                   f"{e['skipped']} | | | {c['ratio']:.2f} |")
      continue
    for r in range(len(pr["ceiling"])):
      lines.append(f"| {name} | {r} | {fmt(pr['behaviour_ceiling'][r])} | {fmt(pr['greedy_at_cut'][r])} | "
                   f"{fmt(pr['ceiling'][r])} | {fmt(pr['rise'][r])} | {fmt(pr['late'][r])} | "
                   f"{fmt(e['late_minus_ceiling']['per_replicate'][r])} | {pr['trend'][r]:.4f} | "
                   f"{fmt(c['imitator_end'][r])} / {fmt(c['data_end'][r])} |")
    lines.append(f"| {name} | mean [95% CI] | | | {ci(e['ceiling'], f3)} | {e['headroom']['rise']:.3f} | "
                 f"{ci(e['late'], f3)} | {ci(e['late_minus_ceiling'], f3)} | {ci(e['trend'], '{:.4f}')} | "
                 f"{c['ratio']:.2f} |")
  lines += ["", "The behaviour ceiling is the return of the data the imitator saw (the teachers' epsilon-greedy "
            "actions); the greedy return at the cut is what the teachers' networks could do at that point. An "
            "imitator sampled more sharply than its teachers acted could pass the first without learning "
            "anything its data did not show, so a teacher-data row must pass both. The power control's data "
            "come from a noisy oracle, whose greedy policy is optimal throughout; its ceiling is its behaviour "
            "ceiling and its headroom is its own stream's return after the cut.",
            "", "![P2 curves](p2/curves.png)", "",
            "The gap in view: the data the imitator saw (per kept episode), the imitator (per own episode) "
            "and the teachers (stream episode / gap: gap x streams of a teacher's episodes per kept one) on one "
            "axis. An imitator that replays its data follows the data, not the teachers.", "",
            "![the gap in view](p2/gap.png)", "",
            "TensorBoard: `tb/p2` (teacher, imitator and ceiling per row on the environment-step axis).", ""]
  return lines


def _p3_section(workdir) -> list[str]:
  return p3_section_from(layout.summary(workdir, "p3"),
                         "## P3 within family: transplant to grid worlds the imitator never saw",
                         "TensorBoard: `tb/p3/<target>` (DQN, imitators and the random level on one step "
                         "axis); the DQNs' own runs under `p3/<target>/teachers/tb`.")


def p3_section_from(s, title: str, tb_note: str, unit: str = "tasks") -> list[str]:
  """The detail table of a P3-shaped summary."""
  if not s:
    return []
  p = s["protocol"]
  lines = [title, "",
           f"Protocol: {rollout_lib.actions_phrase(p['actions'])}, context {p['context']}; horizon = {p['horizon']}; "
           f"normalisation {p['normalisation']}; AUC = {p['auc']}; final = {p['final']}. The DQN's own AUC "
           f"and final use its epsilon-greedy training returns (its final is 1 by construction, up to the "
           f"spread over its seeds). Intervals: {p['ci']}.", "",
           f"| target | role | learner | {unit} | normalised AUC | normalised final | per replicate | final return (raw mean) |",
           "|---|---|---|---|---|---|---|---|"]
  for name, t in s["targets"].items():
    if t.get("note"):
      lines.append(f"| {name} | | | | | | | {t['note']} |")
    role = t.get("role", "transfer")
    for k, e in t["learners"].items():
      if "final" not in e:
        lines.append(f"| {name} | {role} | {k} | | | | | {e.get('note', '')} |")
        continue
      lines.append(f"| {name} | {role} | {k} | {e['tasks']} | {ci(e['auc'])} | {ci(e['final'])} | "
                   f"{per_rep(e.get('final_per_replicate', []))} | {e['final_raw']:.2f} |")
  lines += ["", "Random policy mean return per target: " + "; ".join(
      f"{n} {sum(t['random_return']) / len(t['random_return']):.2f}" for n, t in s["targets"].items())
      + ". DQN final return: " + "; ".join(
      f"{n} {sum(t['dqn_final_return']) / len(t['dqn_final_return']):.2f}" for n, t in s["targets"].items())
      + ".", "", tb_note, ""]
  return lines


def _hybrid_section(workdir) -> list[str]:
  s = layout.summary(workdir, "hybrid")
  p3 = layout.summary(workdir, "p3") or {}
  if not (s and isinstance(s.get("ceiling"), dict)) and not p3.get("hybrid"):
    return []
  lines = ["## The hybrid: does test-time SGD recover learning?", "",
           "Not a P3 verdict: Byrnes' prediction is about an imitator whose weights are frozen. Every "
           "comparison here is paired: the frozen imitator and each hybrid run on the same tasks from the "
           "same keys, so they act identically until the hybrid's first update.", ""]
  if s and isinstance(s.get("ceiling"), dict):
    p, c = s["protocol"], s["learner"]
    f3 = "{:.3f}"
    lines += [f"P2 protocol: {s['arm']} imitators on {len(s['task_ids'])} held-out tasks {s['task_ids']} for "
              f"{s['horizon_steps']:,} steps ({rollout_lib.actions_phrase(p['actions'])}, context {p['context']}). "
              f"Every {c['act_steps']:,} steps: {c['sgd_steps']} AdamW steps (lr {c['lr']:g}, batch "
              f"{c['batch_size']} x {c['seq_len']} steps) of the AD loss on its own last {c['buffer_steps']:,} "
              f"transitions, weighting '{c['weighting']}' (top fraction {c['top_fraction']:g}); 'full' updates "
              f"every weight, 'lora' a rank-{c['lora_rank']} adapter only. Late = {p['late']}; unit: {s['unit']}; "
              f"ceiling {ci(s['ceiling'], f3)} (per replicate {per_rep(s['ceiling'], f3)}). Intervals: {p['ci']}.",
              "", "| learner | late | per replicate | late - frozen | late - ceiling |", "|---|---|---|---|---|"]
    for k, e in s["learners"].items():
      lines.append(f"| {k} | {ci(e['late'], f3)} | {per_rep(e['late'], f3)} | "
                   f"{ci(e['late_minus_frozen'], f3) if 'late_minus_frozen' in e else ''} | "
                   f"{ci(e['late_minus_ceiling'], f3)} |")
    lines += ["", "![hybrid vs frozen](hybrid/curves.png)", "", "TensorBoard: `tb/hybrid`.", ""]
  for name, t in (p3.get("hybrid") or {}).items():
    lines += [f"P3 target {name} ({t['env']} {t['env_kwargs']}), tasks {t['task_ids']}, {t['horizon_steps']:,} "
              "steps, normalised per task (0 random, 1 DQN final):", "",
              "| learner | normalised AUC | normalised final | final - frozen | per replicate |",
              "|---|---|---|---|---|"]
    for k, e in t["learners"].items():
      if "final" not in e:
        continue
      lines.append(f"| {k} | {ci(e['auc'])} | {ci(e['final'])} | "
                   f"{ci(e['final_minus_frozen']) if 'final_minus_frozen' in e else ''} | "
                   f"{per_rep(e.get('final_per_replicate', []))} |")
    lines.append("")
  return lines


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


def _gap_section(workdir) -> list[str]:
  s = layout.summary(workdir, "gap")
  if not s:
    return []
  lines = ["## Gap x streams sweep", "", s.get("protocol", ""), "",
           "| run | gap | streams | gap x streams | early | late | episodes to half (per replicate) | "
           "P2 late - ceiling | failed |", "|---|---|---|---|---|---|---|---|---|"]
  for r in s["runs"]:
    if r.get("error"):
      lines.append(f"| {r['name']} | | | | | | | | {r['error']} |")
      continue
    lc = ci(r["late_minus_ceiling"], "{:.3f}") if "late_minus_ceiling" in r else ""
    lines.append(f"| {r['name']} | {r['gap']} | {r['streams']} | {r['kept_equivalent']} | {ci(r['early'])} | "
                 f"{ci(r['late'])} | {per_rep(r['episodes_to_half_per_replicate'], '{}')} | {lc} | |")
  lines += ["", "![gap x streams](gap/gap.png)", ""]
  return lines


def _capacity_section(workdir) -> list[str]:
  s = _capacity_summary(workdir)
  if not s:
    return []
  lines = ["## Capacity sweep", "", s.get("protocol", ""), "",
           "| run | context (episodes) | model | early (episodes 1-3) | late | late - early | P2 late - ceiling "
           "| trend | failed |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in s["runs"]:
    if r.get("error"):
      lines.append(f"| {r['name']} | | | | | | | | {r['error']} |")
      continue
    p2 = (f"{ci(r['late_minus_ceiling'], '{:.3f}')} | {ci(r['trend'], '{:.4f}')}" if "trend" in r else " | ")
    lines.append(f"| {r['name']} | {r['context_episodes']} | {r['model']} | {ci(r['early'])} | "
                 f"{ci(r['late'])} | {ci(r['improvement'])} | {p2} | |")
  lines.append("")
  return lines
