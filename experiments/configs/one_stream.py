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
`FAST_CUT_FRACTION`); then optionally `x<k>` (k >= 2) for k independent DQNs per task, each with its one
stream (`teacher.learners_per_task`): k - 1 of them are the arm's data and the last is held out, so the
imitator has k - 1 times the data per replicate and is also measured in nats against the held-out
learner's behaviour policy, with its clone on the competence gate; `alone` last (`alone`, `fast,alone`,
`fast,x8,alone`, `smoke,alone`) trains `ad_early` without `ad_early_g5`.

  python -m experiments.pipeline --config=experiments/configs/one_stream.py:fast,x8,alone --workdir=runs/one_stream_fast_x8
"""
import ml_collections

from experiments.configs import bc_budget, darkroom

# The cut rule (BUILD_NOTES, "Cuts where the data learns") on these teachers' greedy curve.
CUT_FRACTION = 0.15          # 6,000 steps: greedy 0.108 / 0.426 / 0.621 / 0.771 of the optimum at 2k / 4k / 6k / 8k
FAST_CUT_FRACTION = 0.075     # 3,000 steps: greedy 0.014 / 0.375 / 0.685 / 0.840 of the optimum at 1k / 2k / 3k / 4k


def get_config(preset: str = ""):
  parts = str(preset).split(",") if preset else []
  alone = bool(parts) and parts[-1] == "alone"
  parts = parts[:-1] if alone else parts
  learners = 1
  if parts and parts[-1][:1] == "x" and parts[-1][1:].isdigit() and int(parts[-1][1:]) >= 2:
    learners = int(parts.pop()[1:])
  size = ",".join(parts)
  if size not in ("", "smoke", "fast"):
    raise ValueError(f"one_stream.py preset {preset!r}: '', 'smoke' or 'fast', optionally followed by "
                     "',x<learners per task>' (2 or more) and ',alone'")
  fast, smoke = size == "fast", size == "smoke"
  config = darkroom.get_config("smoke" if smoke else "")
  with config.unlocked():
    dqn = config.teacher.dqn
    dqn.num_envs = 1
    if fast:
      dqn.update(dict(lr=1e-3, eps_anneal_steps=1_000, segment_steps=1_000))
    early = config.imitation.arms.ad_early
    bc_budget.arm_alone(config, "ad_early")
    # One learner per task leaves no stream to hold out; with k the last learner's stream is held out
    # (fidelity in nats, the clone, the best held-out weights kept) and the arm trains on the other k - 1.
    if learners > 1:
      config.teacher.learners_per_task = learners
    config.imitation.fidelity.heldout_streams = 1 if learners > 1 else 0
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
