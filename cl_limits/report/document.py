"""`<workdir>/report.md`: the verdict table first, then figures and every stage's detail.

It reads only what the stages wrote (through cl_limits/stages/layout.py) and is re-written whenever an
input stage re-ran; the capacity sweep's aggregation (launch/capacity.py) calls `write` again to add its
rows.
"""
from __future__ import annotations

import os

import numpy as np

from cl_limits.report import forest, gates
from cl_limits.report import rows as rr
from cl_limits.report import sections, seeds
from cl_limits.stages import common, layout, outputs


def write(config, workdir: str) -> str:
  """(Re)writes workdir/report.md from what the finished stages left; returns its path."""
  workdir = os.path.abspath(workdir)
  rows = gates.counted(rr.p1_rows(config, workdir) + rr.p2_rows(workdir) + rr.p3_rows(config, workdir))
  extra = rr.hybrid_rows(workdir)
  caps = rr.capacity_rows(workdir) + rr.gap_rows(workdir)
  for r in rows + extra:         # the held-out fidelity of the imitator each row uses
    r.setdefault("fidelity", rr.fidelity_cell(workdir, r.get("arm")))
  _write_verdicts(workdir, config, {"verdicts": rows, "hybrid": extra, "sweeps": caps})
  lines = [f"# cl_limits report: {config.env.name} {dict(config.env.kwargs)}", "", "## Verdicts", ""]
  if rows:
    lines += _table(rows)
    if forest.plot(rows + extra, layout.path(workdir, "verdicts.png")):
      lines += ["", "![every verdict row's estimate and 95% interval against its threshold (dashed)](verdicts.png)"]
  else:
    lines.append("No prediction has been measured in this run directory yet.")
  if extra:
    lines += ["", "### Hybrid: does test-time SGD recover learning? (not a P3 verdict)", ""] + _table(extra)
  if caps:
    lines += ["", "### Capacity and the gap (sweeps beside the main job)", ""] + _table(caps)
  ev = config.evaluation
  reps = int(config.imitation.num_seeds) if "imitation" in config else 0
  p2_section, p2_path = common.p2_actions_section(config)
  own = ("" if p2_path == "evaluation" else
         f" (P2's rows and their competence gate: {common.actions_phrase(common.describe_actions(p2_section))}, "
         "experiments.p2.protocol)")
  lines += ["", f"Protocol, fixed before the run: {common.actions_phrase(common.describe_actions(ev))} for "
            f"every row{own}; rollouts start from an empty context (P1: from the teacher's last episodes), which "
            f"then carries across episodes (a sliding window of {config.imitation.model.context_len} "
            "transitions); " + ("held-out tasks the teachers never trained on (P1 and the competence gate: the "
            "teachers' own tasks)" if not rr.one_task(config.env.name, config.env.kwargs) else "the teachers' own game "
            "(one task: there are no held-out tasks; P2 asks whether the imitator passes its data's ceiling "
            "in the game it imitated)") + ". The unit of replication is an independent run: replicate r = teacher seed "
            f"r and the imitators trained only on its histories ({reps} replicates); tasks and episodes are "
            "repeated measures inside a replicate. Every estimate is the mean over replicates of the "
            "per-replicate value, with a 95% t-interval on r - 1 degrees of freedom; the per-replicate "
            "values are listed with each row.", ""]
  figs = [("P2: teachers vs imitators on their data's learner-step axis (an imitator's step x gap x streams), "
           "ceiling as a line", "p2/curves.png"),
          ("P1: prompted and empty-context imitator on the teachers' tasks", "p1/curves.png"),
          ("frozen imitators on held-out tasks", "eval/curves.png"),
          ("hybrid vs frozen imitator on P2's test", "hybrid/curves.png")]
  p3s = layout.summary(workdir, "p3")
  figs += [(f"P3: transplant to {name}", f"p3/{name}/curves.png") for name in (p3s or {}).get("targets", {})]
  figs += [("capacity: return vs context length", "capacity/capacity.png")]
  for title, rel in figs:
    if os.path.exists(os.path.join(workdir, rel)):
      lines += [f"![{title}]({rel})", ""]
  teachers_at = common.teachers_at(config, workdir)
  lines.append(_teachers(config, teachers_at, workdir) + _imitation(config, workdir))
  lines += (sections.p2_section(workdir) + sections.p3_section(workdir) + sections.hybrid_section(workdir)
            + sections.capacity_section(workdir) + sections.gap_section(workdir) + sections.sensitivity_section(workdir)
            + provenance_section(workdir))
  return outputs.write_text(layout.path(workdir, "report.md"), "\n".join(lines))


