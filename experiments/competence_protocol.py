r"""The competence gate of a finished run under another action protocol. Each replicate's imitator of
`--arm` plays the gate's own rollout (the P2 stage's competence tasks and keys, one kept history's steps
from an empty context) with the protocol the flags give (`--config.evaluation.greedy`, `temperature`,
`epsilon`, `epsilon_decay`), and the gate is scored as the P2 stage scores it: per replicate the gain
over random of its last episodes against its data's last kept episodes, and the interval over
replicates. With the run's own protocol the figures are checked against its P2 summary. A diagnostic:
the verdicts keep the protocol fixed before the run; this shows how far the gate moves with it, on the
same imitators, tasks and keys (the sensitivity stage does the same for temperatures, for every row).
Episodes are read as the P2 stage reads them, so games whose episodes end early (Breakout) play too; pass
the run's own `--config.seed` (another is refused: the rollouts' keys come from it). `--actions=N` also
shows, per replicate, the shares of the imitator's own choices over its last N steps beside its data's
recorded greedy choices over its last N kept steps of every stream and over its first N (the learner
before it learned), by raw action and by effect (Breakout: a move into a wall is the no-op). An arm the
P2 stage did not test (`--arm=ad_p15` in Breakout) plays the same rollout for one of its own kept
histories, scored against the run's random level and threshold. `--horizon=N` plays N steps instead (a
longer test's length, to see what the choices become there):

  python -m experiments.competence_protocol --config=experiments/configs/breakout.py \
      --workdir=runs/breakout7_s1 --config.seed=1 --config.evaluation.greedy=true \
      --config.evaluation.epsilon=0 --config.evaluation.epsilon_decay=12500 --actions=2000

  python -m experiments.competence_protocol --config=experiments/configs/one_stream.py:fast,x8,alone \
      --workdir=runs/one_stream_fast_x8_ge8k --config.teachers_from=runs/one_stream_fast_x8 \
      --config.imitation.arms.ad_early.updates=8000 --config.imitation.train.num_updates=8000 \
      --config.imitation.arms.ad_early.labels=greedy --config.imitation.model.mark_explore=true \
      --config.evaluation.greedy=true --config.evaluation.epsilon=0.05 --config.evaluation.epsilon_decay=1000
"""
import json
import time

import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory whose P2 stage has finished.")
_CACHE = cli.compile_cache_flag()
_ARM = flags.DEFINE_string("arm", "ad_early", "The imitation arm (a P2 source).")
_ACTIONS = flags.DEFINE_integer("actions", 0, "Also show, per replicate, the shares of the imitator's own "
                                "choices over the rollout's last N steps beside its data's recorded greedy "
                                "choices over the last and the first N kept steps of every stream (0: not shown).")
_HORIZON = flags.DEFINE_integer("horizon", 0, "Play this many steps instead of one kept history (0), e.g. the "
                                "hybrid's test length; its last episodes are then read against the data's end "
                                "as the gate reads them, and it is not the gate.")
flags.mark_flags_as_required(["config", "workdir"])


def main(_):
  cli.open_compile_cache(_CACHE)
  from cl_limits.stages import common, layout  # noqa: PLC0415

  from experiments import arm_rollouts  # noqa: PLC0415

  config, workdir, name = _CONFIG.value, _WORKDIR.value, _ARM.value
  for f in (_ACTIONS, _HORIZON):
    if f.value < 0:
      raise app.UsageError(f"--{f.name}={f.value}: must be >= 0")
  protocol = arm_rollouts.protocol(config)
  gated = {k: e["competence"] for k, e in ((layout.summary(workdir, "p2") or {}).get("arms") or {}).items()
           if isinstance(e, dict) and "competence" in e}
  if not gated:
    raise app.UsageError(f"--workdir={workdir}: no P2 competence gate (has the P2 stage finished?)")
  r = arm_rollouts.load(config, workdir, name, 0, fixed_episodes=False)     # episodes read as the P2 stage reads them
  if _HORIZON.value:
    r.horizon = int(_HORIZON.value)
  # An arm the P2 stage did not test (Breakout's ad_p15, the P3 and hybrid arm) plays the same rollout,
  # scored against the run's random level and threshold (one per run).
  other = next(iter(gated.values()))
  saved = gated.get(name) or {"random": other["random"], "needed": other["needed"], "per_replicate": None}
  # The rollouts per task its gate played (one for a row without headroom, or a run made before the field).
  rolls = int(saved.get("rollouts", 1)) if saved["per_replicate"] is not None else common.competence_rollouts(config)
  run = ml_collections.ConfigDict(r.run_config)
  own = common.protocol_of(common.p2_actions_section(run)[0] if "evaluation" in run else {})   # its P2 gate's
  print(f"{name}: the competence gate on {r.n} training tasks{f' x {rolls} rollouts' if rolls > 1 else ''}, {r.horizon} steps, "
        f"{common.describe_actions(config.evaluation)} (the run's own: {common.describe_actions(own)})")
  t0 = time.time()
  comp = arm_rollouts.competence(config, r, r.params, protocol, saved["random"], saved["needed"], rolls)
  iv = comp["interval"]
  fmt = lambda xs: " ".join(f"{x:.3f}" for x in xs)
  print(f"  imitator's last episodes, per replicate: {fmt(comp['imitator_end'])} ({time.time() - t0:.0f}s)")
  print(f"  its data's last episodes, per replicate: {fmt(comp['data_end'])}")
  print(f"  gain over random, per replicate: {fmt(comp['per_replicate'])}")
  print("  competence: " + ("no interval (a replicate has no value)" if iv is None else
                            f"{iv['estimate']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}] ({iv['method']}); "
                            f"passes at a lower end of {comp['needed']:g}: {'yes' if comp['ok'] else 'no'}"))
  if saved["per_replicate"] is None:
    steps = "--horizon steps" if _HORIZON.value else "its data's own horizon"
    print(f"  {name} has no P2 competence gate: {steps}, the run's random level and threshold")
  if _HORIZON.value:
    print(f"  --horizon={_HORIZON.value}: not the gate (its horizon is one kept history)")
  elif saved["per_replicate"] is not None and protocol == own:
    same = np.allclose(comp["per_replicate"], saved["per_replicate"], atol=1e-6, equal_nan=True)
    print(f"  equals the P2 stage's competence gate: {'yes' if same else 'NO'}")
  if _ACTIONS.value:
    last = min(int(_ACTIONS.value), int(r.horizon))
    rule = getattr(r.env, "action_classes_rule", "")
    print(f"  choices over the last {last} steps, shares of each action (a0..) and of each effect class (c0..; "
          f"actions with the same effect are one class{'; ' + rule if rule else ''}):")
    fmt2 = lambda sh: ("actions " + " ".join(f"{x:.2f}" for x in sh["action"]) + " | effects "
                       + " ".join(f"{x:.2f}" for x in sh["effect"]))
    for s, c in enumerate(arm_rollouts.choices(config, r, r.params, protocol, last, rolls)):
      print(f"  replicate {s}: imitator {fmt2(c['imitator'])}")
      for key, what in (("data", "its data's greedy choices"), ("data_start", "its data's first steps' greedy choices")):
        print(f"  replicate {s}: {what} {'not recorded' if c[key] is None else fmt2(c[key])}")
  print(json.dumps({"protocol": protocol, "rollouts": comp["rollouts"], "per_replicate": comp["per_replicate"],
                    "interval": iv}))


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  app.run(main)
