r"""Where the P1 imitator's distance from its behaviour policy comes from, and how much of it no budget of
updates can remove, on a finished run's held-out data (the imitation stage's fidelity measure):

  python -m experiments.fidelity_floor --config=experiments/configs/darkroom.py --workdir=runs/darkroom_s0
  python -m experiments.fidelity_floor --config=experiments/configs/breakout.py --workdir=runs/breakout_s0

Two analyses, each where it applies:

- **By state** (DarkRoom: a fixed start cell and an oracle). Each held-out step is put in one class: on
  the goal, one shortest move to it, or two (two equally short paths: the DQN's argmax between them is
  its choice, not the task's); and by whether it lies in the first episode of its context window (the
  goal not yet seen in context) or a later one. For the two-move steps it also prints how often the
  teacher's greedy action equals its greedy action at the same cell one episode earlier: the most an
  imitator can read from its context about which way the teacher breaks the tie.
- **Teacher drift** (one task, two or more teacher checkpoints: MinAtar). How far the data's behaviour
  policy moves while the kept data is recorded: the greedy action (over the game's distinct actions) of
  the teachers' last two checkpoints against the recorded one and against each other, and KL(behaviour ||
  checkpoint) for each checkpoint as an epsilon-greedy imitator (the recorded epsilon) and for their
  50/50 mixture: how close the teacher's own network comes to the policy that made its data.
"""
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from cl_limits.analysis.fidelity_floor import by_state
from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory whose imitation stage has finished.")
_CACHE = cli.compile_cache_flag()
_ARM = flags.DEFINE_string("arm", "", "The arm to analyse (default: the P1 arm, experiments.p1.arm).")
flags.mark_flags_as_required(["config", "workdir"])


def teacher_drift(config, workdir, env, parts, arm_index, num_seeds):
  """Per replicate: {name: value} of the drift analysis (module doc), or None without two checkpoints."""
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  import orbax.checkpoint as ocp  # noqa: PLC0415

  from cl_limits import sharding  # noqa: PLC0415
  from cl_limits.histories.history import behaviour_probs  # noqa: PLC0415
  from cl_limits.imitation import fidelity as fidelity_lib  # noqa: PLC0415
  from cl_limits.stages import artifacts, common, layout  # noqa: PLC0415
  from cl_limits.teachers import population  # noqa: PLC0415
  env_, tasks, task_ids, teacher = artifacts.teacher_setup(config)
  if len(task_ids) != 1:
    return None
  directory = layout.path(common.teachers_at(config, workdir), "teachers", "checkpoints")
  mngr = ocp.CheckpointManager(directory)
  steps = sorted(mngr.all_steps())[-2:]
  if len(steps) < 2:
    return None
  abstract = jax.eval_shape(population.per_task(teacher.init),
                            population.seed_task_keys(config.seed, num_seeds, 1), tasks)
  abstract = sharding.restore_target(abstract, num_seeds)
  params = {s: mngr.restore(s, args=ocp.args.StandardRestore(abstract)).params for s in steps}
  seg_steps = int(config.teacher.dqn.segment_steps)
  classes_at = fidelity_lib.classes_of(env)
  q_fn = jax.jit(teacher.q_fn)
  rows = []
  for r in range(num_seeds):
    fd = parts[arm_index * num_seeds + r]
    obs = jnp.asarray(fd.obs)
    num_actions = env.num_actions
    cls = np.asarray(classes_at(obs)) if classes_at is not None else np.broadcast_to(
        fidelity_lib.class_ids(num_actions, getattr(env, "action_classes", None)), (fd.num_steps, num_actions))
    merge = np.eye(num_actions)[cls]                                       # [N, A, K]
    as_class = lambda a: np.take_along_axis(cls, np.asarray(a, np.int64)[:, None], 1)[:, 0]  # noqa: E731
    probs = lambda a: np.einsum("na,nak->nk", np.asarray(                    # noqa: E731
        behaviour_probs(jnp.asarray(a, jnp.int32), jnp.asarray(fd.epsilon), num_actions)), merge)
    b = probs(fd.greedy)
    kl = lambda q: float(np.mean(np.sum(np.where(b > 0, b * (np.log(np.maximum(b, 1e-30))  # noqa: E731
                                                              - np.log(np.maximum(q, 1e-30))), 0), 1)))
    greedy = {s: np.asarray(q_fn(jax.tree.map(lambda x: x[r, 0], params[s]), obs)).argmax(-1) for s in steps}
    rec = as_class(fd.greedy)
    a, z = steps
    rows.append({
        "held-out steps": fd.num_steps, "epsilon": float(np.mean(fd.epsilon)),
        f"greedy = checkpoint at {a * seg_steps:,} steps'": float((rec == as_class(greedy[a])).mean()),
        f"greedy = checkpoint at {z * seg_steps:,} steps'": float((rec == as_class(greedy[z])).mean()),
        "the two checkpoints agree": float((as_class(greedy[a]) == as_class(greedy[z])).mean()),
        f"KL to checkpoint {a * seg_steps:,}": kl(probs(greedy[a])),
        f"KL to checkpoint {z * seg_steps:,}": kl(probs(greedy[z])),
        "KL to their mixture": kl((probs(greedy[a]) + probs(greedy[z])) / 2)})
  return rows


