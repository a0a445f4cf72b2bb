r"""The gap x streams sweep: does the imitator's in-context learning speed scale with how much teacher
experience one kept episode stands for?

A kept episode of an arm with `gap` g trained on `streams` s of each teacher's streams stands for g x s of
the teacher learner's episodes. If the frozen imitator's speed (episodes to half of its improvement, on
held-out tasks) scales with g x s, it replays the compressed improvement of its data rather than learning
at its own pace. Each (gap, streams) pair is its own run on the main job's teachers (AD on the first 50%
of each history, the main job's model and budget), rolled out under the `evaluation` protocol and P2's.

  python -m launch.local --sweep=experiments/configs/gap.py --root=runs/darkroom

Presets: "<base>,g<G>-s<S>" with base "" (CPU), "smoke" or "gpu"; "g<G>-s<S>" alone uses the CPU base.
"""
import ml_collections

from experiments.configs import darkroom

NAME = "gap"
AGGREGATE = "gap"
GAPS = (5, 10, 20)
STREAMS = (1, 4)
SMOKE = ((1, 1), (2, 2))


def _parse(preset: str):
  base, _, axes = (preset or "").rpartition(",") if "," in (preset or "") else ("", "", preset or "")
  if axes in ("", "smoke", "gpu"):
    base, axes = axes, ""
  gap, streams = 10, 4
  if axes:
    g, sep, s = axes.partition("-")
    if not (g.startswith("g") and g[1:].isdigit() and sep and s.startswith("s") and s[1:].isdigit()):
      raise ValueError(f"gap.py preset {preset!r}: expected '[base,]g<G>-s<S>', e.g. 'smoke,g2-s2'")
    gap, streams = int(g[1:]), int(s[1:])
  if base not in ("", "smoke", "gpu") or gap < 1 or streams < 1:
    raise ValueError(f"gap.py preset {preset!r}: base must be '', 'smoke' or 'gpu', gap and streams >= 1")
  return base, gap, streams


def sweep(preset: str = ""):
  if preset not in ("", "smoke", "gpu"):
    raise ValueError(f"gap sweep: base preset must be '', 'smoke' or 'gpu' (got {preset!r})")
  pairs = SMOKE if preset == "smoke" else [(g, s) for s in STREAMS for g in GAPS]
  prefix = f"{preset}," if preset else ""
  return [(f"g{g}-s{s}", f"{prefix}g{g}-s{s}") for g, s in pairs]


def base_config(preset: str = ""):
  return darkroom.get_config(preset)


def get_config(preset: str = ""):
  base, gap, streams = _parse(preset)
  config = darkroom.get_config(base)
  with config.unlocked():
    config.gap_sweep = ml_collections.ConfigDict(dict(gap=gap, streams=streams))
    darkroom.one_arm_job(config, darkroom.arm(portion="first", fraction=0.5, gap=gap, streams=streams))
    config.imitation.eval.every_segments = 0
    if streams >= int(config.teacher.dqn.num_envs):   # every stream trained on: none left to hold out
      config.imitation.fidelity.update(dict(heldout_streams=0, patience=0))
  config.lock()
  return config
