r"""One timed segment of every costly program of a study config at its own shapes, and the extrapolated total.

  python benchmarks/gpu_timing.py --config=experiments/configs/breakout.py:gpu [--out=$OUT/gpu_timing.json]
  python benchmarks/gpu_timing.py --config=experiments/configs/breakout.py:smoke      (seconds, any machine)
  python benchmarks/gpu_timing.py --config=experiments/configs/breakout.py --imitation_updates=5   (CPU: minutes)

Before a study is launched on a device: the teachers' training segment, the imitation program's segment
(every arm x replicate in one program, on random data of the env's observation shape: speed does not
depend on the data's content), and the frozen rollout (every replicate on one task) are each compiled,
run once to warm up and timed once more. Each is extrapolated to the config's whole stage:

  teachers    num_segments x one segment
  targets     each P3 target whose DQN learns from scratch (`reuse_teachers` off): its num_segments x one
              segment of its own teachers' program
  imitation   the largest arm cap / updates_per_segment x one segment (arms stop earlier when their
              held-out fidelity stops improving: an upper bound); with --imitation_updates=N, a program of
              N updates is timed and scaled to the segment (for a CPU, where a segment is minutes)
  rollouts    the P2 rows' horizons (horizon_factor x the cut's learner steps), every P3 target's steps
              (its total_steps, or the teachers'), the evaluation table's (every arm, evaluation.episodes x
              the episode cap per task) and P1's (prompted and from an empty context, p1.episodes x the cap
              per task), at the timed steps per second of all replicates (the evaluation's arms as that
              many batches of replicates); the evaluation and P1 stop once every rollout has its
              episodes, so their part is an upper bound where episodes end before the cap
  hybrids     one act-and-learn segment (act_steps environment steps, then sgd_steps updates) of each
              variant, every replicate on one task, times the segments of the hybrid stage (its horizon
              cut to whole segments, on its tasks) and of each P3 target with `hybrid` on (its steps, on
              p3.hybrid_tasks tasks); the segment is timed with its act phase cut to --rollout_steps, the
              rest of its act steps counted at the frozen rollout's rate

Every line is printed as it is measured and, with --out, the JSON is rewritten after each program, so a
run stopped by a time limit keeps what it measured. Compile times are printed beside, not extrapolated.
What is not counted: the competence gates' rollouts (one kept history per row, a few percent of P2's
horizon), the AD-epsilon histories' generation, the figures and checkpoints. The imitation is counted to
its cap, where arms stop earlier when their held-out fidelity stops improving, so that part is an upper
bound (docs/measurements.md, "What the Breakout study's hour is made of").
"""
from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "study config (experiments/configs/<name>.py[:preset])")
_OUT = flags.DEFINE_string("out", "", "also write the figures as JSON here (rewritten after every program)")
_ROLLOUT = flags.DEFINE_integer("rollout_steps", 2_000, "steps of the timed rollout")
_UPDATES = flags.DEFINE_integer("imitation_updates", 0, "time a program of this many updates and scale it to "
                                "the config's segment (0: one whole segment)")
flags.mark_flags_as_required(["config"])


def _timed(fn, *args):
  """(compile + first run seconds, second run seconds, result) of fn(*args)."""
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return first, time.perf_counter() - t0, out


def time_teachers(config) -> dict:
  from cl_limits.stages import artifacts  # noqa: PLC0415
  from cl_limits.teachers import population  # noqa: PLC0415
  _, tasks, task_ids, teacher = artifacts.teacher_setup(config)
  keys = population.seed_task_keys(int(config.seed), int(config.teacher.num_seeds), len(task_ids))
  state = jax.jit(population.per_task(teacher.init))(keys, tasks)
  seg = jax.jit(population.per_task(teacher.segment))
  first, t, _ = _timed(seg, state, tasks)
  n = int(teacher.num_segments)
  steps = int(config.teacher.dqn.segment_steps) * int(config.teacher.num_seeds) * len(task_ids)
  return {"first_s": first, "segment_s": t, "segments": n, "total_s": n * t, "env_steps_per_s": steps / t}


def time_targets(config) -> dict:
  """The P3 targets' own DQNs (those not reusing the study's teachers), one segment each, extrapolated."""
  from cl_limits.stages import common, p3  # noqa: PLC0415
  out = {"total_s": 0.0}
  for name in config.experiments.p3.targets if str(config.experiments.p3.arm or "") else ():
    if not common.reuses_teachers(config, name):
      out[name] = time_teachers(p3.target_config(config, name))
      out["total_s"] += out[name]["total_s"]
  return out


