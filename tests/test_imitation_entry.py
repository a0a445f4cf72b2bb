"""The imitation and evaluation stages on the :smoke config: outputs, resume, and errors before compiling."""
import json
import os
import shutil

import jax
import numpy as np
import pytest

from cl_limits import envs, sharding
from cl_limits.stages import common, evaluation, layout
from cl_limits.stages import artifacts
from cl_limits.stages import imitation as imitation_stage
from cl_limits.stages.base import ConfigError
from cl_limits.stages.pipeline import run_stage
from experiments.configs import darkroom


def smoke_config(**imitation_overrides):
  """The :smoke config with AD on whole histories and snapshot BC as its arms (the AD reproduction's comparison)."""
  config = darkroom.get_config("smoke")
  with config.unlocked():
    config.imitation.arms = darkroom.ml_collections.ConfigDict(dict(
        ad=darkroom.ad_arm(), bc=darkroom.arm(portion="last", fraction=0.1)))
    config.evaluation.compare = "ad:bc"
    config.experiments.p2.arms = ""
    config.experiments.p2.power_control = ""
    for k, v in imitation_overrides.items():
      node = config.imitation
      *path, last = k.split(".")
      for p in path:
        node = node[p]
      node[last] = v
  return config


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("teachers_smoke"))
  run_stage(darkroom.get_config("smoke"), workdir, "teachers", log=lambda *_: None)
  return workdir


def workdir_with_teachers(teacher_dir, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(os.path.join(teacher_dir, "teachers"), os.path.join(workdir, "teachers"))
  return workdir


@pytest.fixture(scope="module")
def finished(teacher_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("imitation_smoke"))
  shutil.copytree(os.path.join(teacher_dir, "teachers"), os.path.join(workdir, "teachers"))
  config = smoke_config()
  lines = []
  run_stage(config, workdir, "imitation", log=lines.append)
  run_stage(config, workdir, "evaluation", log=lines.append)
  return config, workdir, lines


class CompileCounter:
  """Counts XLA backend compilations while active."""

  def __init__(self):
    self.count = 0
    self.active = False
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, name, *_, **__):
    if self.active and name == "/jax/core/compile/backend_compile_duration":
      self.count += 1


COUNTER = CompileCounter()


def run_imitation(config, workdir):
  return run_stage(config, workdir, "imitation", log=lambda *_: None)


def fails_before_compiling(fn, config, *args, match, exc=ValueError):
  """`fn(config, *args)` raises `exc` before any program of the stage compiles. The env's default
  parameters (a few device arrays, which the first time in a process compile XLA's tiny transfer programs)
  are built first, so the count does not depend on which test ran before."""
  envs.obs_spec(common.env_of(config))
  COUNTER.count, COUNTER.active = 0, True
  try:
    with pytest.raises(exc, match=match):
      fn(config, *args)
  finally:
    COUNTER.active = False
  assert COUNTER.count == 0, f"{COUNTER.count} XLA compilations happened before the error"


