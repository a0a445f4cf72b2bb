"""The verdict rows and detail sections of report.md, one pair per analysis stage, read from what the
stages wrote (their summary.json files, through cl_limits/stages/layout.py)."""
from __future__ import annotations

from cl_limits.analysis import verdicts
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import layout


def ci(t, fmt="{:.2f}"):
  return f"{fmt.format(t[0])} [{fmt.format(t[1])}, {fmt.format(t[2])}]"


def p1_row(config, workdir) -> dict | None:
  """P1 from the p1 stage: the snapshot imitator's late return on the teachers' own tasks / their final."""
  s = layout.summary(workdir, "p1")
  if not s or not s.get("late_over_teacher"):
    return None
  ratio = s["late_over_teacher"]
  verdict, rule = verdicts.p1(ratio, float(config.experiments.p1.threshold))
  return {"prediction": "P1 snapshot: imitating the teachers' final segment plays as well as they did "
                        "(predicted: yes)",
          "measured": f"{s['arm']}: late return (last {s['late_episodes']} of {s['episodes']} episodes) on "
                      f"{len(s['task_ids'])} of the teachers' own tasks, {ci(s['late'])}, / teachers' final "
                      f"return {s['teacher_final']:.2f}",
          "estimate": ratio, "verdict": verdict, "rule": rule}


def p2_rows(workdir) -> list[dict]:
  s = layout.summary(workdir, "p2")
  if not s:
    return []
  rows = []
  for name, e in s["arms"].items():
    n = e.get("normalised")
    if n:    # tasks with known optima: compare fractions of each task's optimal return (see p2.task_optimum)
      verdict, rule = verdicts.p2(n["late_minus_ceiling"], n["teacher_final_minus_ceiling"])
      measured = (f"{name}: late return ({e['late_episodes']} last of {e['episodes']} episodes, "
                  f"{e['horizon_steps']:,} steps) as a fraction of each task's optimal return, {ci(n['late'], '{:.3f}')}, "
                  f"minus the data's ceiling as the same fraction, {n['ceiling']:.3f} (mean optimum "
                  f"{n['optimal_mean_eval']:.2f} on these held-out tasks, {n['optimal_mean_data']:.2f} on the "
                  f"teachers'); raw: late {ci(e['late'])} - ceiling {e['ceiling']:.2f} = "
                  f"{ci(e['late_minus_ceiling'])}; teachers went on to {n['teacher_final']:.3f} "
                  f"({e['teacher_final']:.2f})")
      estimate, fmt = n["late_minus_ceiling"], "{:.3f}"
    else:
      verdict, rule = verdicts.p2(e["late_minus_ceiling"], e["teacher_final_minus_ceiling"])
      measured = (f"{name}: late return ({e['late_episodes']} last of {e['episodes']} episodes, "
                  f"{e['horizon_steps']:,} steps) minus the data's ceiling {e['ceiling']:.2f}; "
                  f"P(run > ceiling) {ci(e['prob_exceed'])}; teachers went on to {e['teacher_final']:.2f}")
      estimate, fmt = e["late_minus_ceiling"], "{:.2f}"
    rows.append({"prediction": f"P2 beyond the ceiling, data cut at {e['fraction']:.0%} of training "
                               "(predicted: no improvement past the ceiling)",
                 "measured": measured, "estimate": estimate, "fmt": fmt, "verdict": verdict, "rule": rule})
  return rows


def hybrid_rows(workdir) -> list[dict]:
  """One row per hybrid variant under the P2 protocol: late return minus the frozen imitator's."""
  s = layout.summary(workdir, "hybrid")
  if not s:
    return []
  rows = []
  for k, e in s["learners"].items():
    if k == "frozen":
      continue
    verdict, rule = verdicts.hybrid(e["late_minus_frozen"])
    rows.append({"prediction": f"hybrid ({k}: act in context, SGD on own experience every "
                               f"{s['learner']['act_steps']:,} steps), P2 protocol",
                 "measured": f"{s['arm']}: late return {ci(e['late'])} minus the frozen imitator's "
                             f"{ci(s['learners']['frozen']['late'])} over {s['horizon_steps']:,} steps; late - "
                             f"ceiling ({s['ceiling']:.2f}) {ci(e['late_minus_ceiling'])}"
                             + (f"; as fractions of each task's optimum (mean {s['normalised']['optimal_mean_eval']:.2f} "
                                f"here, {s['normalised']['optimal_mean_data']:.2f} on the teachers' tasks) "
                                f"{ci(e['normalised']['late_minus_ceiling'], '{:.3f}')}"
                                if "normalised" in e else ""),
                 "estimate": e["late_minus_frozen"], "verdict": verdict, "rule": rule})
  return rows


