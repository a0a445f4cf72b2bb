r"""Capacity sweep: context length (in episodes) x model size against in-context learning speed and return.

Every (context, model size) pair changes array shapes, so each is its own run (its replicates stay vmapped
inside it). The runs reuse the teachers of a finished main-job run directory (`teachers_from`) and train
AD with the recipe that learns in context here (the main job's ad_p50: the first 50% of each history,
every 10th episode), on an equal token budget per run (batch x window = TOKENS_PER_UPDATE for the same
number of updates), with contexts up to the whole kept truncated history (25 kept episodes). Each run is
rolled out under the `evaluation` protocol and under P2's (late - ceiling, trend, the same gates), which
the sweep reports against context length and model size. Run the whole sweep with

  python -m launch.local --sweep=experiments/configs/capacity.py --root=runs/darkroom
  python -m launch.slurm --sweep=experiments/configs/capacity.py:gpu --root=/scratch/runs/darkroom

which runs every job of `sweep(preset)` (skipping finished ones), then aggregates them into
`<root>/capacity/` and adds the capacity rows to `<root>/report.md`. One job by hand:

  python -m experiments.pipeline --config=experiments/configs/capacity.py:ctx4-base \
      --workdir=runs/darkroom/capacity/ctx4-base --config.teachers_from=runs/darkroom

Presets: "<base>,ctx<N>-<size>" with base one of "" (CPU default), "smoke", "gpu" (as darkroom.py), N the
context in episodes and size one of SIZES; "ctx<N>-<size>" alone uses the CPU default base.
"""
import ml_collections

from experiments.configs import darkroom

SIZES = {"small": dict(layers=2, width=32, heads=2), "base": dict(layers=4, width=64, heads=4)}
CONTEXT_EPISODES = (1, 2, 4, 8, 25)      # 25: the whole kept truncated history (first 50%, gap 10)
SMOKE_CONTEXT_EPISODES = (1, 2)
TOKENS_PER_UPDATE = 3_200                # the main job's 32 windows x 100 steps


def _parse(preset: str):
  base, _, axes = (preset or "").rpartition(",") if "," in (preset or "") else ("", "", preset or "")
  if axes in ("", "smoke", "gpu"):
    base, axes = axes, ""
  ctx, size = 4, "base"
  if axes:
    head, sep, size = axes.partition("-")
    if not head.startswith("ctx") or not head[3:].isdigit() or not sep:
      raise ValueError(f"capacity.py preset {preset!r}: expected '[base,]ctx<N>-<size>', e.g. 'smoke,ctx2-small'")
    ctx = int(head[3:])
  if size not in SIZES:
    raise ValueError(f"capacity.py preset {preset!r}: model size must be one of {sorted(SIZES)}")
  if base not in ("", "smoke", "gpu") or ctx < 1:
    raise ValueError(f"capacity.py preset {preset!r}: base must be '', 'smoke' or 'gpu' and the context >= 1 "
                     "episode")
  return base, ctx, size


def sweep(preset: str = ""):
  """The sweep's jobs: [(name, config preset)], one per (context, size) pair; preset is the base."""
  if preset not in ("", "smoke", "gpu"):
    raise ValueError(f"capacity sweep: base preset must be '', 'smoke' or 'gpu' (got {preset!r})")
  contexts = SMOKE_CONTEXT_EPISODES if preset == "smoke" else CONTEXT_EPISODES
  sizes = ("small",) if preset == "smoke" else tuple(SIZES)
  prefix = f"{preset}," if preset else ""
  return [(f"ctx{c}-{s}", f"{prefix}ctx{c}-{s}") for s in sizes for c in contexts]


def base_config(preset: str = ""):
  """The main-job config whose run directory the sweep's jobs take their teachers from."""
  return darkroom.get_config(preset)


def get_config(preset: str = ""):
  base, ctx, size = _parse(preset)
  config = darkroom.get_config(base)
  with config.unlocked():
    config.capacity = ml_collections.ConfigDict(dict(context_episodes=ctx, model=size))
    ep_len = int(config.env.kwargs.episode_len)
    darkroom.one_arm_job(config, darkroom.arm(portion="first", fraction=0.5, gap=1 if base == "smoke" else 10))
    config.imitation.model.update(SIZES[size] if base != "smoke" else dict(layers=1, width=16, heads=2))
    config.imitation.model.context_len = ctx * ep_len
    config.imitation.train.seq_len = ctx * ep_len
    if base != "smoke":
      config.imitation.train.batch_size = max(1, round(TOKENS_PER_UPDATE / (ctx * ep_len)))
    if base == "":
      config.imitation.eval.every_segments = 0      # no during-training rollouts
  config.lock()
  return config
