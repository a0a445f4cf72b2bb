"""Test setup: four virtual CPU devices (so sharding is exercised without a GPU), shared compiled runs."""
import os

import jax

jax.config.update("jax_num_cpu_devices", 4)
if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
  # Cache every program, however quick to compile: the suite compiles hundreds of small ones (30 ms each,
  # 13 ms to read back). The environment variable carries the setting to the scripts tests run as commands.
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cl_limits import envs  # noqa: E402
from cl_limits.teachers import dqn  # noqa: E402
from experiments.configs import darkroom  # noqa: E402


# Modules that share a session fixture go to one xdist worker (`--dist loadgroup`), so the fixture is
# computed once; every other module is its own group (its module fixtures stay in one worker).
SHARED_GROUPS = {"test_pipeline": "smoke_pipeline", "test_launch": "smoke_pipeline",
                 "test_search_and_keep": "smoke_pipeline"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
  del config
  for item in items:
    module = item.module.__name__.rsplit(".", 1)[-1]
    item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(module, module)))


def darkroom_teachers(goals=None):
  """One DQN teacher per goal of the 9x9 DarkRoom (the darkroom config's teacher settings): every goal, or
  the goals at the given indices of `all_tasks()`, each with the key it has among all 81."""
  env = envs.make("DarkRoom", size=9, episode_len=20)
  tasks = env.all_tasks()
  keys = jax.random.split(jax.random.key(0), 81)
  if goals is not None:
    tasks, keys = jax.tree.map(lambda a: a[np.asarray(goals)], tasks), keys[np.asarray(goals)]
  cfg = darkroom.teacher_dqn()
  teacher = dqn.make_teacher(cfg, env)
  state, history, metrics = jax.jit(jax.vmap(teacher.train))(keys, tasks)
  return dict(env=env, tasks=tasks, teacher=teacher, state=state, history=jax.device_get(history),
              metrics=jax.device_get(metrics), keys=keys)


@pytest.fixture(scope="session")
def darkroom_all_goals():
  """A teacher for each of the 81 goals (the slow check)."""
  return darkroom_teachers()


@pytest.fixture(scope="session")
def darkroom_lattice_goals():
  """Teachers for the 3x3 lattice of goals at rows and columns 0, 4, 8: corners, edge middles and centre."""
  return darkroom_teachers([9 * x + y for x in (0, 4, 8) for y in (0, 4, 8)])


def finished_pipeline(tmp_path_factory, config, name):
  """`experiments/pipeline.py`'s job on `config`, run to the end in a fresh directory:
  (workdir, report path, log lines)."""
  from cl_limits.stages.pipeline import run as run_pipeline  # noqa: PLC0415
  workdir = str(tmp_path_factory.mktemp(name))
  logs = []
  report = run_pipeline(config, workdir, log=logs.append)
  return workdir, report, logs


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory):
  """The main job on the :smoke config, finished: (workdir, report path, log lines)."""
  return finished_pipeline(tmp_path_factory, darkroom.get_config("smoke"), "pipeline_smoke")


@pytest.fixture(scope="session")
def transplant_pipeline(tmp_path_factory):
  """The MinAtar transplant on its :smoke config, finished: (workdir, report path, log lines)."""
  from experiments.configs import transplant  # noqa: PLC0415
  return finished_pipeline(tmp_path_factory, transplant.get_config("smoke"), "transplant_smoke")


def tiny_dqn(**kw):
  cfg = dqn.default_config()
  cfg.update(dict(num_envs=4, total_steps=8_000, segment_steps=8_000, buffer_size=1_000, batch_size=32,
                  train_every=4, target_update_every=40, learning_starts=200, lr=3e-3, gamma=0.5,
                  eps_start=1.0, eps_end=1.0, eps_anneal_steps=1_000, hidden=(16,)))
  cfg.update(kw)
  return cfg


@pytest.fixture
def rng():
  return np.random.default_rng(0)