def p3_rows(config, workdir) -> list[dict]:
  """One row per P3 target for the frozen imitator (and one per hybrid variant)."""
  return p3_rows_from(layout.summary(workdir, "p3"))


def p3_rows_from(s, unit: str = "tasks") -> list[dict]:
  """Verdict rows of a P3-shaped summary ({"targets": {name: {"learners": ...}}, "threshold", "arm"})."""
  if not s:
    return []
  rows = []
  for name, t in s["targets"].items():
    dqn = t["learners"].get("dqn", {})
    for k, e in t["learners"].items():
      if k == "dqn" or "final" not in e:
        continue
      verdict, rule = verdicts.p3(e["final"], s["threshold"])
      what = t.get("labels", {}).get(k) or ("frozen imitator" if k == "frozen"
                                            else f"imitator + test-time SGD ({k})")
      rows.append({"prediction": f"P3 transplant to {name} ({t['env']} {t['env_kwargs']}), {what} "
                                 "(predicted: it does not learn it as a DQN does)",
                   "measured": f"{t.get('arm', s.get('arm'))}: final return, normalised (0 random, 1 DQN "
                               f"final), {e['tasks']} {unit}, {t['horizon_steps']:,} steps; AUC {ci(e['auc'])} vs the "
                               f"DQN's {ci(dqn['auc']) if 'auc' in dqn else 'n/a'}",
                   "estimate": e["final"], "verdict": verdict, "rule": rule})
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
                 "measured": f"late return at {c['larger']} minus at {c['smaller']} (IQM over seeds x tasks)",
                 "estimate": c["gain"], "verdict": verdict, "rule": rule})
  return rows


def _p2_section(workdir) -> list[str]:
  s = layout.summary(workdir, "p2")
  if not s:
    return []
  p = s["protocol"]
  lines = ["## P2: beyond the ceiling", "",
           f"Protocol: {rollout_lib.actions_phrase(p['actions'])}, {p['horizon']}, context {p['context']}, "
           f"{len(s['task_ids'])} held-out tasks; late = {p['late']}; ceiling = best "
           f"{p['ceiling_window_episodes']}-episode (teacher episodes; ceil(window / gap) kept episodes) moving "
           "average of the data's population curve. "
           f"Intervals: {p['ci']}.", "",
           "| arm | data cut (learner steps) | ceiling | rollout steps | early (episodes 1-3) | late | "
           "late - ceiling | P(run > ceiling) | teachers' final | late - teachers' final |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for name, e in s["arms"].items():
    lines.append(f"| {name} | {e['cut_learner_steps']:,} ({e['fraction']:.0%}, gap {e['gap']}) | "
                 f"{e['ceiling']:.2f} | {e['horizon_steps']:,} | {ci(e['early'])} | {ci(e['late'])} | "
                 f"{ci(e['late_minus_ceiling'])} | {ci(e['prob_exceed'])} | {e['teacher_final']:.2f} | "
                 f"{ci(e['late_minus_teacher_final'])} |")
  normed = {name: e["normalised"] for name, e in s["arms"].items() if e.get("normalised")}
  if normed:
    lines += ["", "The same as fractions of each task's optimal return (the ceiling and the teachers' final "
              "come from the teachers' tasks, the late return from held-out ones; goals differ in what they "
              "allow). The verdict uses these:", "",
              "| arm | mean optimum (held-out / teachers') | ceiling | late | late - ceiling | teachers' final | "
              "late - teachers' final | teachers' greedy policy at the cut | late - it |",
              "|---|---|---|---|---|---|---|---|---|"]
    f3 = "{:.3f}"
    for name, n in normed.items():
      greedy = (f"{n['teacher_greedy_at_cut']:.3f} | {ci(n['late_minus_teacher_greedy_at_cut'], f3)}"
                if "teacher_greedy_at_cut" in n else "(not recorded) | ")
      lines.append(f"| {name} | {n['optimal_mean_eval']:.2f} / {n['optimal_mean_data']:.2f} | {n['ceiling']:.3f} | "
                   f"{ci(n['late'], f3)} | {ci(n['late_minus_ceiling'], f3)} | {n['teacher_final']:.3f} | "
                   f"{ci(n['late_minus_teacher_final'], f3)} | {greedy} |")
    lines += ["", "The ceiling is the return of the teachers' epsilon-greedy behaviour, the data the imitator saw; "
              "the teachers' greedy policy at the cut (their argmax actions, evaluated after the last teacher "
              "segment that ended before the cut) is what their networks could do at that point. An imitator "
              "sampled more sharply than the teachers acted can pass the first without passing the second."]
  lines += ["", "TensorBoard: `tb/p2` (teacher, imitator and ceiling per arm on the environment-step axis).",
            ""]
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
           f"| target | learner | {unit} | normalised AUC | normalised final | final return (raw mean) |",
           "|---|---|---|---|---|---|"]
  for name, t in s["targets"].items():
    if t.get("note"):
      lines.append(f"| {name} | | | | | {t['note']} |")
    for k, e in t["learners"].items():
      if "final" not in e:
        lines.append(f"| {name} | {k} | | | | {e.get('note', '')} |")
        continue
      lines.append(f"| {name} | {k} | {e['tasks']} | {ci(e['auc'])} | {ci(e['final'])} | {e['final_raw']:.2f} |")
  lines += ["", "Random policy mean return per target: " + "; ".join(
      f"{n} {sum(t['random_return']) / len(t['random_return']):.2f}" for n, t in s["targets"].items())
      + ". DQN final return: " + "; ".join(
      f"{n} {sum(t['dqn_final_return']) / len(t['dqn_final_return']):.2f}" for n, t in s["targets"].items())
      + ".", "", tb_note, ""]
  return lines


