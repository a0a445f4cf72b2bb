r"""Can the imitator clone one fixed policy? Snapshot BC on the teachers' last 10% (`bc`, the P1 arm: a DQN
still learning, whose greedy action moves while the data is recorded; BUILD_NOTES "What snapshot BC's
fidelity would need") beside the same imitator, budget and stopping rule on as much data from one frozen
policy (`frozen`): each replicate's final DQN, greedy, with a random action at the teachers' epsilon floor
(AD-epsilon streams with `decay_fraction` 0), as many streams as the teachers and `DATA_FACTOR` times the
steps per stream that `bc` keeps (DarkRoom 1x; Breakout 5x, 75k training frames per replicate: with 1x the
frozen arm's held-out KL was best at 0.18 nats and then rose as it memorised its 15k frames, with 5x it
reached 0.081 at the same cap; docs/measurements.md, 2026-12-04). P1 scores `frozen` (the rule, the
fidelity gate and the reference, the teachers' final behaviour return, are the study's own).

  python -m experiments.pipeline --config=experiments/configs/frozen_snapshot.py:breakout \
      --workdir=runs/frozen_breakout --config.teachers_from=runs/breakout_s0
  python -m experiments.pipeline --config=experiments/configs/frozen_snapshot.py:darkroom \
      --workdir=runs/frozen_darkroom --config.teachers_from=runs/darkroom_s0

With `experiments.pipeline` instead of `experiments.imitate` the run goes on to P1 (and the evaluation)
on `frozen`. Presets: the study (`darkroom`, `breakout`), optionally `smoke,` before it. The fidelity of both
arms (held out: each learner's last stream) is in `imitators/summary.json` and the imitation log; the
behaviour policies differ, so each arm is judged against its own.
"""
from experiments.configs import bc_budget, darkroom

DATA_FACTOR = {"darkroom": 1, "breakout": 5}


def get_config(preset: str = "darkroom"):
  config = bc_budget.study_config(preset, "frozen_snapshot.py")
  with config.unlocked():
    im, dqn = config.imitation, config.teacher.dqn
    bc = im.arms.bc
    per_stream = int(dqn.total_steps) // int(dqn.num_envs)
    im.arms = type(im.arms)(dict(
        bc=bc, frozen=darkroom.arm(data="ad_eps", portion="all", updates=int(bc.updates))))
    factor = DATA_FACTOR[preset.rpartition(",")[2]]
    im.ad_eps.update(dict(streams=int(dqn.num_envs),
                          steps=max(1, int(round(per_stream * float(bc.fraction) * factor))),
                          eps_floor=float(dqn.eps_end), decay_fraction=0.0, demonstrator="teacher",
                          search_detour=0))
    im.eval.every_segments = 0
    config.experiments.p1.arm = "frozen"
    config.experiments.p2.arms = ""
    config.experiments.p2.power_control = ""
    config.experiments.hybrid.arm = ""
    config.experiments.p3.arm = ""
    config.experiments.p3.targets = type(config.experiments.p3.targets)()
  config.lock()
  return config
