"""Bad configs are refused before anything runs: one line naming the field, exit status 2 on the command
line, nothing written. (Fingerprints and TensorBoard over a finished run: tests/test_pipeline.py.)"""
import os
import subprocess
import sys

import ml_collections
import pytest

from cl_limits.stages import pipeline
from cl_limits.stages.base import ConfigError
from experiments.configs import darkroom

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BAD = [
    ("imitation.model.context_len", 0, "imitation.model.context_len: must be >= 1 (got 0)"),
    ("teacher.num_seeds", 0, "teacher.num_seeds: must be an integer >= 1 (got 0)"),
    ("env.name", "DarkRom", "env.name: unknown env; known: "),
    ("imitation.arms.ad_p50.fraction", 1.5, "imitation.arms.ad_p50.fraction: must be in (0, 1] (got 1.5)"),
    ("imitation.train.lr", -1.0, "imitation.train.lr: must be > 0 (got -1.0)"),
    ("evaluation.episodes", 0, "evaluation.episodes: must be an integer >= 1 (got 0)"),
    ("experiments.p2.horizon_factor", -1.0, "experiments.p2.horizon_factor: must be > 0 (got -1.0)"),
    ("experiments.hybrid.variants", "full,sgd", "experiments.hybrid.variants: unknown hybrid variant"),
    ("experiments.p3.targets.hard9.name", "DarkRom13", "experiments.p3.targets.hard9.name: unknown env"),
    # Bad fields of P1, P2, P3 and the hybrid, one each more.
    ("experiments.p1.arm", "nope", "experiments.p1.arm: is not one of the imitation arms"),
    ("experiments.p2.arms", "bc", "experiments.p2.arms: arm 'bc' must train on teacher histories truncated"),
    ("experiments.p3.hybrid_tasks", 5, "experiments.p3.hybrid_tasks: must be in [0, num_tasks=2] (got 5)"),
    ("experiments.hybrid.late_fraction", 0.0, "experiments.hybrid.late_fraction: must be in (0, 1] (got 0.0)"),
    ("experiments.hybrid.learner.act_steps", 0, "experiments.hybrid.learner.act_steps"),
    # The verdict protocol's fields.
    ("imitation.num_seeds", 3, "imitation.num_seeds: must equal teacher.num_seeds=2: replicate s's imitators "
                               "train on teacher seed s's histories only (got 3)"),
    ("experiments.p2.power_control", "ad_p50", "experiments.p2.power_control: arm 'ad_p50' must train on ad_eps "
                                               "histories"),
    ("experiments.p2.competence_fraction", 0.0, "experiments.p2.competence_fraction: must be in (0, 1]"),
    ("experiments.p2.headroom_fraction", 1.5, "experiments.p2.headroom_fraction: must be in [0, 1]"),
    ("experiments.p1.prompt_episodes", 0, "experiments.p1.prompt_episodes: must be an integer >= 1 (got 0)"),
    ("experiments.p3.targets.heldout.role", "control", "experiments.p3.targets.heldout.role: must be one of"),
    # Library checks name bare fields; the stage adds the section's path.
    ("evaluation.temperature", 0.0, "evaluation.temperature: must be > 0 (got 0.0); use greedy=True"),
    ("imitation.arms.ad_p50.portion", "middle", "imitation.arms.ad_p50.portion: must be one of"),
    ("imitation.train.seq_len", 10, "imitation.train.seq_len: must be >= model.context_len=20 (got 10)"),
    ("experiments.p2.protocol.source", "mine", "experiments.p2.protocol.source: must be \"evaluation\""),
    ("replicates", 0, "replicates (teacher.num_seeds and imitation.num_seeds): must be an integer >= 1 (got 0)"),
    ("imitation.ad_eps.search_detour", 3, "imitation.ad_eps.search_detour: needs imitation.ad_eps.demonstrator='searcher'"),
    ("imitation.ad_eps.search_detour", -1, "imitation.ad_eps.search_detour: must be an integer >= 0 (got -1)"),
    ("experiments.p2.competence_rollouts", 0, "experiments.p2.competence_rollouts: must be an integer >= 1 (got 0)"),
]


