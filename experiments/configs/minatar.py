r"""DQN teachers on the MinAtar games (gymnax, the shared 10x10x7 observation / 6-action interface).

  python -m experiments.teachers --config=experiments/configs/minatar.py --workdir=runs/breakout
  python -m experiments.teachers --config=experiments/configs/minatar.py:gpu-SpaceInvaders --workdir=runs/si

Presets, `<size>[-<Game>]` with Game one of Breakout (default), SpaceInvaders, Asterix, Freeway:
  ""     CPU: 2 seeds x 100k steps, Adam; the CPU learning check (tests/test_minatar.py::test_cpu_breakout_dqn_beats_random_threefold)
  smoke  seconds, for tests
  gpu    the DQN baseline of Young & Tian (2019, "MinAtar"), as in their released dqn.py: one conv layer
         (16 3x3 filters) + 128 units, centered RMSProp lr 2.5e-4 (decay 0.95, eps 0.01), batch 32, one
         update per step, replay 100k, target update every 1000 steps, epsilon 1 -> 0.1 over the first
         100k steps, learning starts at 5000, gamma 0.99, Huber loss, 5M steps; 8 seeds in one program.

gymnax MinAtar differs from the original MinAtar: no sticky actions, and episodes are cut at 1000 steps
(Freeway 2500); returns are not directly comparable with the published curves.
"""
import ml_collections

from cl_limits.envs import minatar
from cl_limits.teachers import dqn

PRESETS = ("", "smoke", "gpu")


def teacher_dqn(size: str):
  cfg = dqn.default_config()
  if size == "gpu":
    cfg.update(dict(num_envs=1, total_steps=5_000_000, segment_steps=100_000, buffer_size=100_000,
                    batch_size=32, train_every=1, target_update_every=1_000, learning_starts=5_000,
                    lr=2.5e-4, gamma=0.99, eps_start=1.0, eps_end=0.1, eps_anneal_steps=100_000,
                    loss="huber", huber_delta=1.0, max_grad_norm=0.0, hidden=(128,), torso="conv",
                    optimizer="rmsprop", rms_decay=0.95, rms_eps=0.01))
  elif size == "smoke":
    cfg.update(dict(num_envs=2, total_steps=2_000, segment_steps=1_000, buffer_size=1_000, batch_size=16,
                    train_every=2, target_update_every=100, learning_starts=200, lr=1e-3, gamma=0.99,
                    eps_start=1.0, eps_end=0.1, eps_anneal_steps=1_000, loss="huber", hidden=(16,),
                    torso="conv"))
  else:   # CPU: 4 streams, one update of batch 32 per 4 steps, a faster schedule than the baseline's
    cfg.update(dict(num_envs=4, total_steps=100_000, segment_steps=20_000, buffer_size=50_000,
                    batch_size=32, train_every=4, target_update_every=1_000, learning_starts=5_000,
                    lr=1e-3, gamma=0.99, eps_start=1.0, eps_end=0.1, eps_anneal_steps=50_000,
                    loss="huber", huber_delta=1.0, max_grad_norm=0.0, hidden=(128,), torso="conv"))
  return cfg


def parse(preset: str):
  size, _, game = str(preset).partition("-")
  if size in minatar.GAMES and not game:       # "Asterix" alone: the CPU size
    size, game = "", size
  game = game or "Breakout"
  if size not in PRESETS or game not in minatar.GAMES:
    raise ValueError(f"unknown preset {preset!r} for minatar.py; use <size>[-<Game>] with size in "
                     f"{PRESETS} and Game in {sorted(minatar.GAMES)}")
  return size, game


def get_config(preset: str = ""):
  size, game = parse(preset)
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.teachers_from = ""
  config.env = ml_collections.ConfigDict(dict(name=f"MinAtar-{game}", kwargs=dict()))
  config.tasks = ml_collections.ConfigDict(dict(split_seed=0, heldout_fraction=0.0, teacher_split="train",
                                                max_tasks=0))
  config.teacher = ml_collections.ConfigDict(dict(
      num_seeds={"gpu": 8, "smoke": 2}.get(size, 2),
      log_every={"gpu": 50_000, "smoke": 500}.get(size, 5_000),
      eval_episodes={"gpu": 10, "smoke": 1}.get(size, 5),
      # Keep every record_gap-th episode of each stream in the history store (the learning curves still
      # count every episode): 5M steps x 8 seeds of 10x10x7 frames is ~3.5 GB bit-packed at gap 1.
      record_gap={"gpu": 10}.get(size, 1),
      dqn=teacher_dqn(size)))
  config.lock()
  return config
