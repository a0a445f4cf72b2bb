"""experiments/teachers.py end to end: outputs, kill and resume, bad configs, sharded seeds."""
import json
import os
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from cl_limits import sharding
from cl_limits.histories import store
from cl_limits.stages import common
from cl_limits.stages import teachers as teachers_stage
from cl_limits.teachers import population
from experiments.configs import darkroom

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Many short segments, so that a kill lands mid-run.
LONG_SMOKE = ["--config.teacher.dqn.total_steps=16000", "--config.teacher.dqn.segment_steps=400",
              "--config.teacher.dqn.eps_anneal_steps=8000"]


def teachers_cmd(workdir, *extra, preset="smoke"):
  return [sys.executable, "-m", "experiments.teachers",
          f"--config={ROOT}/experiments/configs/darkroom.py:{preset}", f"--workdir={workdir}", *extra]


def run(cmd, **kw):
  env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
  return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("full")
  out = run(teachers_cmd(workdir, *LONG_SMOKE))
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir, out


def test_smoke_run_writes_histories_checkpoints_tensorboard_and_figure(uninterrupted):
  workdir, out = uninterrupted
  t = os.path.join(workdir, "teachers")
  history, manifest = store.load(os.path.join(t, "histories"))
  assert history.action.shape == (2, 4, 2, 8000)  # seeds, tasks, streams, time
  assert manifest["streams_per_learner"] == 2 and manifest["env"] == "DarkRoom"
  assert len(manifest["task_ids"]) == 4
  assert os.listdir(os.path.join(t, "tb", "seed_1"))
  assert os.path.getsize(os.path.join(t, "teacher_curves.png")) > 5000
  summary = json.load(open(os.path.join(t, "summary.json")))
  assert np.asarray(summary["greedy_return"]).shape == (2, 4)
  # The greedy policy's return after every segment: the last one is the final evaluation (DarkRoom and an
  # argmax policy are deterministic), and the greedy teachers improve over training.
  curves = np.load(os.path.join(t, "curves.npz"))
  greedy = curves["greedy_returns"]
  assert greedy.shape == (2, 4, 40) and curves["greedy_env_steps"][-1] == 16000
  np.testing.assert_allclose(greedy[..., -1], summary["greedy_return"])
  assert greedy[..., -5:].mean() > greedy[..., :2].mean() + 5
  assert "segment 40/40" in out.stdout
  again = run(teachers_cmd(workdir, *LONG_SMOKE))
  assert again.returncode == 0 and again.stdout.strip() == "[pipeline] teachers: reused"