def main(argv):
  del argv
  cli.open_compile_cache(_CACHE)
  from cl_limits.imitation import fidelity as fidelity_lib  # noqa: PLC0415
  from cl_limits.stages import imitation as imitation_stage  # noqa: PLC0415
  from cl_limits.stages.base import ConfigError  # noqa: PLC0415
  logging.set_verbosity(logging.WARNING)
  config, workdir = _CONFIG.value, _WORKDIR.value
  try:
    env, parts, heldout, stats, arms, num_seeds = imitation_stage.finished_fidelity(config, workdir)
  except ConfigError as e:
    raise SystemExit(f"error: {e}") from None
  seq_len = int(config.imitation.train.seq_len)
  arm = _ARM.value or str(config.experiments.p1.arm)
  if arm not in arms:
    raise SystemExit(f"error: --arm: {arm!r} is not an arm of this run ({', '.join(arms)})")
  i = arms.index(arm)
  summ = fidelity_lib.summarize(stats, heldout, np.arange(len(arms) * num_seeds))
  g = slice(i * num_seeds, (i + 1) * num_seeds)
  print(f"{arm}: held-out KL {np.mean(summ['kl'][g]):.3f} nats over distinct actions (per replicate "
        + " ".join(f"{v:.3f}" for v in summ["kl"][g]) + f"); over raw actions {np.mean(summ['kl_actions'][g]):.3f}")
  if hasattr(env, "optimal_action") and getattr(env, "start", None) == "center" and hasattr(env, "episode_len"):
    offsets = np.concatenate([[0], np.cumsum([p.num_steps for p in parts])])
    table, copies = {}, []
    for m in range(g.start, g.stop):
      kl, valid, idx = (np.asarray(x)[m] for x in (stats.kl, stats.valid, stats.idx))
      local = idx - offsets[m]           # the group's held-out set starts at offsets[m] in the flat set
      rows, copy = by_state(parts[m], np.asarray(kl, np.float64), valid, np.clip(local, 0, None), env, seq_len)
      copies.append(copy)
      for k, v in rows.items():
        table.setdefault(k, []).append(v)
    print("by state (share of scored steps, mean KL, KL x share = its part of the mean; replicates' means):")
    for k, v in table.items():
      share, kl = np.nanmean([x[0] for x in v]), np.nanmean([x[1] for x in v])
      print(f"  {k:55s} share {share:.3f}  KL {kl:.3f}  part {share * kl:.3f}")
    print(f"  two shortest moves: the teacher's greedy equals its greedy at the same cell one episode earlier "
          f"in {np.nanmean(copies):.2f} of steps (replicates: " + " ".join(f"{c:.2f}" for c in copies) + ")")
  rows = teacher_drift(config, workdir, env, parts, i, num_seeds)
  if rows:
    print("teacher drift over the kept data (per replicate):")
    for k in rows[0]:
      vals = [r[k] for r in rows]
      fmt = "{:,}" if isinstance(vals[0], int) else "{:.3f}"
      print(f"  {k:45s} " + "  ".join(fmt.format(v) for v in vals))


if __name__ == "__main__":
  app.run(main)
