r"""Snapshot BC's fidelity against tokens trained: the P1 arm (`bc`) alone, on a finished study's teachers,
trained to a larger cap with patience off, so its held-out KL curve shows what budget reaches its
behaviour policy.

  python -m experiments.imitate --config=experiments/configs/bc_budget.py:darkroom \
      --workdir=runs/bc_darkroom --config.teachers_from=runs/darkroom --config.imitation.train.num_updates=2400

Presets: the study (`darkroom`, `breakout`), optionally `smoke,` before it. Everything but the arms, the
cap and the patience is the study's config; the curve is in `imitators/progress.json` and
`imitators/summary.json` (fidelity.curve), one check every `updates_per_segment` updates.
"""
import ml_collections

from experiments.configs import breakout, darkroom


def arm_alone(config, arm: str) -> None:
  """Makes `config` (unlocked) train one imitation arm alone, every arm to its cap (patience off, no
  held-out rollout check during training): no hybrid, no P3. The caller says which of P1 and P2 score it."""
  config.imitation.arms = ml_collections.ConfigDict({arm: config.imitation.arms[arm]})
  config.imitation.fidelity.patience = 0
  config.imitation.eval.every_segments = 0
  config.experiments.hybrid.arm = ""
  config.experiments.p3.arm = ""
  config.experiments.p3.targets = ml_collections.ConfigDict()


def bc_alone(config) -> None:
  """Makes `config` (unlocked) train and score the P1 arm (`bc`) alone, every arm to its cap: no P2, no
  hybrid, no P3 (this file and experiments/configs/frame_encoder.py)."""
  arm_alone(config, "bc")
  config.experiments.p1.arm = "bc"
  config.experiments.p2.arms = ""
  config.experiments.p2.power_control = ""


def p2_gates_alone(config) -> None:
  """Makes `config` (unlocked) score its imitation arms by the P2 gates alone: every arm a P2 row, at 1x
  one kept history; no P1, power control or known positive (data_budget.py, one_stream.py)."""
  config.experiments.p1.arm = ""
  config.experiments.p2.arms = ",".join(config.imitation.arms.keys())
  config.experiments.p2.power_control = ""
  config.experiments.p2.known_positive = False
  config.experiments.p2.horizon_factor = 1.0


def study_config(preset: str, file: str):
  """The study config a budget file's preset names: '[smoke,]darkroom' or '[smoke,]breakout' (unlocked
  changes go in `with config.unlocked():`)."""
  size, _, study = preset.rpartition(",")
  if study not in ("darkroom", "breakout") or size not in ("", "smoke"):
    raise ValueError(f"{file} preset {preset!r}: '[smoke,]darkroom' or '[smoke,]breakout'")
  return (darkroom if study == "darkroom" else breakout).get_config(size)


def get_config(preset: str = "darkroom"):
  config = study_config(preset, "bc_budget.py")
  with config.unlocked():
    bc_alone(config)
    config.imitation.arms.bc.updates = 0            # train.num_updates is the cap
  config.lock()
  return config