def test_killed_run_resumes_to_identical_histories(uninterrupted, tmp_path):
  full_dir, _ = uninterrupted
  env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.Popen(teachers_cmd(tmp_path, *LONG_SMOKE), cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  ckpt = tmp_path / "teachers" / "checkpoints"
  deadline = time.time() + 120
  while time.time() < deadline and proc.poll() is None:
    steps = [int(p) for p in os.listdir(ckpt) if p.isdigit()] if ckpt.exists() else []
    if steps and max(steps) >= 3:
      proc.send_signal(signal.SIGKILL)
      break
    time.sleep(0.01)
  assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
  assert not store.is_complete(str(tmp_path / "teachers" / "histories"))
  out = run(teachers_cmd(tmp_path, *LONG_SMOKE))
  assert out.returncode == 0, out.stderr[-3000:]
  assert "resuming from segment" in out.stdout
  a, _ = store.load(str(full_dir / "teachers" / "histories"))
  b, _ = store.load(str(tmp_path / "teachers" / "histories"))
  chex.assert_trees_all_equal(a, b)
  np.testing.assert_array_equal(np.load(full_dir / "teachers" / "curves.npz")["greedy_returns"],
                                np.load(tmp_path / "teachers" / "curves.npz")["greedy_returns"])


@pytest.mark.parametrize("override,msg", [
    ("--config.env.name=DarkRoooom", "env.name: unknown env; known: DarkKeyToDoor"),
    ("--config.teacher.dqn.total_steps=-400", "dqn.total_steps: must be a positive integer"),
    # num_seeds is the study config's `replicates` knob (both num_seeds fields follow it): named with it.
    ("--config.teacher.num_seeds=0", "teacher.num_seeds and imitation.num_seeds): must be an integer >= 1 (got 0)"),
])
def test_bad_config_fails_before_compiling_naming_the_field(tmp_path, override, msg):
  out = run(teachers_cmd(tmp_path, override))
  assert out.returncode == 2
  assert out.stderr.startswith("error: ") and msg in out.stderr
  assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr  # one line, no traceback
  assert not (tmp_path / "teachers").exists(), "nothing may be written for a bad config"


def test_bad_env_kwargs_are_reported_as_config_fields():
  config = darkroom.get_config("smoke")
  config.unlock()
  config.env.kwargs.size = 1
  with pytest.raises(ValueError, match="env.kwargs: grid size must be >= 2"):
    teachers_stage.validate(config)


def test_sharded_seeds_equal_unsharded():
  assert jax.device_count() == 4
  config = darkroom.get_config("smoke")
  from cl_limits import envs
  from cl_limits.teachers import dqn
  env = envs.make("DarkRoom")
  tasks, _ = common.teacher_tasks(config, env)
  teacher = dqn.make_teacher(config.teacher.dqn, env)
  keys = population.seed_task_keys(0, 4, 4)
  f = jax.vmap(jax.vmap(teacher.train, in_axes=(0, 0)), in_axes=(0, None))
  mesh = sharding.seed_mesh(4)
  assert mesh is not None and mesh.devices.size == 4
  plain = jax.jit(f)(keys, tasks)
  sharded = jax.jit(f)(sharding.shard_seeds(keys, mesh), sharding.replicate(tasks, mesh))
  assert len(jax.tree.leaves(sharded)[0].sharding.device_set) == 4
  chex.assert_trees_all_close(jax.device_get(plain), jax.device_get(sharded), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(plain[1].action, sharded[1].action)


def test_independent_learners_per_task_are_the_tasks_streams(tmp_path):
  """`teacher.learners_per_task` k: k DQNs per task, each with its own stream, stored as the task's k
  streams. Every stream of task t is played on task t's goal (the steps after a rewarded step stand on it),
  the learners of one task act differently (independent keys), the curves and greedy returns are per task,
  and the manifest says how many learners there are while each learner still has one stream."""
  out = run([sys.executable, "-m", "experiments.teachers",
             f"--config={ROOT}/experiments/configs/one_stream.py:smoke,x2", f"--workdir={tmp_path}"])
  assert out.returncode == 0, out.stderr[-3000:]
  assert "4 tasks x 2 independent learners x 1 streams" in out.stdout + out.stderr
  t = os.path.join(tmp_path, "teachers")
  history, manifest = store.load(os.path.join(t, "histories"))
  assert history.action.shape[:3] == (2, 4, 2)
  assert manifest["learners_per_task"] == 2 and manifest["streams_per_learner"] == 1
  goals = np.asarray(next(v for k, v in manifest["tasks"].items() if "goal" in k))
  assert len({tuple(g) for g in goals}) == 4
  obs, reward, episode = (np.asarray(x) for x in (history.obs, history.reward, history.episode))
  checked = 0
  for s in range(2):
    for k in range(4):
      for e in range(2):
        r = np.flatnonzero(reward[s, k, e, :-1] > 0)
        r = r[episode[s, k, e, r + 1] == episode[s, k, e, r]]       # the next step is in the same episode
        assert (obs[s, k, e, r + 1] == goals[k]).all(), (s, k, e)
        checked += len(r)
      assert (history.action[s, k, 0] != history.action[s, k, 1]).mean() > 0.2
  assert checked > 50
  curves = np.load(os.path.join(t, "curves.npz"))
  assert curves["returns"].shape[:2] == (2, 4) and curves["greedy_returns"].shape[:2] == (2, 4)
  assert np.asarray(json.load(open(os.path.join(t, "summary.json")))["greedy_return"]).shape == (2, 4)


def test_merge_learners_puts_a_tasks_learners_side_by_side():
  """population.repeat_tasks then merge_learners: learner j of task t (row t * k + j) becomes the task's
  streams j * E ... j * E + E - 1, for any number of streams per learner."""
  k, tasks, e = 3, 2, 2
  x = np.arange(1 * tasks * k * e * 5).reshape(1, tasks * k, e, 5)
  m = population.merge_learners(x, k)
  assert m.shape == (1, tasks, k * e, 5)
  for t in range(tasks):
    for j in range(k):
      np.testing.assert_array_equal(m[0, t, j * e:(j + 1) * e], x[0, t * k + j])
  rep = population.repeat_tasks({"goal": np.array([[1, 1], [2, 2]])}, k)
  np.testing.assert_array_equal(rep["goal"][:, 0], [1, 1, 1, 2, 2, 2])
  assert population.merge_learners(x, 1) is x


def test_compile_cache_is_the_flag_then_the_environment_then_a_default_under_home():
  from experiments.cli import compile_cache  # noqa: PLC0415
  home = os.path.join(os.path.expanduser("~"), ".cache", "cl_limits", "jax")
  assert compile_cache(None, {}) == home
  assert compile_cache(None, {"JAX_COMPILATION_CACHE_DIR": "/x"}) == "/x"
  assert compile_cache("/y", {"JAX_COMPILATION_CACHE_DIR": "/x"}) == "/y"
  assert compile_cache("", {"JAX_COMPILATION_CACHE_DIR": "/x"}) == ""      # '' turns it off


def test_a_main_writes_its_programs_to_the_compile_cache_it_is_given(tmp_path):
  """The flag wins over $JAX_COMPILATION_CACHE_DIR, which JAX reads when it is imported, before the flags."""
  cache, env_cache = tmp_path / "cache", tmp_path / "env_cache"
  out = subprocess.run(teachers_cmd(tmp_path / "run", f"--compile_cache={cache}"), cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu",
                                       "JAX_COMPILATION_CACHE_DIR": str(env_cache),
                                       "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
  assert out.returncode == 0, out.stderr[-3000:]
  # The teachers' training segment (`population.per_task`'s g) is in the flag's cache; the environment's holds
  # at most what was compiled while the flags were read (a dtype conversion).
  names = lambda d: [f.split("-")[0] for f in os.listdir(d)] if d.exists() else []
  assert "jit_g" in names(cache) and len(names(cache)) > 10
  assert "jit_g" not in names(env_cache) and len(names(env_cache)) <= 2