def _table(rows) -> list[str]:
  out = ["| prediction | measured | estimate [95% CI] | per replicate | imitator fidelity (held-out) | gates | "
         "verdict | rule |", "|---|---|---|---|---|---|---|---|"]
  out += [f"| {r['prediction']} | {r['measured']} | {rr.ci(r['estimate'], r.get('fmt', '{:.2f}'))} | "
          f"{r.get('per_replicate', '')} | {r.get('fidelity', '')} | {r.get('gates', '')} | **{r['verdict']}** | "
          f"{r['rule']} |" for r in rows]
  return out


def _teachers(config, teachers_at, workdir) -> str:
  summary = layout.summary(teachers_at, "teachers")
  manifest = layout.manifest(layout.histories_dir(teachers_at))
  curves = layout.teacher_curves(teachers_at)
  lines = ["## Teachers", "",
           f"DQN teachers on {config.env.name} {dict(config.env.kwargs)}: {manifest['num_seeds']} seeds x "
           f"{len(manifest['task_ids'])} tasks, {manifest['env_steps_per_learner']} environment steps per "
           f"learner over {manifest['streams_per_learner']} streams"
           + (f"; {manifest['learners_per_task']} independent learners per task, whose streams are the "
              "task's streams in the data" if int(manifest.get("learners_per_task", 1)) > 1 else "") + ".", ""]
  if "greedy_return" in summary:
    greedy = np.asarray(summary["greedy_return"])
    lines += ["| measure | value |", "|---|---|",
              f"| final greedy return, mean over seeds and tasks | {greedy.mean():.2f} |"]
    if "optimal_return" in summary:
      opt = np.asarray(summary["optimal_return"])
      frac = greedy / opt[None]
      lines += [f"| optimal return (oracle), mean over tasks | {opt.mean():.2f} |",
                f"| tasks where every seed reaches 90% of optimal | {(frac >= 0.9).all(0).sum()} of "
                f"{frac.shape[1]} |"]
    ret = curves["returns"]
    with np.errstate(all="ignore"):
      first, last = np.nanmean(ret[..., 0]), np.nanmean(ret[..., -1])
    lines += [f"| training return, first {curves['env_steps'][0]} steps | {first:.2f} |",
              f"| training return, last {curves['env_steps'][0]} steps | {last:.2f} |", ""]
  lines += _greedy_at_cuts(curves, layout.summary(workdir, "p2"))
  rel = os.path.relpath(layout.teachers_dir(teachers_at), os.path.abspath(workdir))
  lines += ["Greedy return: one episode per (seed, task) with the final Q-network, argmax actions.",
            "Training return: episodes completed in each window, epsilon-greedy as trained.", "",
            f"![teacher learning curves]({rel}/teacher_curves.png)", "",
            f"Histories: `{rel}/histories`; TensorBoard: `{rel}/tb`.", ""]
  return "\n".join(lines)


def _greedy_at_cuts(curves, p2) -> list[str]:
  """Per replicate: the teachers' greedy return (mean over tasks) at every P2 row's cut and at the end,
  and its best after the cut: what the headroom gate reads."""
  if curves is None or "greedy_returns" not in curves or not p2:
    return []
  g = np.asarray(curves["greedy_returns"]).mean(1)                    # [R, segments]
  steps = np.asarray(curves["greedy_env_steps"])
  cuts = [(n, e) for n, e in p2["arms"].items() if e.get("kind") == "p2"]
  if not cuts:
    return []
  head = "| replicate | " + " | ".join(f"greedy at the {e['fraction']:.0%} cut (its cut, steps)" for _, e in cuts) \
      + f" | greedy at the end ({int(steps[-1]):,} steps) |"
  out = ["Teachers' greedy return per replicate (mean over tasks; at each replicate's own P2 cut, interpolated "
         "between the evaluations on either side of it, and the final one). The headroom gate compares the "
         "best greedy return after a cut with the cut's ceiling, or, where the P2 protocol is at least as "
         "random as the teachers' behaviour, their final behaviour return (the P2 section shows both rises).", "", head, "|" + "---|" * (len(cuts) + 2)]
  for r in range(g.shape[0]):
    cells = []
    for _, e in cuts:
      cut = (e["per_replicate"].get("cut") or [int(e["cut_learner_steps"])] * g.shape[0])[r]
      at = float(np.interp(cut, steps, g[r])) if cut >= steps[0] else None
      cells.append(("n/a" if at is None else f"{at:.2f}") + f" ({int(cut):,})")
    out.append(f"| {r} | " + " | ".join(cells) + f" | {g[r, -1]:.2f} |")
  return out + [""]


