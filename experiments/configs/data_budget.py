r"""DarkRoom's P2 early arm against the data per replicate: teachers with k times the study's parallel
streams per task on the same per-stream schedule, and `ad_early` trained on every training stream beside
the same arm on the study's number of streams, both to the same cap with patience off, scored by the P2
gates (competence, its clone, learning in data, headroom). Same teachers, tasks, keys and updates for both
arms: the only difference is how many streams of each task the imitator sees.

  python -m experiments.pipeline --config=experiments/configs/data_budget.py --workdir=runs/data_budget
  python -m experiments.pipeline --config=experiments/configs/data_budget.py:8 ...     (8 streams per task)
  python -m experiments.pipeline --config=experiments/configs/data_budget.py:16,alone ...  (ad_early only)

Preset: the streams per task (a multiple of the study's 4; default 16), optionally `smoke,` before it and
`,alone` after it (the all-streams arm alone, for a second budget on data whose few-stream arm is known).
Per stream the teachers' schedule is the study's: every step count of the DQN (total, segment, replay,
learning start, epsilon's decay, target update, update period) is counted over all of a learner's streams,
so each is multiplied by k; the cut (the same fraction) falls at the same step of each stream. The arms:
`ad_early` (all streams but the held-out one) and `ad_early_few` (the study's streams less the held-out
one: 3), both with the study's cut and gap; no P1, P3, hybrid, power control or known positive.
"""
import ml_collections

from experiments.configs import bc_budget, darkroom

_SCALED = ("total_steps", "segment_steps", "buffer_size", "learning_starts", "eps_anneal_steps",
           "target_update_every", "train_every")


def get_config(preset: str = "16"):
  parts = str(preset).split(",")
  alone = parts[-1] == "alone"
  parts = parts[:-1] if alone else parts
  size, streams = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
  if size not in ("", "smoke") or not streams.isdigit() or len(parts) > 2:
    raise ValueError(f"data_budget.py preset {preset!r}: '[smoke,]<streams per task>[,alone]', e.g. '16'")
  config = darkroom.get_config(size)
  dqn = config.teacher.dqn
  base = int(dqn.num_envs)
  k, rem = divmod(int(streams), base)
  if k < 1 or rem:
    raise ValueError(f"data_budget.py preset {preset!r}: the streams per task must be a multiple of the "
                     f"study's {base}")
  with config.unlocked():
    for f in _SCALED:
      dqn[f] = int(dqn[f]) * k
    dqn.num_envs = base * k
    early = config.imitation.arms.ad_early
    bc_budget.arm_alone(config, "ad_early")
    config.imitation.arms.ad_early_few = ml_collections.ConfigDict(early.to_dict())
    config.imitation.arms.ad_early_few.streams = base - int(config.imitation.fidelity.heldout_streams)
    for a in config.imitation.arms.values():
      a.updates = 0                                  # train.num_updates is the cap
    if alone:
      del config.imitation.arms["ad_early_few"]
    bc_budget.p2_gates_alone(config)
  config.lock()
  return config