def time_imitation(config, env) -> dict:
  from cl_limits import envs as envs_lib  # noqa: PLC0415
  from cl_limits.histories import datasets, windows  # noqa: PLC0415
  from cl_limits.imitation import learner as learner_lib  # noqa: PLC0415
  from cl_limits.stages import artifacts  # noqa: PLC0415
  im = config.imitation
  train = im.train
  n_act = env.action_space(env.default_params).n
  shape, dtype = envs_lib.obs_spec(env)
  rng = np.random.default_rng(0)
  length = max(int(train.seq_len) * 4, 1_000)
  n = 20 * length
  nvec = getattr(env, "obs_nvec", None)
  obs = (rng.integers(0, min(nvec), (n,) + shape).astype(dtype) if nvec is not None
         else (rng.random((n,) + shape) < 0.05).astype(dtype))
  fd = datasets.FlatData(obs=obs, action=rng.integers(0, n_act, n).astype(np.int32),
                         label=rng.integers(0, n_act, n).astype(np.int32),
                         reward=(rng.random(n) < 0.3).astype(np.float32), done=rng.random(n) < 0.05,
                         lengths=np.full(n // length, length), episodes=0)
  data = datasets.to_device(fd)
  starts, n_starts = windows.pad_starts([np.asarray(windows.build_index(fd.lengths, int(train.seq_len)).starts)])
  model = artifacts.build_model(config, env)
  per_segment = int(train.updates_per_segment)
  timed = int(_UPDATES.value) or per_segment
  if timed != per_segment:                         # the same update, in a shorter program
    train = train.copy_and_resolve_references()
    train.update(dict(updates_per_segment=timed, num_updates=timed))
  learner = learner_lib.make_learner(train, model)
  m = len(im.arms) * int(im.num_seeds)
  state = jax.jit(jax.vmap(learner.init, in_axes=(0, None)))(
      jax.random.split(jax.random.key(0), m), learner_lib.example_tokens(data, int(train.seq_len), n_act))
  seg = jax.jit(learner.segment)
  first, t, _ = _timed(seg, state, data, jnp.asarray(starts), jnp.asarray(n_starts), jnp.zeros((m,), jnp.int32))
  t_seg = t * per_segment / timed
  cap = max(int(a.updates) or int(im.train.num_updates) for a in im.arms.values())
  segments = -(-cap // per_segment)
  res = {"models": m, "timed_updates": timed, "first_s": first, "segment_s": t_seg, "segments": segments,
         "total_s": segments * t_seg, "tokens_per_s": m * learner.tokens_per_update * timed / t}
  return res, jax.tree.map(lambda x: x[:int(im.num_seeds)], state.params)


def time_rollouts(config, env, params) -> dict:
  """params [R, ...]: the imitation program's first R models (untrained: speed does not depend on them)."""
  from cl_limits.rollouts import rollout as rollout_lib  # noqa: PLC0415
  from cl_limits.stages import artifacts, common  # noqa: PLC0415
  model = artifacts.build_model(config, env)
  horizon = int(_ROLLOUT.value)
  tasks, _ = common.heldout_tasks(config, env, 1)
  r = int(config.imitation.num_seeds)
  fn = rollout_lib.make_batched_rollout(model, env, horizon, rollout_lib.episodes_for(env, horizon),
                                        **artifacts.protocol(config))
  keys = jax.random.split(jax.random.key(2), r)[:, None]
  first, t, _ = _timed(fn, params, tasks, keys)
  total = int(config.teacher.dqn.total_steps)
  p2 = config.experiments.p2
  rows = [a for a in str(p2.arms).split(",") if a] + ([str(p2.power_control)] if str(p2.power_control or "") else [])
  ad = config.imitation.ad_eps
  learner_steps = {"teacher": total, "ad_eps": int(ad.steps) * int(ad.streams)}      # one learner's data
  p2_steps = sum(float(p2.horizon_factor) * float(config.imitation.arms[a].fraction)
                 * learner_steps[str(config.imitation.arms[a].data)] * int(p2.num_tasks) for a in rows)
  p3 = config.experiments.p3
  p3_steps = sum((int(t.get("total_steps", 0) or 0) or total) * int(p3.num_tasks) for t in p3.targets.values()) \
      if str(p3.arm or "") else 0
  cap = common.episode_cap(env)
  ev, p1 = config.evaluation, config.experiments.p1
  eval_tasks = len(common.heldout_tasks(config, env, int(ev.num_tasks))[1])
  eval_steps = len(config.imitation.arms) * int(ev.episodes) * cap * eval_tasks
  p1_steps = (2 * int(p1.episodes) * cap * (int(p1.num_tasks) or len(common.teacher_tasks(config, env)[1]))
              if str(p1.get("arm", "") or "") else 0)
  per_s = horizon / t                      # steps per second of each of the r replicates, in parallel
  return {"first_s": first, "rollout_s": t, "steps_per_s_per_replicate": per_s,
          "p2_steps_per_replicate": p2_steps, "p3_steps_per_replicate": p3_steps,
          "eval_steps_per_replicate": eval_steps, "p1_steps_per_replicate": p1_steps,
          "total_s": (p2_steps + p3_steps + eval_steps + p1_steps) / per_s}


def hybrid_segments(config) -> int:
  """Act-and-learn segments each hybrid variant plays per replicate and task: the hybrid stage's (on its
  num_tasks) and every P3 target's with `hybrid` on (on p3.hybrid_tasks)."""
  from cl_limits.stages import common  # noqa: PLC0415
  h = config.experiments.hybrid
  act, total = int(h.learner.act_steps), int(config.teacher.dqn.total_steps)
  cut = float(config.imitation.arms[str(h.arm)].fraction) * total           # one truncated history's learner steps
  n = common.whole_segments(float(h.horizon_factor) * cut, act) // act * int(h.num_tasks)
  p3 = config.experiments.p3
  if str(p3.arm or ""):
    for t in p3.targets.values():
      if bool(t.get("hybrid", False)):
        n += common.whole_segments(int(t.get("total_steps", 0) or 0) or total, act) // act * int(p3.hybrid_tasks)
  return n


def time_hybrids(config, env, params, per_s: float) -> dict:
  """One segment of each hybrid variant, every replicate on one task (params [R, ...], untrained), with its
  act phase cut to --rollout_steps: the segment's time is that plus its other act steps at the frozen
  rollout's `per_s` steps per second per replicate (a GPU segment is 250,000 steps)."""
  from cl_limits.rollouts import hybrid as hybrid_lib  # noqa: PLC0415
  from cl_limits.rollouts import learners  # noqa: PLC0415
  from cl_limits.rollouts import rollout as rollout_lib  # noqa: PLC0415
  from cl_limits.stages import artifacts, common  # noqa: PLC0415
  if not common.hybrid_enabled(config):
    return {"total_s": 0.0}
  h = config.experiments.hybrid
  model = artifacts.build_model(config, env)
  tasks, _ = common.heldout_tasks(config, env, 1)
  keys = jax.random.split(jax.random.key(3), int(config.imitation.num_seeds))[:, None]
  segments = hybrid_segments(config)
  out = {"segments_per_variant": segments, "total_s": 0.0}
  act = int(h.learner.act_steps)
  timed = min(act, int(_ROLLOUT.value))
  for v in common.hybrid_variants(h.variants, "experiments.hybrid.variants"):
    cfg = h.learner.copy_and_resolve_references()
    cfg.update(dict(adapter=learners.VARIANTS[v], act_steps=timed))
    fn = hybrid_lib.make_batched_hybrid(model, env, cfg, 1, rollout_lib.episodes_for(env, timed),
                                        **artifacts.protocol(config))
    first, t, _ = _timed(fn, params, tasks, keys)
    seg = t + (act - timed) / per_s
    out[v] = {"first_s": first, "timed_act_steps": timed, "timed_s": t, "segment_s": seg, "total_s": segments * seg}
    out["total_s"] += segments * seg
  return out


STAGES = ("teachers", "targets", "imitation", "rollouts", "hybrids")


def _fields(res: dict) -> str:
  """`key=value` for a result's figures (floats to one decimal), its nested results left out."""
  return " ".join(f"{k}={v:,.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items()
                  if not isinstance(v, dict))


def main(argv):
  del argv
  from cl_limits.stages import common  # noqa: PLC0415
  config = _CONFIG.value
  env = common.env_of(config)
  out = {"devices": [str(d) for d in jax.devices()]}
  print(f"# devices: {out['devices']}", flush=True)
  held = {}

  def imitation():
    res, held["params"] = time_imitation(config, env)
    return res
  for name, fn in (("teachers", lambda: time_teachers(config)), ("targets", lambda: time_targets(config)),
                   ("imitation", imitation),
                   ("rollouts", lambda: time_rollouts(config, env, held["params"])),
                   ("hybrids", lambda: time_hybrids(config, env, held["params"],
                                                    out["rollouts"]["steps_per_s_per_replicate"]))):
    res = fn()
    out[name] = res
    print(f"{name}: {_fields(res)}", flush=True)
    for sub, v in res.items():
      if isinstance(v, dict):                      # one line per P3 target
        print(f"  {sub}: {_fields(v)}", flush=True)
    if _OUT.value:
      with open(_OUT.value, "w") as f:
        json.dump(out, f, indent=1)
  total = sum(out[k]["total_s"] for k in STAGES)
  out["extrapolated_total_s"] = total
  print(f"extrapolated total (teachers, P3 targets' DQNs, imitation, evaluation / P1 / P2 / P3 rollouts, "
        f"hybrids): {total / 60:,.1f} min", flush=True)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  app.run(main)
