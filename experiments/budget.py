r"""Device memory and time of a study config, by arithmetic, before anything runs.

  python -m experiments.budget --config=experiments/configs/breakout.py:gpu [--flops] [--peak_tflops 60]

Memory: the largest program of each stage, from the config's shapes (bytes named item by item; the stages
run one after another, so the peak is the largest stage, not the sum). `--flops` also compiles (on this
machine, without running) one DQN acting step and update and one imitation update at the config's shapes,
reads their FLOPs from `compiled.cost_analysis()`, and turns them into a time at `--peak_tflops` x
`--efficiency` (a device's measured matmul rate times the fraction a program of these shapes reaches).
"""
from __future__ import annotations

import math

from absl import app, flags
from ml_collections import config_flags

from cl_limits.envs import minatar

_CONFIG = config_flags.DEFINE_config_file("config", None, "study config (experiments/configs/<name>.py[:preset])")
_FLOPS = flags.DEFINE_bool("flops", False, "compile one update of each program and read its FLOPs")
_PEAK = flags.DEFINE_float("peak_tflops", 60.0, "the device's float32 matmul rate, TFLOP/s (H100 SXM: ~60)")
_EFF = flags.DEFINE_float("efficiency", 0.3, "fraction of the peak these programs reach")

FRAME = 10 * 10 * minatar.NUM_CHANNELS        # one bool byte per cell, unpacked on device
STEP_EXTRA = 18                               # action, reward, flags, episode, update per recorded step
GB = 1e9


def memory(config) -> dict[str, dict[str, float]]:
  """{stage: {item: bytes}} of the config's largest program per stage (float32 everywhere)."""
  t, d = config.teacher, config.teacher.dqn
  seeds = int(t.num_seeds)
  conv_out = 8 * 8 * 16
  q_params = (3 * 3 * minatar.NUM_CHANNELS * 16 + 16) + sum(
      a * b + b for a, b in zip((conv_out,) + tuple(d.hidden), tuple(d.hidden) + (minatar.NUM_ACTIONS,)))
  teachers = {
      "replay obs + next_obs (bool frames)": 2.0 * int(d.buffer_size) * FRAME * seeds,
      "replay action, reward, terminated": 9.0 * int(d.buffer_size) * seeds,
      "one segment's history on device": float(int(d.segment_steps)) * (FRAME + STEP_EXTRA) * seeds,
      "Q-network, target, optimiser state (4 copies)": 4.0 * 4 * q_params * seeds,
      "update activations (batch x conv + dense, fwd + bwd, x3 passes)":
          3 * 2 * 4.0 * int(d.batch_size) * (conv_out + sum(d.hidden)) * seeds}
  im, m, tr = config.imitation, config.imitation.model, config.imitation.train
  n_models = len(im.arms) * int(im.num_seeds)
  w, L, T, B, H = int(m.width), int(m.layers), int(tr.seq_len), int(tr.batch_size), int(m.heads)
  stored_steps = int(d.total_steps) / max(1, int(t.record_gap)) * seeds     # every stream of every seed
  params = L * 12 * w * w + FRAME * w + 3 * w * w + T * w                   # blocks, obs embedding, heads, positions
  imitation = {
      "teacher histories on device (unpacked frames)": stored_steps * (FRAME + STEP_EXTRA),
      "imitator params + Adam moments (3 copies)": 3 * 4.0 * params * n_models,
      "attention: logits, probabilities and their gradient (3 x B x heads x T^2)": 3 * 4.0 * B * H * T * T * L * n_models,
      "block activations kept for backward (~16 x B x T x width)": 16 * 4.0 * B * T * w * L * n_models,
      "window batch (tokens: frame + action, reward, done)": float(B * T * (FRAME + 9)) * n_models}
  ctx = int(m.context_len)
  rollouts = {
      "KV caches (layers x 2 x context x width), one rollout per replicate": 2 * 4.0 * L * ctx * w * seeds,
      "per-episode buffers (one slot per 2 steps, return + end)": 8.0 * _longest_rollout(config) / 2 * seeds}
  h = config.experiments.hybrid.learner
  hybrid = {
      "rollout buffer of own transitions": float(int(h.buffer_steps)) * (FRAME + 9) * seeds,
      "SGD step activations (its batch x seq_len)": (3 * 4.0 * int(h.batch_size) * H * int(h.seq_len) ** 2 * L
                                                     + 16 * 4.0 * int(h.batch_size) * int(h.seq_len) * w * L) * seeds,
      "params + Adam (full) per replicate": 3 * 4.0 * params * seeds}
  return {"teachers": teachers, "imitation": imitation, "rollouts": rollouts, "hybrid": hybrid}


