r"""DarkRoom 9x9, CPU-sized: DQN teachers on the training goals (AD's setting).

  python -m experiments.teachers --config=experiments/configs/darkroom.py --workdir=runs/darkroom
  python -m experiments.teachers --config=experiments/configs/darkroom.py:smoke --workdir=runs/smoke
  python -m experiments.pipeline --config=experiments/configs/darkroom.py --workdir=runs/darkroom

Presets (after the colon): `smoke` (seconds, for tests), `gpu` (more seeds and steps).
"""
import ml_collections

from cl_limits.teachers import dqn


def teacher_dqn(**overrides):
  cfg = dqn.default_config()
  cfg.update(dict(num_envs=4, total_steps=40_000, segment_steps=4_000, buffer_size=10_000, batch_size=64,
                  train_every=4, target_update_every=400, learning_starts=1_000, lr=1e-3, gamma=0.9,
                  eps_start=1.0, eps_end=0.05, eps_anneal_steps=20_000, loss="huber", huber_delta=1.0,
                  max_grad_norm=10.0, hidden=(64, 64)))
  cfg.update(overrides)
  return cfg


def get_config(preset: str = ""):
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.env = ml_collections.ConfigDict(dict(name="DarkRoom", kwargs=dict(size=9, episode_len=20)))
  config.tasks = ml_collections.ConfigDict(dict(split_seed=0, heldout_fraction=0.25, teacher_split="train",
                                                max_tasks=0))
  config.teacher = ml_collections.ConfigDict(dict(num_seeds=3, log_every=1_000, eval_episodes=1,
                                                  dqn=teacher_dqn()))
  if preset == "smoke":
    config.tasks.max_tasks = 4
    config.teacher.num_seeds = 2
    config.teacher.log_every = 200
    config.teacher.dqn = teacher_dqn(num_envs=2, total_steps=1_200, segment_steps=400, buffer_size=1_000,
                                     batch_size=16, train_every=2, target_update_every=40,
                                     learning_starts=100, eps_anneal_steps=600, hidden=(16,))
  elif preset == "gpu":
    config.teacher.num_seeds = 8
    config.teacher.dqn = teacher_dqn(total_steps=100_000, segment_steps=10_000, eps_anneal_steps=50_000)
  elif preset:
    raise ValueError(f"unknown preset {preset!r} for darkroom.py; choose from '', 'smoke', 'gpu'")
  config.lock()
  return config
