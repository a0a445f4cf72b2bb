r"""Breakout, as in Byrnes' thought experiment: the P1 / P2 / P3 study on MinAtar Breakout.

  python -m experiments.pipeline --config=experiments/configs/breakout.py --workdir=runs/breakout
  python -m experiments.pipeline --config=experiments/configs/breakout.py:gpu --workdir=runs/breakout_gpu

A DQN learns MinAtar Breakout from random weights (14 replicates on the CPU, 8 on a GPU); imitators are
trained on its learning history (snapshot BC on the last 10%, AD on the first part), frozen, rolled out
10x longer than their data (P2), prompted with the teacher's last episodes (P1), and put into another
game, SpaceInvaders, that a DQN also learns from scratch (P3), with Breakout itself as the P3 positive
control (the same scoring on the training game). The same stages and verdict rules as the DarkRoom job
(experiments/configs/darkroom.py); only the sizes and the arms differ.

Presets: "" (CPU: under an hour on 2 cores), `smoke` (the test suite), `gpu` (one H100 / H200: the Young &
Tian 2019 DQN for 5M steps x 8 replicates; docs/studies.md "Breakout study, gpu preset").

The P2 cut (rule fixed 2026-12-03 from the teachers' greedy curve alone, before any imitator trained on
it; the earlier 5% and 15% cuts held data with no learning in it, docs/results.md): one greedy evaluation
after epsilon reaches its floor (50k), so that the kept data ends with 10k steps of Q-learning at a fixed
epsilon, provided the teachers' greedy return there is at most random + 0.7 x (final - random) so their
later rise can pass the headroom gate: 60k of 200k steps (30%; greedy 6.9 against a final 17.7 and a
random 0.54 in the 2026-12-03 run). The power control (AD-epsilon) follows each replicate's own final DQN,
greedy, with epsilon falling from 1 to the teachers' floor over each stream, cut half way; its imitator is
also the P3 positive control, learning in context in its own game against the DQN's curve over the same
steps (an expected "refuted" that agrees with the power control's). gymnax MinAtar differs from the original MinAtar (no sticky actions, episodes cut at 1000 steps, the
full 6-action set here): returns are not directly comparable with published MinAtar results.
"""
import ml_collections

from experiments.configs import darkroom, minatar

PRESETS = ("", "smoke", "gpu")


def teacher_dqn(size: str):
  cfg = minatar.teacher_dqn("gpu" if size == "gpu" else "smoke" if size == "smoke" else "")
  if size == "":
    # 4 streams, one update of 32 per 4 steps (the CPU MinAtar preset), 200k steps: epsilon reaches its
    # floor at 50k, and the greedy return still rises at the end (docs/studies.md "The Breakout study").
    cfg.update(dict(total_steps=200_000, segment_steps=10_000, eps_anneal_steps=50_000))
  elif size == "smoke":
    cfg.update(dict(total_steps=3_000, segment_steps=1_000, eps_anneal_steps=1_500, hidden=(32,)))
  return cfg


