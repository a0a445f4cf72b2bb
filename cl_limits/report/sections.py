"""The detail sections of report.md after the verdict table, one per analysis stage or sweep, read from what
the stages wrote (their summary.json files, through cl_limits/stages/layout.py)."""
from __future__ import annotations

from cl_limits.stages import common, layout
from cl_limits.report.rows import ci, per_rep


def p2_section(workdir) -> list[str]:
  s = layout.summary(workdir, "p2")
  if not s or "unit" not in s.get("protocol", {}):
    return []
  p = s["protocol"]
  f3 = "{:.3f}"
  lines = ["## P2: beyond the ceiling, per replicate", "",
           f"Protocol: {common.actions_phrase(p['actions'])}, {p['horizon']}, context {p['context']}, "
           f"{len(s['task_ids'])} held-out tasks {s['task_ids']}; late = {p['late']}; unit: {p['unit']}. "
           f"Behaviour ceiling = best {p['ceiling_window_episodes']}-teacher-episode moving average of the "
           "replicate's data, the window chosen on half of its streams and read on the other half (both ways, "
           "averaged; the in-sample best, biased upward by the choice, in brackets); the ceiling of a teacher-data row is the larger of that and the teachers' greedy "
           f"return at the cut. Competence: {p['competence']} ({_task_list(s['competence_task_ids'])}); its "
           "power: the same gate read by a held-out stream of the data (one stream per task, as the rollout "
           "is) against the other streams' end, a perfect clone's reading. Trend: "
           f"{p['trend']}. Random policy: {s['random_return']:.3f}. Intervals: {p['ci']}.", "",
           "| row | replicate | cut (steps) | behaviour ceiling (in-sample best) | greedy at cut | ceiling | "
           "rise after the cut: greedy / behaviour (the gate's basis) | late | late - ceiling | trend | competence: imitator / data end (gain over "
           "random); a held-out stream of the data's gain (clone) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  fmt = lambda v: "n/a" if v is None else f3.format(v)
  for name, e in s["arms"].items():
    pr, c = e["per_replicate"], e["competence"]
    if "skipped" in e:
      for r in range(len(pr["ceiling"])):
        lines.append(f"| {name} | {r} | {_cut(pr, r)} | {_behaviour(pr, r)} | {fmt(pr['greedy_at_cut'][r])} | "
                     f"{fmt(pr['ceiling'][r])} | {_rise(pr, r)} | not run | | | "
                     f"{_comp(c, r)} |")
      lines.append(f"| {name} | mean [95% CI] | | | | {ci(e['ceiling'], f3)} | {e['headroom']['rise']:.3f} ({e['headroom'].get('basis', 'greedy')}) | "
                   f"{e['skipped']} | | | {_comp(c)} |")
      continue
    for r in range(len(pr["ceiling"])):
      lines.append(f"| {name} | {r} | {_cut(pr, r)} | {_behaviour(pr, r)} | {fmt(pr['greedy_at_cut'][r])} | "
                   f"{fmt(pr['ceiling'][r])} | {_rise(pr, r)} | {fmt(pr['late'][r])} | "
                   f"{fmt(e['late_minus_ceiling']['per_replicate'][r])} | {pr['trend'][r]:.4f} | "
                   f"{_comp(c, r)} |")
    lines.append(f"| {name} | mean [95% CI] | | | | {ci(e['ceiling'], f3)} | {e['headroom']['rise']:.3f} ({e['headroom'].get('basis', 'greedy')}) | "
                 f"{ci(e['late'], f3)} | {ci(e['late_minus_ceiling'], f3)} | {ci(e['trend'], '{:.4f}')} | "
                 f"{_comp(c)} |")
  lines += ["", "The behaviour ceiling is the return of the data the imitator saw (the teachers' epsilon-greedy "
            "actions); the greedy return at the cut is what the teachers' networks could do at that point. An "
            "imitator sampled more sharply than its teachers acted could pass the first without learning "
            "anything its data did not show, so a teacher-data row must pass both. " + _control_data(s, workdir)
            + "A teacher-data row's headroom "
            "reads the teachers' policy the protocol plays like: their final behaviour return where the "
            "protocol is at least as random as their behaviour (epsilon at or above their floor, or sampling "
            "at temperature 1 from an imitator of the recorded actions), else their best greedy evaluation "
            "after the cut.",
            "", "![P2 curves](p2/curves.png)", "",
            "The gap in view: the data the imitator saw (per kept episode), the imitator (per own episode) "
            "and the teachers (stream episode / gap: gap x streams of a teacher's episodes per kept one) on one "
            "axis. An imitator that replays its data follows the data, not the teachers.", "",
            "![the gap in view](p2/gap.png)", "",
            "TensorBoard: `tb/p2` (teacher, imitator and ceiling per row on the environment-step axis).", ""]
  return lines


_CONTROL_DATA = {
    "oracle": "The power control's data come from a noisy oracle, whose greedy policy is optimal throughout; its "
              "ceiling is its behaviour ceiling and its headroom is its own stream's return after the cut.",
    "teacher": "The power control's data come from each replicate's final DQN, greedy, with epsilon falling "
               "around it: its greedy policy is the same at every step of its stream, so its greedy return at "
               "the cut is its best, and under a protocol that plays greedy it has no headroom.",
    "searcher": "The power control's data come from a scripted searcher: its greedy policy is its behaviour's, "
                "which improves within its stream from what the stream shows, so its "
                "ceiling is its behaviour ceiling and its headroom is its own stream's return after the cut."}


def _control_data(s: dict, workdir) -> str:
  """What made the power control's data, as a sentence and a space (the summary's `generator`; a summary
  written before that field: the run's config), or "" where the run has no power control."""
  if not any(e.get("kind") == "power_control" for e in s["arms"].values()):
    return ""
  name = s.get("generator")
  if not name:
    config = layout.read_json(layout.path(workdir, "config.json")) or {}
    name = config.get("imitation", {}).get("ad_eps", {}).get("demonstrator", "oracle")
  return _CONTROL_DATA.get(name, _CONTROL_DATA["oracle"]) + " "


def _rise(pr: dict, r: int) -> str:
  """Replicate r's greedy and behaviour rises past the ceiling ('n/a' where not measured; older summaries
  hold only the gate's)."""
  if "behaviour_rise" not in pr:
    return "n/a" if pr["rise"][r] is None else f"{pr['rise'][r]:.3f}"
  g, b = pr["greedy_rise"][r], pr["behaviour_rise"][r]
  return f"{'n/a' if g is None else f'{g:.3f}'} / {b:.3f}"


def _cut(pr, r) -> str:
  return f"{int(pr['cut'][r]):,}" if "cut" in pr else "n/a"


def _behaviour(pr, r) -> str:
  """The behaviour ceiling (split streams) and, where recorded, the in-sample best beside it."""
  b = pr["behaviour_ceiling"][r]
  return f"{b:.3f}" + (f" ({pr['in_sample_ceiling'][r]:.3f})" if "in_sample_ceiling" in pr else "")


def _comp(c, r=None) -> str:
  """A competence cell: replicate r's imitator end / data end (gain over random), or the gain's interval
  (summaries made before the gain over random: the ratio of means)."""
  clone = c.get("clone")
  if r is not None:
    gain = c.get("per_replicate", [None] * (r + 1))[r]
    return (f"{c['imitator_end'][r]:.3f} / {c['data_end'][r]:.3f}"
            + ("" if gain is None else f" ({gain:.2f})")
            + ("" if not clone else f"; clone {clone['per_replicate'][r]:.2f}"))
  if "interval" not in c:
    return f"{c['ratio']:.2f} (ratio)"
  shown = "not measurable" if c["interval"] is None else ci(c["interval"], "{:.2f}")
  if clone:
    shown += "; clone " + ("not measurable" if clone["interval"] is None else ci(clone["interval"], "{:.2f}"))
  return shown


def p3_section(workdir) -> list[str]:
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
           f"Protocol: {common.actions_phrase(p['actions'])}, context {p['context']}; horizon = {p['horizon']}; "
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


def hybrid_section(workdir) -> list[str]:
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
    lines += [f"P2's test: {s['arm']} imitators on {len(s['task_ids'])} held-out tasks {s['task_ids']} for "
              f"{s['horizon_steps']:,} steps ({common.actions_phrase(p['actions'])}, context {p['context']}). "
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


def gap_section(workdir) -> list[str]:
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


def capacity_section(workdir) -> list[str]:
  s = layout.summary(workdir, "capacity")
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


def sensitivity_section(workdir) -> list[str]:
  s = layout.summary(workdir, "sensitivity")
  if not s:
    return []
  cols = s["order"]
  preds = [r["prediction"] for r in s["columns"][s["fixed"]]["rows"]]
  lines = ["## Sensitivity to the action temperature", "",
           f"The protocol fixed before the run: {s['fixed']} (the main table). The other columns re-run P1, "
           "P2 and P3 on the same teachers, imitators, tasks and keys"
           + (f"; P2 rows without headroom under the fixed protocol ({', '.join(s['skipped_p2_rows'])}) skipped "
              "their rollout there, and a column skips a row's rollout where that row has no headroom under "
              "the column's protocol (the gate reads the teachers' behaviour at temperature 1 for imitators of "
              "the recorded actions, their greedy policy below it)"
              if s["skipped_p2_rows"] else "")
           + f". The data-driven rule (highest competence return on training tasks after one truncated "
           f"history's steps) would have chosen: **{s['rule_choice']}**.", "",
           "| row | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
  for p in preds:
    cells = []
    for c in cols:
      r = next((r for r in s["columns"][c]["rows"] if r["prediction"] == p), None)
      cells.append("" if r is None else f"{ci(r['estimate'], r['fmt'])} {r['verdict']}")
    lines.append(f"| {short_prediction(p)} | " + " | ".join(cells) + " |")
  comp = " | ".join("" if s["columns"][c]["competence"] is None else f"{s['columns'][c]['competence']:.3f}"
                    for c in cols)
  lines.append(f"| competence return (rule) | {comp} |")
  for a in dict.fromkeys(a for c in cols for a in s["columns"][c].get("gates", {})):   # every P2 row's gate
    gs = [s["columns"][c].get("gates", {}).get(a) for c in cols]
    cells = ["" if g is None else ("not measurable" if g["interval"] is None else ci(g["interval"], "{:.2f}"))
             + (" ok" if g["ok"] else " FAILS") for g in gs]
    needed = next(g["needed"] for g in gs if g is not None)
    lines.append(f"| competence gate, {a}: gain over random (needs {needed:g} at the lower end) | "
                 + " | ".join(cells) + " |")
  lines += ["", "![sensitivity](sensitivity/sensitivity.png)", ""]
  return lines


def short_prediction(prediction: str) -> str:
  return prediction.split(" (")[0][:60]


def _task_list(ids) -> str:
  """'tasks [0, 1, 2]', or for long lists the count and the first few."""
  ids = list(ids)
  return f"tasks {ids}" if len(ids) <= 10 else f"{len(ids)} tasks: {ids[:5]} ... {ids[-1]}"