def test_outputs(finished):
  config, workdir, lines = finished
  im = os.path.join(workdir, "imitators")
  summary = json.load(open(os.path.join(im, "summary.json")))
  assert summary["arms"] == ["ad", "bc"] and summary["num_models"] == 4
  data = json.load(open(os.path.join(im, "data.json")))
  ad, bc = data["arms"]["ad"], data["arms"]["bc"]
  assert ad["gap"] == 10 and ad["streams"] == 0 and ad["source_streams_per_learner"] == 2
  # 2 seeds x 4 tasks x 2 streams, 600 steps (30 episodes of 20) per stream, the second stream held out:
  # gap 10 keeps episodes 0, 10, 20 of each stream; the last 10% is episodes 27-29. Both: 8 histories x
  # 60 steps trained on, and as many held out.
  assert (ad["histories"], ad["steps"], ad["episodes"]) == (8, 480, 24)
  assert ad["trained_streams_per_learner"] == 1 and ad["heldout_steps_per_replicate"] == [240, 240]
  assert bc["portion"] == "last" and (bc["histories"], bc["steps"]) == (8, 480)
  assert ad["behaviour_recorded"] and bc["behaviour_recorded"]
  # Fidelity per arm and replicate, in nats: KL = CE - H >= 0, by thirds of the kept history, and a curve.
  fid = summary["fidelity"]["per_arm"]
  for a in ("ad", "bc"):
    kl, ce, h = (np.asarray(fid[a][k]) for k in ("kl", "ce", "entropy"))
    assert kl.shape == (2,) and (kl >= 0).all() and np.allclose(kl, ce - h, atol=1e-4)
    assert all(np.isfinite(fid[a][f"kl_{p}"]).all() for p in ("early", "middle", "late"))
    assert [c["update"] for c in summary["fidelity"]["curve"][a]] == [10, 20]
  assert summary["updates_per_arm"] == {"ad": 20, "bc": 20}
  # Each arm keeps the weights of its best held-out check (the minimum of its curve), saved beside them.
  for a in ("ad", "bc"):
    curve = summary["fidelity"]["curve"][a]
    assert summary["kept_update"][a] == min(curve, key=lambda c: c["criterion"])["update"]
  _, params, arms, seeds = artifacts.final_imitators(config, workdir)
  with np.load(os.path.join(im, "best", "bc.npz")) as z:
    saved = [z[f"arr_{i}"] for i in range(len(z.files))]
  for leaf, b in zip(jax.tree.leaves(params), saved):
    np.testing.assert_array_equal(np.asarray(leaf)[2:4], b)             # bc = models 2, 3
  assert any("held-out KL ad" in line for line in lines)
  assert os.path.isdir(os.path.join(im, "tb", "ad", "seed_1"))
  assert any("held-out early->late" in line for line in lines)
  # The check during training acts as the evaluation stage does (sampled, not argmax).
  assert any("held-out check every 1 segments: 2 held-out tasks, 4 episodes" in line
             and "sampled actions" in line for line in lines)
  ret = np.load(os.path.join(workdir, "eval", "returns.npz"))
  assert ret["episode_return"].shape == (2, 2, 2, 6)               # arms, seeds, tasks, episodes
  assert np.isfinite(ret["episode_return"]).all()
  assert (ret["episode_end"][..., -1] == 6 * 20).all()
  ev = layout.summary(workdir, "eval")
  assert ev["protocol"]["actions"] == "sampled"
  assert ev["comparisons"][0]["a"] == "ad" and len(ev["comparisons"][0]["diff"]) == 3
  assert os.path.getsize(os.path.join(workdir, "eval", "curves.png")) > 1000
  # Every held-out task is outside the teachers' training tasks.
  teacher_tasks = json.load(open(os.path.join(workdir, "teachers", "summary.json")))["task_ids"]
  assert not set(ev["task_ids"]) & set(teacher_tasks)


def test_rerun_skips(finished):
  config, workdir, _ = finished
  lines = []
  run_stage(config, workdir, "imitation", log=lines.append)
  run_stage(config, workdir, "evaluation", log=lines.append)
  assert lines == ["[pipeline] imitation: reused", "[pipeline] evaluation: reused"]


class Killed(Exception):
  pass


def test_killed_run_resumes_to_the_same_weights(finished, teacher_dir, tmp_path):
  config, workdir_full, _ = finished
  workdir = workdir_with_teachers(teacher_dir, tmp_path)

  def die_in_segment_2(line):
    if "segment 2/" in line:
      raise Killed()   # segment 2 computed but never checkpointed
  with pytest.raises(Killed):
    run_stage(config, workdir, "imitation", log=die_in_segment_2)
  assert not os.path.exists(os.path.join(workdir, "imitators", "summary.json"))
  lines = []
  run_stage(config, workdir, "imitation", log=lines.append)
  assert any("resuming from segment 1/2" in line for line in lines)
  _, resumed, _, _ = artifacts.final_imitators(config, workdir)
  _, full, _, _ = artifacts.final_imitators(config, workdir_full)
  jax.tree.map(np.testing.assert_array_equal, resumed, full)


def test_context_shorter_than_an_episode_fails_before_compiling(teacher_dir, tmp_path):
  config = smoke_config(**{"model.context_len": 10, "train.seq_len": 20})
  fails_before_compiling(run_imitation, config, workdir_with_teachers(teacher_dir, tmp_path),
                         match=r"imitation.model.context_len: is shorter than one episode of DarkRoom \(20 steps\)")


def test_missing_store_fails_before_compiling(tmp_path):
  fails_before_compiling(run_imitation, smoke_config(), str(tmp_path),
                         match="teachers: not finished in .* .run the teachers stage first", exc=ConfigError)


