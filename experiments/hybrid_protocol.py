r"""The hybrid's rows of a finished run with P2's actions. The hybrid stage plays P2's test (its held-out
tasks, horizon and ceiling) with the evaluation section's actions; where the run's P2 plays a protocol of
its own (`experiments.p2.protocol`, Breakout's argmax with the learners' epsilon schedule), this plays the
frozen imitator and every hybrid variant again with P2's actions, on the same tasks and keys, and scores
each variant as the stage does (late - frozen, paired over replicates; `verdicts.hybrid`). A diagnostic of
how the hybrid's rows move with their actions; the verdicts keep the protocol fixed before the runs.

  python -m experiments.hybrid_protocol --config=experiments/configs/breakout.py \
      --workdir=runs/breakout14_s0 --config.seed=0 --out=runs/breakout14_s0_hybrid_p2.json

`--actions=evaluation` plays the stage's own protocol and checks the result against its summary. Pass the
run's own `--config.seed` (another is refused: the rollouts' keys come from it).
"""
import json
import time

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory whose hybrid stage has finished.")
_CACHE = cli.compile_cache_flag()
_ACTIONS = flags.DEFINE_enum("actions", "p2", ["p2", "evaluation"], "Whose actions: P2's (experiments.p2.protocol "
                             "where its source is 'own') or the evaluation section's (the stage's own).")
_OUT = flags.DEFINE_string("out", "", "Also write the summary (JSON) here.")
flags.mark_flags_as_required(["config", "workdir"])


def main(_):
  cli.open_compile_cache(_CACHE)
  from cl_limits.analysis import verdicts  # noqa: PLC0415
  from cl_limits.stages import common, hybrid, layout  # noqa: PLC0415
  from cl_limits.stages.base import ConfigError  # noqa: PLC0415
  config, workdir = _CONFIG.value, _WORKDIR.value
  saved = layout.summary(workdir, "hybrid")
  if not saved or not isinstance(saved.get("learners"), dict):
    raise app.UsageError(f"--workdir={workdir}: no finished hybrid stage (hybrid/summary.json)")
  run = layout.read_config(workdir) or {}
  if int(run.get("seed", config.seed)) != int(config.seed):
    raise app.UsageError(f"--config.seed={config.seed}: the run was made with seed {run.get('seed')} (its keys)")
  section, path = (common.p2_actions_section(config) if _ACTIONS.value == "p2" else (config.evaluation, "evaluation"))
  t0 = time.time()
  try:
    summary = hybrid.measure(config, workdir, section, path, log=lambda m: None)[0]
  except ConfigError as e:
    raise app.UsageError(str(e)) from None
  print(f"hybrid of {summary['arm']} on {len(summary['task_ids'])} held-out tasks, {summary['horizon_steps']:,} steps, "
        f"actions {summary['protocol']['actions']} (the stage's: {saved['protocol']['actions']}); {time.time() - t0:.0f}s")
  fmt = lambda iv: f"{iv['estimate']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"
  for k, e in summary["learners"].items():
    line = f"  {k}: late {fmt(e['late'])}, per replicate " + " ".join(f"{v:.2f}" for v in e["late"]["per_replicate"])
    if k != "frozen":
      iv = e["late_minus_frozen"]
      e["verdict"] = verdicts.hybrid((iv["estimate"], iv["low"], iv["high"]))[0]
      line += f"; minus frozen {fmt(iv)}: {e['verdict']}"
    print(line + f"; minus ceiling {fmt(e['late_minus_ceiling'])}")
  if summary["protocol"]["actions"] == saved["protocol"]["actions"]:
    same = all(np.allclose(summary["learners"][k]["late"]["per_replicate"], saved["learners"][k]["late"]["per_replicate"],
                           atol=1e-6) for k in saved["learners"])
    print(f"  equals the hybrid stage's summary: {'yes' if same else 'NO'}")
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump(summary, f, indent=1)


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  app.run(main)