def test_a_p2_protocol_of_its_own_is_checked_and_refused_by_the_sensitivity_stage(tmp_path):
  # source "own": P2 plays these fields, so a bad one is named under experiments.p2.protocol; the
  # sensitivity stage re-scores P2 under the evaluation section's protocol and refuses a P2 protocol of its own.
  config = smoke_with("experiments.p2.protocol.source", "own")
  config.experiments.p2.protocol.epsilon = 1.5
  with pytest.raises(ConfigError, match=r"^experiments.p2.protocol.epsilon: must be in \[0, 1\] \(got 1.5\)$"):
    pipeline.validate(pipeline.plan(config, str(tmp_path)))
  config.experiments.p2.protocol.epsilon = 0.0
  pipeline.validate(pipeline.plan(config, str(tmp_path)))
  config.experiments.sensitivity.temperatures = "argmax"
  with pytest.raises(ConfigError, match="experiments.sensitivity.temperatures: re-scores P2 under the evaluation"):
    pipeline.validate(pipeline.plan(config, str(tmp_path)))
  assert not os.listdir(tmp_path)


def smoke_with(path, value):
  config = ml_collections.ConfigDict(darkroom.get_config("smoke").to_dict())
  node = config
  *parents, last = path.split(".")
  for p in parents:
    node = node[p]
  node[last] = value
  return config


