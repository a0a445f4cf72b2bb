r"""The frame-encoder comparison: snapshot BC on the Breakout study's teachers, one encoder per run, scored by
held-out fidelity (KL to the teachers' behaviour policy, in nats) at the same updates and tokens.

  python -m experiments.imitate --config=experiments/configs/frame_encoder.py:linear \
      --workdir=runs/encoder_linear --config.teachers_from=runs/breakout
  python -m experiments.imitate --config=experiments/configs/frame_encoder.py:patch \
      --workdir=runs/encoder_patch --config.teachers_from=runs/breakout

Presets: the encoder (`linear`, `patch`), optionally `smoke,` before it. Only the `bc` arm (the P1 arm) is
trained; everything else is the Breakout study's (experiments/configs/breakout.py). Patience is off so both
encoders take the same number of updates; the fidelity curve shows where each stopped improving.
"""

from experiments.configs import bc_budget, breakout


def get_config(preset: str = "patch"):
  size, _, enc = preset.rpartition(",")
  if enc not in ("linear", "patch") or size not in ("", "smoke"):
    raise ValueError(f"frame_encoder.py preset {preset!r}: '[smoke,]linear' or '[smoke,]patch'")
  config = breakout.get_config(size)
  with config.unlocked():
    bc_budget.bc_alone(config)
    config.imitation.model.frame_encoder = enc
  config.lock()
  return config
