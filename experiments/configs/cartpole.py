r"""DQN on gymnax CartPole-v1 with PureJaxRL's defaults: the teacher's sanity check and benchmark.

  python -m experiments.teachers --config=experiments/configs/cartpole.py --workdir=runs/cartpole
  python benchmarks/teacher_throughput.py

Presets: `smoke` (a few seconds). The default trains 4 seeds for 5e5 steps each.
"""
import ml_collections

from cl_limits.teachers import dqn


def get_config(preset: str = ""):
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.teachers_from = ""
  config.env = ml_collections.ConfigDict(dict(name="CartPole-v1", kwargs=dict()))
  config.tasks = ml_collections.ConfigDict(dict(split_seed=0, heldout_fraction=0.0, teacher_split="train",
                                                max_tasks=0))
  config.teacher = ml_collections.ConfigDict(dict(num_seeds=4, log_every=10_000, eval_episodes=0,
                                                  record_gap=1, dqn=dqn.default_config()))
  if preset == "smoke":
    config.teacher.num_seeds = 2
    config.teacher.dqn.update(dict(total_steps=2_000, segment_steps=1_000, learning_starts=500,
                                   buffer_size=1_000))
  elif preset:
    raise ValueError(f"unknown preset {preset!r} for cartpole.py; choose from '', 'smoke'")
  config.lock()
  return config