def _hybrid_section(workdir) -> list[str]:
  s = layout.summary(workdir, "hybrid")
  if not s:
    return []
  p, c = s["protocol"], s["learner"]
  lines = ["## The hybrid: test-time SGD on its own experience (P2 protocol)", "",
           f"{s['arm']} imitators on {len(s['task_ids'])} held-out tasks for {s['horizon_steps']:,} steps "
           f"({rollout_lib.actions_phrase(p['actions'])}, context {p['context']}). Every {c['act_steps']:,} steps: {c['sgd_steps']} "
           f"AdamW steps (lr {c['lr']:g}, batch {c['batch_size']} x {c['seq_len']} steps) of the AD loss on its "
           f"own last {c['buffer_steps']:,} transitions, weighting '{c['weighting']}' (top fraction "
           f"{c['top_fraction']:g}); 'full' updates every weight, 'lora' a rank-{c['lora_rank']} adapter only. "
           f"Late = {p['late']}. Intervals: {p['ci']}.", "",
           "| learner | late | late - frozen | late - ceiling | late - ceiling, fractions of each task's optimum |",
           "|---|---|---|---|---|"]
  for k, e in s["learners"].items():
    lines.append(f"| {k} | {ci(e['late'])} | {ci(e['late_minus_frozen']) if 'late_minus_frozen' in e else ''} "
                 f"| {ci(e['late_minus_ceiling'])} | "
                 f"{ci(e['normalised']['late_minus_ceiling'], '{:.3f}') if 'normalised' in e else ''} |")
  n = s.get("normalised")
  lines += ["", f"Ceiling of the data {s['ceiling']:.2f}; teachers' final {s['teacher_final']:.2f}."
            + (f" As fractions of each task's optimum: ceiling {n['ceiling']:.3f}, teachers' final "
               f"{n['teacher_final']:.3f}; mean optimum {n['optimal_mean_eval']:.2f} on these tasks, "
               f"{n['optimal_mean_data']:.2f} on the teachers'." if n else "")
            + " TensorBoard: `tb/hybrid`.", ""]
  return lines


def _capacity_section(workdir) -> list[str]:
  s = _capacity_summary(workdir)
  if not s:
    return []
  lines = ["## Capacity sweep", "", s.get("protocol", ""), "",
           "| run | context (episodes) | model | early (episodes 1-3) | late | late - early | failed |",
           "|---|---|---|---|---|---|---|"]
  for r in s["runs"]:
    if r.get("error"):
      lines.append(f"| {r['name']} | | | | | | {r['error']} |")
      continue
    lines.append(f"| {r['name']} | {r['context_episodes']} | {r['model']} | {ci(r['early'])} | "
                 f"{ci(r['late'])} | {ci(r['improvement'])} | |")
  lines.append("")
  return lines
