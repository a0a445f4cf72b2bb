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


def bc_alone(config) -> None:
  """Makes `config` (unlocked) train and score the P1 arm (`bc`) alone, every arm to its cap: no P2, no
  hybrid, no P3 (this file and experiments/configs/frame_encoder.py)."""
  config.imitation.arms = ml_collections.ConfigDict(dict(bc=config.imitation.arms.bc))
  config.imitation.fidelity.patience = 0
  config.imitation.eval.every_segments = 0
  config.experiments.p1.arm = "bc"
  config.experiments.p2.arms = ""
  config.experiments.p2.power_control = ""
  config.experiments.hybrid.arm = ""
  config.experiments.p3.arm = ""
  config.experiments.p3.targets = ml_collections.ConfigDict()


def get_config(preset: str = "darkroom"):
  size, _, study = preset.rpartition(",")
  if study not in ("darkroom", "breakout") or size not in ("", "smoke"):
    raise ValueError(f"bc_budget.py preset {preset!r}: '[smoke,]darkroom' or '[smoke,]breakout'")
  config = (darkroom if study == "darkroom" else breakout).get_config(size)
  with config.unlocked():
    bc_alone(config)
    config.imitation.arms.bc.updates = 0            # train.num_updates is the cap
  config.lock()
  return config
