r"""P3 on MinAtar: leave one game out (cl_limits/stages/transplant.py).

  python -m experiments.pipeline --config=experiments/configs/transplant.py:smoke --workdir=runs/transplant_smoke
  python -m experiments.pipeline --config=experiments/configs/transplant.py:gpu --workdir=runs/transplant

DQN teachers learn every game of `transplant.games`; for each held-out game, AD imitators train on the
learning histories of the other games, with ("aug": a random observation projection and action
permutation per training window) and without ("raw") task augmentation, and are rolled out frozen in the
held-out game for as many steps as its DQN trained, against that DQN and a random policy.

Presets: `smoke` (two games, one held out, tiny everything: the CPU test), `gpu` (the four games, the
DQN of Young & Tian 2019 for 5M steps x 8 seeds, every 10th episode recorded), "" (CPU-sized: the four
games at the CPU MinAtar DQN's 100k steps; hours on two cores).
"""
import ml_collections

from cl_limits.imitation import learner
from cl_limits.rollouts import hybrid
from experiments.configs import darkroom, minatar
from experiments.configs.darkroom import arm, rollout_settings

PRESETS = ("", "smoke", "gpu")


def get_config(preset: str = ""):
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r} for transplant.py; choose from {PRESETS}")
  size = preset
  mini = minatar.get_config(size)
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.teachers_from = ""
  config.tasks = ml_collections.ConfigDict(mini.tasks.to_dict())
  config.teacher = ml_collections.ConfigDict(mini.teacher.to_dict())
  config.teacher.record_gap = {"gpu": 10, "smoke": 1}.get(size, 2)

  im = ml_collections.ConfigDict()
  im.num_seeds = int(config.teacher.num_seeds)   # replicate s imitates teacher seed s's histories only
  im.sources = ""          # set per held-out game to the other games' teacher histories
  # AD on whole histories of every other game (episode gap applied on top of teacher.record_gap).
  im.arms = ml_collections.ConfigDict(dict(raw=arm(portion="all"), aug=arm(portion="all", augment=True)))
  im.model = learner.default_model_config()
  im.model.update(dict(context_len=256, layers=4, width=128, heads=4))
  im.train = learner.default_config()
  im.train.update(dict(seq_len=256, batch_size=32, num_updates=20_000, updates_per_segment=500, lr=3e-4,
                       warmup_updates=1_000))
  im.eval = ml_collections.ConfigDict(dict(every_segments=10, num_tasks=1, episodes=3))
  # Fidelity on a held-out stream of every joined game needs 2+ streams per learner (the CPU MinAtar teachers
  # have 4; the gpu preset's 1): on where there are.
  streams = int(config.teacher.dqn.num_envs)
  im.fidelity = ml_collections.ConfigDict(dict(heldout_streams=1 if streams > 1 else 0, max_windows=64,
                                               patience=2 if streams > 1 else 0, min_improvement=0.005))
  config.imitation = im
  config.evaluation = ml_collections.ConfigDict(dict(greedy=False, temperature=1.0, epsilon=0.0,
                                                             epsilon_decay=0))
  config.experiments = ml_collections.ConfigDict(dict(rollout=rollout_settings()))   # as darkroom.py's

  t = ml_collections.ConfigDict()
  t.games = "Breakout,SpaceInvaders,Asterix,Freeway"
  t.heldout = ""               # comma-separated; "" = every game in turn
  t.arms = "raw,aug"
  t.repeats = 4                # rollouts per model seed (augmented arms: a fresh augmentation each)
  t.late_fraction = 0.1
  t.threshold = 0.8
  t.hybrid_arm = "aug"         # "" for none
  t.variants = "full,lora"
  t.learner = hybrid.default_config()
  t.learner.update(dict(act_steps=20_000, sgd_steps=32, batch_size=8, seq_len=256, buffer_steps=20_000))
  config.transplant = t

  if size == "smoke":
    # 8k DQN steps: enough for Breakout's DQN to beat the random policy (about 1.5 vs 0.5), so the
    # normalised scores exist.
    config.teacher.log_every = 1_000
    config.teacher.dqn.update(dict(total_steps=8_000, segment_steps=4_000, eps_anneal_steps=4_000,
                                   hidden=(32,)))
    t.games = "Breakout,Asterix"
    t.heldout = "Breakout"
    t.repeats = 2
    t.variants = "full"
    t.learner.update(dict(act_steps=2_000, sgd_steps=2, batch_size=2, seq_len=20, buffer_steps=500))
    im.model.update(dict(context_len=20, layers=1, width=16, heads=2))
    im.train.update(dict(seq_len=40, batch_size=4, num_updates=20, updates_per_segment=10,
                         warmup_updates=2))
    im.eval.update(dict(every_segments=1, episodes=1))
  elif size == "gpu":
    t.learner.update(dict(act_steps=250_000))     # 20 SGD rounds over a 5M-step rollout
  else:
    t.learner.update(dict(act_steps=10_000))
    im.train.update(dict(num_updates=4_000, updates_per_segment=250))
    im.model.update(dict(context_len=128, width=64))
    im.train.seq_len = 128
  darkroom.link_replicates(config)
  darkroom.link_context(config)
  config.lock()
  return config
