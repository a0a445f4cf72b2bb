r"""The P2 power control's fidelity and competence against its budget: the study's power-control arm
(`experiments.p2.power_control`: DarkRoom's scripted searcher `search_early`, Breakout's AD-epsilon
`ad_eps_half`) alone, on a finished study's teachers, to a larger cap with patience off, scored by the P2 rule (its
competence gate included), so one sees what data and updates the control would need to refute.

  python -m experiments.pipeline --config=experiments/configs/control_budget.py:darkroom \
      --workdir=runs/control_darkroom --config.teachers_from=runs/darkroom_s0 \
      --config.imitation.train.num_updates=1200 --config.imitation.ad_eps.streams=8

The control's power at the study's patience (how BUILD_NOTES sized and ran DarkRoom's at 15 replicates and
600 updates, "Fifteen new replicates of the control"; about 27 min on 2 cores, 12 of them the teachers that
`--config.replicates` brings, which the control does not read):

  python -m experiments.pipeline --config=experiments/configs/control_budget.py:darkroom \
      --workdir=runs/control15_s3 --config.seed=3 --config.replicates=15 \
      --config.imitation.train.num_updates=600 --config.imitation.fidelity.patience=2 \
      --config.imitation.eval.every_segments=2 --config.experiments.p2.known_positive=true

Presets: the study (`darkroom`, `breakout`), optionally `smoke,` before it. Everything but the arms, the
cap, the patience and the stages left out (P1, P3, the hybrid, the known positive) is the study's config.
The imitators still keep the weights of their best held-out check (the main job's rule). The fidelity
curve is in `imitators/summary.json` (fidelity.curve), competence and the verdict in `p2/summary.json`
and `report.md`.
"""
from experiments.configs import bc_budget


def control_alone(config) -> None:
  """Makes `config` (unlocked) train and score the P2 power control's arm alone, to its cap."""
  arm = str(config.experiments.p2.power_control)
  bc_budget.arm_alone(config, arm)
  config.imitation.arms[arm].updates = 0           # train.num_updates is the cap
  config.experiments.p1.arm = ""
  config.experiments.p2.arms = ""
  config.experiments.p2.known_positive = False


def get_config(preset: str = "darkroom"):
  config = bc_budget.study_config(preset, "control_budget.py")
  with config.unlocked():
    control_alone(config)
  config.lock()
  return config