@pytest.mark.parametrize("path,value,msg", BAD)
def test_bad_field_is_refused_before_anything_runs(tmp_path, path, value, msg):
  with pytest.raises(ConfigError) as e:
    pipeline.validate(pipeline.plan(smoke_with(path, value), str(tmp_path)))
  assert msg in str(e.value) and "\n" not in str(e.value)
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize("override,msg", [
    ("--config.imitation.model.context_len=0", "error: imitation.model.context_len: must be >= 1 (got 0)"),
    # one knob moves the teachers' and the imitators' replicates together
    ("--config.replicates=0", "error: replicates (teacher.num_seeds and imitation.num_seeds): must be an integer >= 1 (got 0)"),
    ("--config.experiments.p3.targets.hard9.name=Nope", "error: experiments.p3.targets.hard9.name: "
                                                       "unknown env"),
])
def test_command_line_refusal_is_one_line_with_status_2(tmp_path, override, msg):
  workdir = tmp_path / "run"
  out = subprocess.run([sys.executable, "-m", "experiments.pipeline",
                        "--config=experiments/configs/darkroom.py:smoke", f"--workdir={workdir}", override],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 2, out.stderr[-2000:]
  assert out.stderr.startswith(msg) and len(out.stderr.strip().splitlines()) == 1, out.stderr
  assert out.stdout == "" and not workdir.exists()


def test_fingerprint_ignores_with_a_wildcard_leave_out_what_a_stage_does_not_use():
  """The imitation stage reads the P3 targets for their envs only: a target's role or hybrid flag is not
  part of its fingerprint (changing one must not retrain the imitators), its env is."""
  from cl_limits.stages import imitation  # noqa: PLC0415
  from cl_limits.stages.base import fingerprint, read_fields  # noqa: PLC0415
  st = imitation.STAGE
  fp = lambda c: fingerprint(read_fields(c, st.reads, st.ignores), {})
  base = fp(darkroom.get_config("smoke"))
  assert fp(smoke_with("experiments.p3.targets.heldout.hybrid", True)) == base
  assert fp(smoke_with("experiments.p3.targets.hard9.role", "positive_control")) == base
  assert fp(smoke_with("experiments.p3.targets.hard9.kwargs.size", 7)) != base


def test_a_field_added_later_at_its_default_keeps_a_finished_runs_fingerprint():
  """imitation.model.tokens came after runs had been made: a config without it (an older run's) and one
  with its default "step" fingerprint alike, so the older run is reused; "transition" is a change."""
  from cl_limits.stages import imitation  # noqa: PLC0415
  from cl_limits.stages.base import ADDED_DEFAULTS, fingerprint, read_fields  # noqa: PLC0415
  st = imitation.STAGE
  fp = lambda c: fingerprint(read_fields(c, st.reads, st.ignores), {})
  now = darkroom.get_config("smoke")
  assert now.imitation.model.tokens == ADDED_DEFAULTS["imitation.model.tokens"] == "step"
  older = darkroom.get_config("smoke")
  with older.unlocked():
    del older.imitation.model["tokens"]
  assert "tokens" not in older.imitation.model
  assert fp(now) == fp(older)
  assert fp(smoke_with("imitation.model.tokens", "transition")) != fp(now)
  assert now.imitation.model.mark_explore is ADDED_DEFAULTS["imitation.model.mark_explore"] is False
  with older.unlocked():
    del older.imitation.model["mark_explore"]
  assert fp(now) == fp(older)
  assert fp(smoke_with("imitation.model.mark_explore", True)) != fp(now)
  # A `*` in an added field: imitation.arms.<every arm>.start, and a run's config.json read without it.
  assert {a.start for a in now.imitation.arms.values()} == {ADDED_DEFAULTS["imitation.arms.*.start"]} == {0.0}
  with older.unlocked():
    for a in older.imitation.arms.values():
      del a["start"]
  assert fp(now) == fp(older)
  assert fp(smoke_with("imitation.arms.ad_early.start", 0.05)) != fp(now)


def test_a_runs_config_without_an_added_arm_field_reads_with_its_default(tmp_path):
  from cl_limits.stages import layout  # noqa: PLC0415
  cfg = darkroom.get_config("smoke").to_dict()
  for a in cfg["imitation"]["arms"].values():
    del a["start"]
  (tmp_path / layout.CONFIG).write_text(__import__("json").dumps(cfg))
  read = layout.read_config(str(tmp_path))
  assert {n: a["start"] for n, a in read["imitation"]["arms"].items()} == {n: 0.0 for n in cfg["imitation"]["arms"]}


@pytest.mark.parametrize("module", ["darkroom", "breakout", "transplant"])
def test_one_knob_sets_the_teachers_and_the_imitators_replicates(module):
  import importlib  # noqa: PLC0415
  config = importlib.import_module(f"experiments.configs.{module}").get_config("smoke")
  config.replicates = 3
  assert config.teacher.num_seeds == config.imitation.num_seeds == 3
  config.teacher.num_seeds = 4                     # either field moves the other
  assert config.imitation.num_seeds == config.replicates == 4


@pytest.mark.parametrize("module,preset,hybrid_follows", [("darkroom", "", True), ("breakout", "", True),
                                                          ("breakout", "gpu", True), ("transplant", "", False)])
def test_one_knob_sets_the_context_and_the_windows_that_equal_it(module, preset, hybrid_follows):
  """`--config.imitation.model.context_len=512` (or `--config.context_len`) moves the training windows and
  the hybrid learner's windows that equal the context in the preset; a window set itself, or set apart in
  the preset, keeps its value."""
  import importlib  # noqa: PLC0415
  from absl import flags  # noqa: PLC0415
  from ml_collections import config_flags  # noqa: PLC0415
  def parse(*args):
    argv = ["prog", f"--config=experiments/configs/{module}.py" + (f":{preset}" if preset else ""), *args]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=fv, sys_argv=argv)
    fv(argv)
    return fv.config
  config = parse("--config.imitation.model.context_len=512")
  hybrid = config.experiments.hybrid.learner if module != "transplant" else config.transplant.learner
  before = importlib.import_module(f"experiments.configs.{module}").get_config(preset)
  before_hybrid = before.experiments.hybrid.learner if module != "transplant" else before.transplant.learner
  assert config.context_len == config.imitation.model.context_len == config.imitation.train.seq_len == 512
  assert hybrid.seq_len == (512 if hybrid_follows else before_hybrid.seq_len)
  config.context_len = 64
  assert config.imitation.train.seq_len == 64
  config.imitation.train.seq_len = 128             # a window set itself keeps its value
  config.context_len = 32
  assert (config.imitation.model.context_len, config.imitation.train.seq_len) == (32, 128)
  config = parse("--config.context_len=96")
  assert config.imitation.model.context_len == config.imitation.train.seq_len == 96
  config = parse("--config.context_len=96", "--config.imitation.train.seq_len=192")
  assert (config.imitation.model.context_len, config.imitation.train.seq_len) == (96, 192)