def _imitation(config, workdir) -> str:
  ev = layout.summary(workdir, "eval")
  data = layout.read_json(layout.path(workdir, "imitators", "data.json"))
  p = ev["protocol"]
  lines = ["## Frozen imitators on held-out tasks (P1 protocol)", "",
           f"Protocol: {common.actions_phrase(p['actions'])}, {p['episodes']} episodes "
           f"({ev['horizon_steps']} environment steps) per rollout, context {p['context']}, "
           f"{len(ev['task_ids'])} held-out tasks; {config.imitation.num_seeds} replicates per arm. "
           f"Intervals: {p['ci']}.", "",
           f"| arm | data | episodes 1-{p['early_episodes']} | last {p['late_episodes']} episodes "
           "| last / teachers' final |", "|---|---|---|---|---|"]
  for arm, s in ev["arms"].items():
    d = data["arms"][arm]
    desc = (f"{d['data']}, portion {d['portion']} {d['fraction']:g}"
            + (f" from {d['start']:g} of each stream" if d.get("start") else "") + f", gap {d['gap']}, labels {d['labels']}, "
            f"{d['steps']:,} steps")
    ratio = f"{s['late_over_teacher']:.2f}" if "late_over_teacher" in s else "n/a"
    lines.append(f"| {arm} | {desc} | {rr.ci(s['early'])} | {rr.ci(s['late'])} | {ratio} |")
  lines.append("")
  if ev.get("teacher_final_return") is not None:
    lines.append(f"Teachers' final return (training return in their last logging window, on their own "
                 f"tasks): {ev['teacher_final_return']:.2f}.")
  for c in ev["comparisons"]:
    lines.append(f"{c['a']} minus {c['b']}, {c['measure']}: {rr.ci(c['diff'])}.")
  lines += [""] + _fidelity(workdir)
  lines += ["", "![imitator curves](eval/curves.png)", "",
            "TensorBoard: `imitators/tb` (loss, accuracy, tokens/s, held-out early/late return during "
            "training).", ""]
  return "\n".join(lines)


def _fidelity(workdir) -> list[str]:
  """Per arm: updates used of its cap, held-out KL / CE / behaviour entropy / NLL (means over replicates,
  KL per replicate), and KL over the early, middle and late thirds of the kept history."""
  s = layout.summary(workdir, "imitators")
  if not s or "fidelity" not in s:
    return ["Fidelity: not measured in this run (no held-out streams)."]
  f = s["fidelity"]
  cfg = layout.read_config(workdir) or {}
  seq_len = cfg.get("imitation", {}).get("train", {}).get("seq_len")
  arms = cfg.get("imitation", {}).get("arms", {})
  greedy = [a for a, v in arms.items() if isinstance(v, dict) and v.get("labels") == "greedy"]
  lines = [f"Fidelity (held-out: {f['heldout']}): KL(behaviour policy || imitator) in nats, 0 = exact imitation, "
           "over the game's distinct actions (actions with the same effect merged; the raw-action KL beside it); "
           "CE = the imitator's expected cross-entropy under the behaviour policy, H = the behaviour policy's "
           "entropy (KL = CE - H), NLL = of the recorded actions. Each arm keeps the weights of its best "
           "held-out check (kept)." + (f" Actions merged by state: {f['classes_by_state']}."
                                        if f.get("classes_by_state") else "")
           + (f" Scored on windows of {seq_len} steps, as in training: a window's first steps see little "
              "context, so the KL depends on the window length (compare runs at the same length)."
              if seq_len else "")
           + (f" Greedy-label arms ({', '.join(greedy)}) are scored as the policy they act with: epsilon-greedy "
              "around their choice, with each step's recorded epsilon." if greedy else ""), "",
           "| arm | updates (cap), kept | KL per replicate | KL | KL raw actions | CE | H | NLL | KL early / middle / late |",
           "|---|---|---|---|---|---|---|---|---|"]
  m = lambda v: float(np.mean(v)) if np.isfinite(v).all() else float("nan")
  for arm, v in f["per_arm"].items():
    stop = " stopped" if s.get("stopped_early", {}).get(arm) else ""
    thirds = " / ".join(f"{m(v[f'kl_{p}']):.3f}" for p in ("early", "middle", "late"))
    kept = s.get("kept_update", {}).get(arm)
    lines.append(f"| {arm} | {s['updates_per_arm'][arm]} ({s['update_caps'][arm]}){stop}, kept {kept} | "
                 f"{rr.per_rep(v['kl'], '{:.3f}')} | {m(v['kl']):.3f} | {m(v['kl_actions']):.3f} | {m(v['ce']):.3f} | "
                 f"{m(v['entropy']):.3f} | {m(v['nll']):.3f} | {thirds} |")
  return lines