def test_corrupt_store_fails_before_compiling(teacher_dir, tmp_path):
  workdir = workdir_with_teachers(teacher_dir, tmp_path)
  chunk = os.path.join(workdir, "teachers", "histories", "chunk_00001.npz")
  assert os.path.exists(chunk), os.listdir(os.path.dirname(chunk))
  raw = bytearray(open(chunk, "rb").read())
  raw[len(raw) // 2] ^= 0xFF
  open(chunk, "wb").write(bytes(raw))
  fails_before_compiling(run_imitation, smoke_config(), workdir,
                         match="chunk_00001.npz is corrupt", exc=ConfigError)


def test_bad_arm_and_seq_len_name_their_fields(teacher_dir, tmp_path):
  workdir = workdir_with_teachers(teacher_dir, tmp_path)
  fails_before_compiling(run_imitation, smoke_config(**{"arms.bc.portion": "middle"}),
                         workdir, match=r"imitation.arms.bc.portion")
  fails_before_compiling(run_imitation, smoke_config(**{"train.seq_len": 10}),
                         workdir, match=r"imitation.train.seq_len")


def test_training_check_follows_the_evaluation_protocol(teacher_dir, tmp_path):
  """The held-out check during training samples at the evaluation's temperature (or argmax when it is
  greedy), and a bad temperature fails before anything compiles."""
  config = smoke_config()
  env = envs.make(config.env.name, **config.env.kwargs.to_dict())
  with config.unlocked():
    config.evaluation.temperature = 0.5
  model = artifacts.build_model(config, env)
  assert "actions sampled at temperature 0.5" in imitation_stage._check(config, env, model).describe
  with config.unlocked():
    config.evaluation.greedy = True
  assert "greedy actions" in imitation_stage._check(config, env, model).describe
  with config.unlocked():
    config.evaluation.greedy = False
    config.evaluation.temperature = 0.0
  fails_before_compiling(run_imitation, config, workdir_with_teachers(teacher_dir, tmp_path),
                         match=r"evaluation.temperature")


def test_acceptance_imitation_config_is_valid_and_cuts_where_annealing_ends():
  """The AD reproduction's imitators (darkroom.acceptance_imitation) pass the stage's checks, and the AD
  arm's cut falls where the default teachers' epsilon annealing ends (the learning phase, nothing after)."""
  config = darkroom.get_config()
  with config.unlocked():
    config.imitation = darkroom.acceptance_imitation()
    config.teacher.dqn = darkroom.acceptance_teacher_dqn()
    config.evaluation = darkroom.acceptance_evaluation()
  imitation_stage.validate(config)
  evaluation.validate(config)
  assert evaluation.parse_compare(config.evaluation.compare) == [("ad", "bc")]
  ad, dqn = config.imitation.arms.ad, config.teacher.dqn
  assert ad.portion == "first"
  assert ad.fraction * dqn.total_steps == dqn.eps_anneal_steps
  assert config.imitation.model.context_len >= 8 * config.env.kwargs.episode_len


def test_an_arm_with_fewer_updates_stops_while_the_others_train_on(teacher_dir, tmp_path):
  """imitation.arms.bc.updates=10 of 20: bc's weights after segment 2 are those after segment 1; AD's moved.
  The summary says how many updates each arm took."""
  import orbax.checkpoint as ocp  # noqa: PLC0415
  workdir = workdir_with_teachers(teacher_dir, tmp_path)
  config = smoke_config(**{"arms.bc.updates": 10})
  lines = []
  run_stage(config, workdir, "imitation", log=lines.append)
  assert any(line.startswith("[imitation] update caps per arm") and line.endswith("ad 20, bc 10") for line in lines)
  seg2 = next(line for line in lines if line.startswith("[imitation] segment 2/2"))
  assert " ad " in seg2 and " bc " not in seg2.split("|")[0]
  summary = json.load(open(os.path.join(workdir, "imitators", "summary.json")))
  assert summary["updates_per_arm"] == {"ad": 20, "bc": 10}
  mngr = ocp.CheckpointManager(os.path.join(workdir, "imitators", "checkpoints"))
  one, two = (mngr.restore(k) for k in (1, 2))
  flat = lambda t: np.concatenate([np.asarray(x).reshape(np.asarray(x).shape[0], -1)
                                   for x in jax.tree.leaves(t["params"])], 1)        # [models, weights]
  a, b = flat(one), flat(two)
  np.testing.assert_array_equal(a[2:], b[2:])                # bc = models 2, 3 (arm-major, 2 seeds)
  assert not np.allclose(a[:2], b[:2])
  with pytest.raises(ConfigError, match="imitation.arms.bc.updates: must be a multiple of"):
    run_imitation(smoke_config(**{"arms.bc.updates": 15}), str(tmp_path / "bad"))


def test_padded_layout_puts_the_fewest_models_on_each_device():
  devs = jax.devices()                        # four virtual CPU devices (tests/conftest.py)
  assert sharding.padded_layout(15, devs[:2])[0] == 16
  assert sharding.padded_layout(15, devs[:1]) == (15, None)
  n, mesh = sharding.padded_layout(6, devs)   # 3 devices x 2 beats 4 devices x 2 with 2 copies
  assert n == 6 and mesh.devices.size == 3
  n, mesh = sharding.padded_layout(5, devs)   # 2 per device on 3 or 4 devices: 1 copy beats 3
  assert (n, mesh.devices.size) == (6, 3)


def test_a_padded_model_axis_trains_the_same_models(finished, teacher_dir, tmp_path, monkeypatch):
  """The 4 models padded to 6 over 3 devices (2 copies of the last model, dropped): every real model ends
  with the weights of the unpadded run, and the checkpoint holds the 4 real ones."""
  from jax.sharding import Mesh  # noqa: PLC0415
  config, workdir_full, _ = finished
  monkeypatch.setattr(artifacts, "layout_models",
                      lambda n: (6, Mesh(np.asarray(jax.devices()[:3]), ("seeds",))))
  workdir = workdir_with_teachers(teacher_dir, tmp_path)
  lines = []
  run_stage(config, workdir, "imitation", log=lines.append)
  assert any("padded to 6 over 3 devices" in line for line in lines)
  _, padded_params, _, _ = artifacts.final_imitators(config, workdir)
  _, params, _, _ = artifacts.final_imitators(config, workdir_full)
  for a, b in zip(jax.tree.leaves(padded_params), jax.tree.leaves(params)):
    assert a.shape == b.shape and a.shape[0] == 4
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-6)