def test_darkroom_gpu_preset_cuts_its_early_arm_where_the_cpu_config_does():
  """The gpu preset runs the CPU teachers' schedule for longer, so the cut rule's step (6,000 on the CPU
  config's greedy curve) holds: ad_early keeps the same teacher steps, and every stage plans and validates."""
  from cl_limits.stages import pipeline  # noqa: PLC0415
  from experiments.configs import darkroom  # noqa: PLC0415
  cpu, gpu = darkroom.get_config(""), darkroom.get_config("gpu")
  for f in ("lr", "eps_anneal_steps", "eps_end", "train_every", "target_update_every"):
    assert gpu.teacher.dqn[f] == cpu.teacher.dqn[f], f
  assert gpu.teacher.dqn.total_steps > cpu.teacher.dqn.total_steps
  kept = lambda c: round(c.teacher.dqn.total_steps * c.imitation.arms.ad_early.fraction)  # noqa: E731
  assert kept(gpu) == kept(cpu) == 6_000
  pipeline.validate(pipeline.plan(gpu, "/tmp/darkroom_gpu_plan"))


def test_data_budget_config_scales_the_streams_not_the_per_stream_schedule():
  """experiments/configs/data_budget.py: k x the streams with every step count of the DQN k x too (so one
  stream's schedule and the cut's step in it are the study's), and two arms that differ only in how many
  training streams they see; a preset that is not a multiple of the study's streams is refused."""
  from cl_limits.stages import pipeline  # noqa: PLC0415
  from experiments.configs import darkroom, data_budget  # noqa: PLC0415
  study, config = darkroom.get_config(""), data_budget.get_config("16")
  d, s = config.teacher.dqn, study.teacher.dqn
  assert d.num_envs == 16 and s.num_envs == 4
  for f in ("total_steps", "eps_anneal_steps", "learning_starts", "target_update_every", "train_every"):
    assert d[f] / d.num_envs == s[f] / s.num_envs, f
  assert d.lr == s.lr and d.batch_size == s.batch_size
  arms = config.imitation.arms
  assert (arms.ad_early.streams, arms.ad_early_few.streams) == (0, 3)
  assert {k: v for k, v in arms.ad_early.items() if k != "streams"} == \
      {k: v for k, v in arms.ad_early_few.items() if k != "streams"}
  assert config.experiments.p2.arms == "ad_early,ad_early_few" and not config.experiments.p2.power_control
  pipeline.validate(pipeline.plan(config, "/tmp/data_budget_plan"))
  with pytest.raises(ValueError, match="multiple of the study's 4"):
    data_budget.get_config("6")
  alone = data_budget.get_config("smoke,4,alone")            # the all-streams arm only, on the smoke study
  assert list(alone.imitation.arms.keys()) == ["ad_early"] and alone.experiments.p2.arms == "ad_early"
  pipeline.validate(pipeline.plan(alone, "/tmp/data_budget_alone_plan"))
  with pytest.raises(ValueError, match="data_budget.py preset 'big'"):
    data_budget.get_config("big")