def _longest_rollout(config) -> int:
  p2, d = config.experiments.p2, config.teacher.dqn
  fracs = [float(config.imitation.arms[a].fraction) for a in str(p2.arms).split(",") if a]
  return int(max([float(p2.horizon_factor) * f * int(d.total_steps) for f in fracs] + [int(d.total_steps)]))


def peak(mem) -> tuple[str, float]:
  totals = {k: sum(v.values()) for k, v in mem.items()}
  name = max(totals, key=totals.get)
  return name, totals[name]


def flops(config) -> dict[str, float]:
  """FLOPs per DQN env step and per imitation token, from `compiled.cost_analysis()` (compiled, not run)."""
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415

  from cl_limits import envs  # noqa: PLC0415
  from cl_limits.imitation import learner as learner_lib  # noqa: PLC0415
  from cl_limits.models.transformer import Tokens  # noqa: PLC0415
  from cl_limits.teachers import cost, dqn  # noqa: PLC0415
  env = envs.make(config.env.name)
  cfg = config.teacher.dqn
  teacher = dqn.make_teacher(cfg, env)
  per_step = cost.flops_per_env_step(cfg, env, teacher)
  im = config.imitation
  model = learner_lib.make_model(im.model, env.num_actions)
  T, B = int(im.train.seq_len), int(im.train.batch_size)
  tok = Tokens(obs=np.zeros((B, T, 10, 10, minatar.NUM_CHANNELS), bool), prev_action=np.zeros((B, T), np.int32),
               prev_reward=np.zeros((B, T), np.float32), prev_done=np.zeros((B, T), bool))
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jax.tree.map(lambda x: x[0], tok)))

  def loss(p, tokens):
    logits = jax.vmap(lambda t: model.apply(p, t))(tokens)
    return logits.astype(np.float32).mean()
  compiled = jax.jit(jax.grad(loss)).lower(params, tok).compile()
  return {"dqn_flops_per_env_step": per_step, "imitation_flops_per_token": cost.compiled_flops(compiled) / (B * T)}


def main(_):
  config = _CONFIG.value
  mem = memory(config)
  for stage, items in mem.items():
    print(f"{stage}: {sum(items.values()) / GB:.2f} GB")
    for k, v in items.items():
      print(f"  {k}: {v / GB:.3f} GB")
  name, total = peak(mem)
  print(f"peak: {name}, {total / GB:.2f} GB")
  if _FLOPS.value:
    f = flops(config)
    rate = _PEAK.value * 1e12 * _EFF.value
    d, im = config.teacher.dqn, config.imitation
    dqn_steps = int(d.total_steps) * int(config.teacher.num_seeds) * (1 + len(config.experiments.p3.targets) - sum(
        bool(t.get("reuse_teachers", False)) for t in config.experiments.p3.targets.values()))
    tokens = sum(int(a.updates) for a in im.arms.values()) * int(im.num_seeds) * int(im.train.seq_len) * int(
        im.train.batch_size)
    print(f"DQN: {f['dqn_flops_per_env_step'] / 1e6:.2f} MFLOP per env step x {dqn_steps:,} steps = "
          f"{f['dqn_flops_per_env_step'] * dqn_steps / 1e15:.2f} PFLOP -> {f['dqn_flops_per_env_step'] * dqn_steps / rate / 60:.1f} "
          f"min at {rate / 1e12:.0f} TFLOP/s (a lower bound: a DQN step is a sequential scan iteration)")
    print(f"imitation: {f['imitation_flops_per_token'] / 1e6:.2f} MFLOP per token (forward + backward) x "
          f"{tokens:,} tokens = {f['imitation_flops_per_token'] * tokens / 1e15:.2f} PFLOP -> "
          f"{f['imitation_flops_per_token'] * tokens / rate / 60:.1f} min")
  if not math.isfinite(total):
    raise SystemExit("memory arithmetic is not finite")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
