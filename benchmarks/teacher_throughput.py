"""Teacher throughput: the DQN, several seeds in one vmapped program.

  python benchmarks/teacher_throughput.py [--seeds 1 8] [--total_steps 500000]          # CartPole-v1
  python benchmarks/teacher_throughput.py --env breakout [--seeds 5] [--total_steps 20000]

CartPole runs PureJaxRL's defaults; `--env breakout` the Breakout study's CPU teacher
(experiments/configs/breakout.py: conv torso, 4 streams, one update of 32 per 4 steps; `--preset gpu` for
the Young & Tian DQN). Prints one line per run: steady-state env steps per second over all seeds (compile
time excluded and printed separately), the mean return over each seed's last 20 episodes, and the achieved
FLOP/s: FLOPs per env step from `compiled.cost_analysis()` of one acting step and one update (the whole
run is a scan, whose cost analysis counts its body once), times the measured steps/s.
"""
import argparse
import time

import jax
import numpy as np

from cl_limits import envs
from cl_limits.histories.history import learner_curve
from cl_limits.teachers import cost, dqn
from experiments.configs import breakout, cartpole


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--env", choices=("cartpole", "breakout"), default="cartpole")
  parser.add_argument("--preset", default="", help="breakout.py preset ('' or gpu)")
  parser.add_argument("--seeds", type=int, nargs="+", default=None)
  parser.add_argument("--total_steps", type=int, default=None)
  args = parser.parse_args()
  if args.env == "cartpole":
    env = envs.make("CartPole-v1")
    cfg = cartpole.get_config().teacher.dqn.copy_and_resolve_references()
    seeds_list, total = args.seeds or [1, 8], args.total_steps or 500_000
  else:
    config = breakout.get_config(args.preset)
    env = envs.make(config.env.name)
    cfg = config.teacher.dqn.copy_and_resolve_references()
    seeds_list, total = args.seeds or [1, int(config.teacher.num_seeds)], args.total_steps or 20_000
    cfg.learning_starts = 0        # every update applied, as in steady state
  total = total // int(cfg.train_every) * int(cfg.train_every)
  cfg.total_steps = total
  cfg.segment_steps = total
  teacher = dqn.make_teacher(cfg, env)
  per_step = cost.flops_per_env_step(cfg, env, teacher)
  print(f"# {jax.devices()[0].platform} x{jax.device_count()}, jax {jax.__version__}, {env.name}, "
        f"{cfg.total_steps} steps per seed, {per_step / 1e6:.2f} MFLOP per env step (acting + updates)",
        flush=True)
  for seeds in seeds_list:
    keys = jax.random.split(jax.random.key(seeds), seeds)
    fn = jax.jit(jax.vmap(teacher.train, in_axes=(0, None)))
    t0 = time.perf_counter()
    compiled = fn.lower(keys, env.default_params).compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, history, _ = jax.block_until_ready(compiled(keys, env.default_params))
    seconds = time.perf_counter() - t0
    rets = [learner_curve(jax.tree.map(lambda a: a[s], history))[1][-20:].mean() for s in range(seeds)]
    sps = seeds * cfg.total_steps / seconds
    print(f"seeds={seeds} steps_per_s={sps:.0f} return={np.mean(rets):.1f} "
          f"gflop_per_s={sps * per_step / 1e9:.2f} compile_s={t_compile:.1f} run_s={seconds:.1f}", flush=True)


if __name__ == "__main__":
  main()
