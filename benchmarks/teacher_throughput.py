"""Teacher throughput: DQN on CartPole-v1 with PureJaxRL's defaults, 1 and 8 seeds in one vmapped program.

  python benchmarks/teacher_throughput.py [--seeds 1 8] [--total_steps 500000]

Prints one line per run: steady-state env steps per second over all seeds (compile time excluded and
printed separately) and the mean return over each seed's last 20 episodes.
"""
import argparse
import time

import jax
import numpy as np

from cl_limits import envs
from cl_limits.histories.history import learner_curve
from cl_limits.teachers import dqn
from experiments.configs import cartpole


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
  parser.add_argument("--total_steps", type=int, default=500_000)
  args = parser.parse_args()
  env = envs.make("CartPole-v1")
  cfg = cartpole.get_config().teacher.dqn.copy_and_resolve_references()
  cfg.total_steps = args.total_steps
  cfg.segment_steps = args.total_steps
  teacher = dqn.make_teacher(cfg, env)
  print(f"# {jax.devices()[0].platform} x{jax.device_count()}, jax {jax.__version__}, "
        f"{cfg.total_steps} steps per seed", flush=True)
  for seeds in args.seeds:
    keys = jax.random.split(jax.random.key(seeds), seeds)
    fn = jax.jit(jax.vmap(teacher.train, in_axes=(0, None)))
    t0 = time.perf_counter()
    compiled = fn.lower(keys, env.default_params).compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, history, _ = jax.block_until_ready(compiled(keys, env.default_params))
    seconds = time.perf_counter() - t0
    rets = [learner_curve(jax.tree.map(lambda a: a[s], history))[1][-20:].mean() for s in range(seeds)]
    print(f"seeds={seeds} steps_per_s={seeds * cfg.total_steps / seconds:.0f} return={np.mean(rets):.1f} "
          f"compile_s={t_compile:.1f} run_s={seconds:.1f}", flush=True)


if __name__ == "__main__":
  main()