def test_held_out_streams_that_leave_none_to_train_on_fail_before_compiling(tmp_path):
  config = smoke_config(**{"fidelity.heldout_streams": 2})        # the :smoke teachers have 2 streams
  fails_before_compiling(run_imitation, config, str(tmp_path / "w"), exc=ConfigError,
                         match="imitation.fidelity.heldout_streams: must leave a stream to train on")


def test_a_patch_frame_encoder_without_frames_fails_before_compiling(tmp_path):
  config = smoke_config(**{"model.frame_encoder": "patch"})        # DarkRoom observes (x, y)
  fails_before_compiling(run_imitation, config, str(tmp_path / "w"), exc=ConfigError,
                         match=r"imitation.model.patch: 'patch' frames need observations \[H, W, C\]")


def test_an_unknown_token_kind_fails_before_compiling(tmp_path):
  config = smoke_config(**{"model.tokens": "pairs"})
  fails_before_compiling(run_imitation, config, str(tmp_path / "w"), exc=ConfigError,
                         match="imitation.model.tokens: must be 'step' or 'transition'")



def test_the_log_notes_an_epsilon_that_does_not_match_the_labels():
  """epsilon > 0 over action labels, and greedy labels at epsilon 0, are allowed and noted in the log;
  greedy labels with epsilon > 0 (the DQN's own rule) and action labels at 0 give no note."""
  from cl_limits.stages.imitation_checks import protocol_notes  # noqa: PLC0415
  config = smoke_config()
  assert protocol_notes(config) == []
  with config.unlocked():
    config.evaluation.epsilon = 0.05
  assert len(notes := protocol_notes(config)) == 1 and "on top of arms that imitate recorded actions" in notes[0]
  with config.unlocked():
    for name in config.imitation.arms:
      config.imitation.arms[name].labels = "greedy"
  assert protocol_notes(config) == []
  with config.unlocked():
    config.evaluation.epsilon = 0.0
  assert len(notes := protocol_notes(config)) == 1 and "explore only by sampling their choice" in notes[0]