def provenance_section(workdir) -> list[str]:
  """Which commit, packages and device made the run (`provenance.json`, `config.json`)."""
  p = layout.read_json(layout.path(workdir, layout.PROVENANCE))
  if not p:
    return []
  latest = p["latest"]
  by_commit = {}
  for step, q in sorted(p.get("steps", {}).items()):
    key = q["commit"][:12] + (" (uncommitted changes)" if q.get("dirty") else "")
    by_commit.setdefault(key, []).append(step)
  v = latest["versions"]
  lines = ["## Provenance", "",
           f"The full config: `config.json`. Latest invocation: commit {latest['commit'][:12]}"
           + (" with uncommitted changes" if latest.get("dirty") else "") + f", {latest['time']}; "
           + ", ".join(f"{k} {v[k]}" for k in v if v[k]) + f"; {latest['device']['count']} x "
           f"{latest['device']['kind']} ({latest['device']['platform']}).", ""]
  if by_commit:
    lines += ["Steps by the commit that ran them: " + "; ".join(f"{c}: {', '.join(s)}" for c, s in by_commit.items())
              + ".", ""]
  timed = [(step, q["wall_s"]) for step, q in p.get("steps", {}).items() if "wall_s" in q]
  if timed:
    lines += ["Wall time of each step, in the invocation that finished it (a resumed step: its last part): "
              + "; ".join(f"{step} {outputs.minutes(t)}" for step, t in timed)
              + f"; {outputs.minutes(sum(t for _, t in timed))} in all.", ""]
  return lines


VERDICTS = seeds.VERDICTS


def _write_verdicts(workdir, config, tables) -> None:
  """`<workdir>/verdicts.json`: every row of the report's tables (its head, estimate, per-replicate values
  and verdict), for the mains' closing lines and for comparing runs (experiments/compare_seeds.py)."""
  import json  # noqa: PLC0415
  keep = ("prediction", "estimate", "fmt", "per_replicate", "verdict", "kind", "arm")
  out = {"env": config.env.name, "seed": int(config.seed),
         "rows": [{"table": t, **{k: r[k] for k in keep if k in r}} for t, rs in tables.items() for r in rs]}
  plain = json.loads(json.dumps(out, default=lambda o: o.item() if hasattr(o, "item") else list(o)))
  outputs.write_json(layout.path(workdir, VERDICTS), plain)


def read_verdicts(workdir: str) -> dict | None:
  """A finished report's verdicts.json (None when the report has not been written)."""
  return layout.read_json(layout.path(workdir, VERDICTS))


def verdict_lines(report_path: str) -> list[str]:
  """The verdict rows of a written report (its verdicts.json) as short lines: estimate, verdict, head."""
  v = read_verdicts(os.path.dirname(os.path.abspath(report_path)))
  out = []
  for r in (v or {}).get("rows", []):
    head = r["prediction"] if len(r["prediction"]) <= 90 else r["prediction"][:87] + "..."
    est = rr.ci(r.get("estimate"), r.get("fmt", "{:.2f}"))
    out.append(f"{est:<24} {r['verdict']}  <-  {head}")
  return out
