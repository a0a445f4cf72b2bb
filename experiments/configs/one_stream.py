r"""DarkRoom's P2 early arm on a one-stream source: every DQN learns from a single stream, and the arm keeps
every episode of it, so the imitator's data holds everything its learner experienced (the study's four
streams per DQN let a learner find its goal in a stream the imitator never sees; BUILD_NOTES, "Why the gate
cannot separate imitation from extrapolation").

  python -m experiments.teachers --config=experiments/configs/one_stream.py --workdir=runs/one_stream
  python -m experiments.pipeline --config=experiments/configs/one_stream.py --workdir=runs/one_stream

The teachers are the study's DQN (lr 1e-4, epsilon's floor at 2,000 steps, 40,000 steps, one update per 4
env steps) with `num_envs=1`: every step count is already counted over a learner's streams, so the
updates per environment step, the replay buffer and the schedule are the study's. The arms: `ad_early`
(gap 1: every episode; the pre-registered arm) and `ad_early_g5` (the study's gap 5, reported beside it),
both cut by the study's rule on these teachers' greedy curve, the study's model and context, to a cap
of 600 updates with patience off: a single stream leaves no held-out stream, so no fidelity is measured
and the competence gate has no clone. Scored by the P2 gates (competence on every training task,
learning in data, headroom) and the P2 rollout at 1x one kept history. No P1, P3, hybrid, power control or
known positive.

  python -m experiments.pipeline --config=experiments/configs/one_stream.py:alone --workdir=runs/one_stream_u4k \
      --config.teachers_from=runs/one_stream --config.imitation.arms.ad_early.updates=4000 \
      --config.imitation.train.num_updates=4000

Presets: `smoke` for the tiny test-sized version; `fast` for fast learners (lr 1e-3, epsilon's floor at
1,000 steps, the greedy policy evaluated every 1,000 steps; the cut by the same rule on their greedy curve,
`FAST_CUT_FRACTION`); `alone` after either (`alone`, `fast,alone`, `smoke,alone`) trains `ad_early` without
`ad_early_g5`.
"""
import ml_collections

from experiments.configs import bc_budget, darkroom

# The cut rule (BUILD_NOTES, "Cuts where the data learns") on these teachers' greedy curve.
CUT_FRACTION = 0.15          # 6,000 steps: greedy 0.108 / 0.426 / 0.621 / 0.771 of the optimum at 2k / 4k / 6k / 8k
FAST_CUT_FRACTION = 0.075     # 3,000 steps: greedy 0.014 / 0.375 / 0.685 / 0.840 of the optimum at 1k / 2k / 3k / 4k


def get_config(preset: str = ""):
  parts = str(preset).split(",") if preset else []
  alone = bool(parts) and parts[-1] == "alone"
  size = ",".join(parts[:-1] if alone else parts)
  if size not in ("", "smoke", "fast"):
    raise ValueError(f"one_stream.py preset {preset!r}: '', 'smoke' or 'fast', optionally followed by ',alone'")
  fast, smoke = size == "fast", size == "smoke"
  config = darkroom.get_config("smoke" if smoke else "")
  with config.unlocked():
    dqn = config.teacher.dqn
    dqn.num_envs = 1
    if fast:
      dqn.update(dict(lr=1e-3, eps_anneal_steps=1_000, segment_steps=1_000))
    early = config.imitation.arms.ad_early
    bc_budget.arm_alone(config, "ad_early")
    config.imitation.fidelity.heldout_streams = 0
    g5 = ml_collections.ConfigDict(early.to_dict())
    early.gap = 1
    if not smoke:
      early.fraction = g5.fraction = FAST_CUT_FRACTION if fast else CUT_FRACTION
    if not alone:
      config.imitation.arms.ad_early_g5 = g5
    for a in config.imitation.arms.values():
      a.updates = 10 if smoke else 600
    bc_budget.p2_gates_alone(config)
  config.lock()
  return config