def get_config(preset: str = ""):
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r} for breakout.py; choose from {PRESETS}")
  size = preset
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.teachers_from = ""
  config.env = ml_collections.ConfigDict(dict(name="MinAtar-Breakout", kwargs=dict()))
  # One task (the game): "held-out tasks" are the game itself, so the evaluation, P2 and the hybrid roll out
  # on the teachers' own game, as in the thought experiment.
  config.tasks = ml_collections.ConfigDict(dict(split_seed=0, heldout_fraction=0.0, teacher_split="train",
                                                max_tasks=0))
  # 14 on the CPU: the competence gate's power (0.8 on the imitator trained without its learners' untrained
  # start) at the 7-replicate runs' spread (BUILD_NOTES, "14 replicates without the untrained start").
  seeds = {"gpu": 8, "smoke": 2}.get(size, 14)
  config.teacher = ml_collections.ConfigDict(dict(
      num_seeds=seeds, log_every={"gpu": 50_000, "smoke": 500}.get(size, 5_000),
      eval_episodes={"gpu": 10, "smoke": 1}.get(size, 5), record_gap={"gpu": 10}.get(size, 1),
      dqn=teacher_dqn(size)))

  im = darkroom.imitation()
  im.num_seeds = seeds
  # bc (P1): the last 10%. ad_early (P2): the first 30% (the cut rule above), every episode. ad_p15: the
  # first 15%, every 2nd episode (P3's transfer arm and the hybrid's). ad_eps_half (P2 power control and
  # P3 positive control): AD-epsilon streams of each replicate's final DQN (4 streams of 10k steps, one
  # held out; epsilon 1 -> 0.1 over the stream), the first half, every 4th episode (a 256-step context
  # then spans about 4% of the epsilon schedule). Caps of 600 updates of 16 x 256 tokens (2.5M tokens per
  # model); every arm stops earlier when its held-out fidelity stops improving (imitation.fidelity).
  im.arms = ml_collections.ConfigDict(dict(
      bc=darkroom.arm(portion="last", fraction=0.1, updates=600),
      ad_early=darkroom.arm(portion="first", fraction=0.3, gap=1, updates=600),
      ad_p15=darkroom.arm(portion="first", fraction=0.15, gap=2, updates=600),
      ad_eps_half=darkroom.arm(data="ad_eps", portion="first", fraction=0.5, gap=4, updates=600)))
  im.ad_eps.update(dict(streams=4, steps=10_000, eps_floor=0.1, decay_fraction=1.0, demonstrator="teacher"))
  im.model.update(dict(context_len=256, layers=2, width=64, heads=4))
  # One model at a time on a CPU (1.35x at these shapes: learner.default_config); the gpu preset batches them.
  im.train.update(dict(seq_len=256, batch_size=16, num_updates=600, updates_per_segment=100, warmup_updates=40,
                       models_at_once=1))
  im.eval = ml_collections.ConfigDict(dict(every_segments=1, num_tasks=1, episodes=5))
  config.imitation = im

  config.evaluation = darkroom.evaluation(episodes=10, num_tasks=1, early_episodes=3, late_episodes=5)
  ex = darkroom.experiments()
  ex.p1.update(dict(num_tasks=1, prompt_episodes=3, episodes=20, late_episodes=10))
  # One competence rollout: Breakout's gate passes a held-out stream of its data at 14 replicates (its
  # measurement noise is not DarkRoom's), and its tables were made so.
  ex.p2.update(dict(arms="ad_early", power_control="ad_eps_half", known_positive=False, num_tasks=1,
                    competence_tasks=1, competence_rollouts=1, ceiling_window=20))
  ex.hybrid.update(dict(arm="ad_p15", num_tasks=1, horizon_factor=1.0))
  ex.hybrid.learner.update(dict(act_steps=10_000, sgd_steps=16, batch_size=4, seq_len=256, buffer_steps=10_000))
  ex.p3 = ml_collections.ConfigDict(dict(
      arm="ad_p15", num_tasks=1, hybrid_tasks=1, late_fraction=0.1, threshold=0.8,
      targets=ml_collections.ConfigDict(dict(
          # SpaceInvaders' DQN learns for half the Breakout teachers' steps (total_steps; CPU time), and P3
          # rolls the imitators out there for as many steps as it learned.
          spaceinvaders=ml_collections.ConfigDict(dict(name="MinAtar-SpaceInvaders", role="transfer", hybrid=True,
                                                       reuse_teachers=False, total_steps=100_000,
                                                       kwargs=ml_collections.ConfigDict())),
          breakout=ml_collections.ConfigDict(dict(name="MinAtar-Breakout", role="positive_control", hybrid=False,
                                                  reuse_teachers=True, total_steps=0, arm="ad_eps_half",
                                                  kwargs=ml_collections.ConfigDict()))))))
  config.experiments = ex

  if size == "smoke":
    config.teacher.log_every = 500
    im.model.update(dict(context_len=32, layers=1, width=16, heads=2))
    im.train.update(dict(seq_len=32, batch_size=4, num_updates=20, updates_per_segment=10, warmup_updates=2))
    for a in im.arms.values():
      a.updates = 20
    im.arms.ad_early.update(dict(fraction=0.25, gap=1))
    im.arms.ad_p15.update(dict(fraction=0.5, gap=1))
    im.arms.ad_eps_half.gap = 1
    im.ad_eps.update(dict(streams=2, steps=300))
    config.evaluation.update(dict(episodes=3, early_episodes=1, late_episodes=1))
    im.eval.update(dict(episodes=1))
    config.evaluation.update(dict(episodes=3, early_episodes=1, late_episodes=1))
    ex.p1.update(dict(prompt_episodes=1, episodes=2, late_episodes=1))
    ex.p2.update(dict(horizon_factor=1.5, ceiling_window=3))
    ex.hybrid.update(dict(variants="full"))
    ex.hybrid.learner.update(dict(act_steps=500, sgd_steps=2, batch_size=2, seq_len=32, buffer_steps=500))
    ex.p3.targets.spaceinvaders.hybrid = False     # the hybrid stage covers test-time SGD in the smoke run
    ex.p3.targets.spaceinvaders.total_steps = 0
  elif size == "gpu":
    # Every 5th episode recorded: 8 replicates x 5M steps -> 8M stored steps, 5.7 GB of unpacked frames on
    # device. The imitation budget grows with the data: 4,000 updates of 8 x 1,024 tokens (33M tokens per
    # model: about 220 passes over ad_p15's 150k stored steps per replicate, 330 over bc's 100k and 660
    # over ad_p05's 50k); batch 8 keeps the 24 models' attention matrices at 39 GB (experiments/budget.py, docs/studies.md).
    config.teacher.record_gap = 5
    # One stream per teacher: none to hold out, so no fidelity measurement and every arm to its cap.
    im.fidelity.update(dict(heldout_streams=0, patience=0))
    im.model.update(dict(context_len=1024, layers=4, width=128, heads=4))
    im.train.update(dict(seq_len=1024, batch_size=8, num_updates=4_000, updates_per_segment=500,
                         warmup_updates=200, lr=3e-4, models_at_once=0))
    for a in im.arms.values():
      a.updates = 4_000
    im.arms.ad_early.update(dict(fraction=0.04, gap=1))     # the cut rule: epsilon's floor at 100k + 100k
    im.arms.ad_p15.gap = 1
    im.ad_eps.update(dict(streams=1, steps=100_000))
    ex.hybrid.learner.update(dict(act_steps=250_000, sgd_steps=32, batch_size=4, seq_len=1024,
                                  buffer_steps=100_000))
    ex.p3.targets.spaceinvaders.total_steps = 0     # as long as the Breakout teachers: 5M steps
    config.evaluation.episodes = 100
    ex.p1.update(dict(prompt_episodes=5, episodes=50, late_episodes=20))
  # P2 plays as its data's learners acted (fixed 2026-12-05; BUILD_NOTES "The Breakout P2 protocol"): the
  # imitator's argmax choice, with epsilon falling from 1 to 0 over the teachers' schedule in one stream's
  # steps (their eps_anneal_steps over num_envs streams) and marked. Its headroom is then the teachers'
  # greedy rise (replicates.headroom_basis). ad_early imitates the learners' greedy choices.
  dq = config.teacher.dqn
  im.arms.ad_early.labels = "greedy"
  # Without the learners' untrained start: each stream's episodes that begin before the teachers' first
  # update (learning_starts of total_steps; 1,250 of 50,000 stream steps on the CPU), whose greedy choice is
  # the random initialisation's (BUILD_NOTES, "without its learners' untrained start").
  im.arms.ad_early.start = float(dq.learning_starts) / float(dq.total_steps)
  im.model.mark_explore = True
  ex.p2.protocol.update(dict(source="own", greedy=True, temperature=1.0, epsilon=0.0,
                             epsilon_decay=int(dq.eps_anneal_steps) // int(dq.num_envs)))
  darkroom.link_replicates(config)
  darkroom.link_context(config)
  config.lock()
  return config