def test_one_stream_config_gives_each_dqn_one_stream_and_keeps_every_episode():
  """experiments/configs/one_stream.py: the study's DQN with one stream per learner (its per-step schedule
  unchanged: every count was already over a learner's streams), the early arm at gap 1 (every episode) beside
  the study's gap 5, the same cut, nothing held out (one stream leaves none) and so patience off; it plans
  and validates; `alone` drops the gap-5 arm; an unknown preset is refused."""
  from cl_limits.stages import pipeline  # noqa: PLC0415
  from experiments.configs import darkroom, one_stream  # noqa: PLC0415
  study, config = darkroom.get_config(""), one_stream.get_config("")
  d, s = config.teacher.dqn, study.teacher.dqn
  assert d.num_envs == 1 and s.num_envs == 4
  for f in ("total_steps", "eps_anneal_steps", "learning_starts", "train_every", "lr", "buffer_size"):
    assert d[f] == s[f], f
  arms = config.imitation.arms
  assert (arms.ad_early.gap, arms.ad_early_g5.gap) == (1, 5)
  assert arms.ad_early.fraction == arms.ad_early_g5.fraction == study.imitation.arms.ad_early.fraction
  assert config.imitation.fidelity.heldout_streams == 0 and config.imitation.fidelity.patience == 0
  assert config.experiments.p2.arms == "ad_early,ad_early_g5" and not config.experiments.p2.power_control
  pipeline.validate(pipeline.plan(config, "/tmp/one_stream_plan"))
  alone = one_stream.get_config("smoke,alone")
  assert list(alone.imitation.arms.keys()) == ["ad_early"] and alone.teacher.dqn.num_envs == 1
  pipeline.validate(pipeline.plan(alone, "/tmp/one_stream_alone_plan"))
  with pytest.raises(ValueError, match="one_stream.py preset 'big'"):
    one_stream.get_config("big")
  # ',x<k>': k independent learners per task, the last one's stream held out (so a KL and the clone).
  many = one_stream.get_config("fast,x8,alone")
  assert many.teacher.learners_per_task == 8 and many.teacher.dqn.num_envs == 1
  assert many.imitation.fidelity.heldout_streams == 1 and list(many.imitation.arms.keys()) == ["ad_early"]
  pipeline.validate(pipeline.plan(many, "/tmp/one_stream_x8_plan"))
  for bad in ("fast,x1", "fast,alone,x2"):
    with pytest.raises(ValueError, match="one_stream.py preset"):
      one_stream.get_config(bad)
  two = one_stream.get_config("smoke,x2")
  with two.unlocked():
    two.imitation.fidelity.heldout_streams = 2
  with pytest.raises(ConfigError, match=r"imitation.fidelity.heldout_streams: must leave a stream to train on: "
                     r"the teachers have 2 streams per task \(teacher.dqn.num_envs x teacher.learners_per_task=2\)"):
    pipeline.validate(pipeline.plan(two, "/tmp/one_stream_x2_plan"))
  two = one_stream.get_config("smoke,x2")
  with two.unlocked():
    two.imitation.arms.ad_early.labels = "teacher"
  with pytest.raises(ConfigError, match="teacher.learners_per_task: must be 1 for labels='teacher'"):
    pipeline.validate(pipeline.plan(two, "/tmp/one_stream_x2_plan"))


@pytest.mark.parametrize("preset", ["darkroom", "breakout", "smoke,darkroom"])
def test_control_budget_config_trains_and_scores_the_power_control_alone(preset):
  """experiments/configs/control_budget.py: the power control's arm alone, to its cap with patience off,
  scored by P2 (no known positive, no P1, P3 or hybrid); it plans and validates before anything runs."""
  from cl_limits.stages import pipeline  # noqa: PLC0415
  from experiments.configs import control_budget  # noqa: PLC0415
  config = control_budget.get_config(preset)
  arm = config.experiments.p2.power_control
  want = "ad_eps_half" if preset == "breakout" else "search_early"
  assert list(config.imitation.arms.keys()) == [arm] == [want]
  assert config.imitation.arms[arm].updates == 0 and config.imitation.fidelity.patience == 0
  steps = pipeline.plan(config, "/tmp/control_budget_plan")
  pipeline.validate(steps)
  names = {s.stage.name for s in steps}
  assert {"imitation", "p2", "report"} <= names and not names & {"p1", "p3", "hybrid"}
  with pytest.raises(ValueError, match="control_budget.py preset 'cartpole'"):
    control_budget.get_config("cartpole")
