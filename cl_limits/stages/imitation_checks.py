"""The imitation stage's config checks (its spec's fields: one line naming the field, before anything
compiles), beside the stage in cl_limits/stages/imitation.py."""
from __future__ import annotations

from cl_limits import envs as envs_lib
from cl_limits.histories import datasets
from cl_limits.imitation import learner as learner_lib
from cl_limits.rollouts import rollout as rollout_lib
from cl_limits.stages import artifacts, common
from cl_limits.stages.base import check, in_range, positive_int, wrap


def protocol_notes(config) -> list[str]:
  """Lines the imitation log prints where the action protocol and the arms' labels do not match: an
  imitator of recorded actions already imitates its data's exploration, so `evaluation.epsilon` explores
  on top of it; an imitator of greedy labels explores only by sampling its choice without it."""
  proto = artifacts.protocol(config)
  eps, explores = proto["epsilon"], rollout_lib.explores(proto["epsilon"], proto["epsilon_decay"])
  arms = artifacts.arms_of(config)
  action = [n for n, a in arms.items() if a["labels"] == "action"]
  greedy = [n for n, a in arms.items() if a["labels"] == "greedy"]
  notes = []
  if explores and action:
    notes.append(f"evaluation.epsilon={eps:g} adds exploration on top of arms that imitate recorded actions, "
                 f"exploration included ({', '.join(action)})")
  if not explores and greedy:
    notes.append(f"arms of greedy labels ({', '.join(greedy)}) act with evaluation.epsilon=0: they explore only "
                 "by sampling their choice, not as their data's learners did")
  return notes


def validate(config) -> None:
  env = common.env_of(config)
  im = config.imitation
  names = artifacts.arm_names(config)
  check(bool(names), "imitation.arms", "no arms configured", {})
  for name in names:
    wrap("imitation", datasets.validate_arm, name, im.arms[name])
  positive_int(config, "imitation.num_seeds")
  total, per_seg = int(im.train.num_updates), int(im.train.updates_per_segment)
  for name, a in artifacts.arms_of(config).items():
    u = int(a["updates"])
    check(u <= total and u % per_seg == 0, f"imitation.arms.{name}.updates",
          f"must be a multiple of train.updates_per_segment={per_seg} and at most train.num_updates={total}", u)
  check(artifacts.sources(config) or not any(a["data"] == "teacher" for a in artifacts.arms_of(config).values())
        or int(im.num_seeds) == int(config.teacher.num_seeds), "imitation.num_seeds",
        f"must equal teacher.num_seeds={int(config.teacher.num_seeds)}: replicate s's imitators train on "
        "teacher seed s's histories only", int(im.num_seeds))
  wrap("imitation", learner_lib.validate, im.train, im.model)
  in_range(config, "imitation.train.lr", 0.0, float("inf"), lo_open=True)
  ep, ctx = common.episode_length(env), int(im.model.context_len)
  check(ep is None or ctx >= ep, "imitation.model.context_len", f"is shorter than one episode of "
        f"{config.env.name} ({ep} steps): the model could never see an earlier episode", ctx)
  arms = list(artifacts.arms_of(config).values())
  check(not artifacts.sources(config) or all(a["data"] == "teacher" and a["labels"] == "action" for a in arms),
        "imitation.sources", "joined stores support only arms with data='teacher', labels='action'",
        im.sources)
  check(not any(a["augment"] for a in arms) or getattr(env, "obs_nvec", None) is None, "imitation.arms",
        f"augment=True projects flat features; {config.env.name} has integer entries (obs_nvec)", names)
  enc = str(im.model.get("frame_encoder", "linear"))
  check(enc in ("linear", "patch"), "imitation.model.frame_encoder", "must be 'linear' or 'patch'", enc)
  if enc == "patch":
    shape, _ = envs_lib.obs_spec(env)
    p = int(im.model.patch)
    check(len(shape) == 3 and p >= 1 and shape[0] % p == 0 and shape[1] % p == 0, "imitation.model.patch",
          f"'patch' frames need observations [H, W, C] with H and W multiples of the patch; {config.env.name} "
          f"gives {tuple(shape)}", p)
    check(not any(a["augment"] for a in arms), "imitation.model.frame_encoder",
          "'patch' needs frames; augmented arms project flattened features", enc)
    positive_int(config, "imitation.model.patch_features")
  check(not any(a["labels"] == "oracle" for a in arms) or hasattr(env, "optimal_action_from_obs"),
        "imitation.arms", f"labels='oracle' needs an env with an oracle; {config.env.name} has none", names)
  if any(a["data"] == "ad_eps" for a in arms):
    demo = config.imitation.ad_eps.demonstrator
    check(demo in ("oracle", "teacher", "searcher"), "imitation.ad_eps.demonstrator",
          "must be 'oracle' (the env's optimal action), 'teacher' (each replicate's final DQN, greedy) or "
          "'searcher' (the env's scripted in-context searcher)", demo)
    check(demo != "oracle" or hasattr(env, "optimal_action"), "imitation.ad_eps.demonstrator",
          f"'oracle' needs an env with an oracle; {config.env.name} has none (use 'teacher')", demo)
    check(demo != "searcher" or hasattr(env, "search_start"), "imitation.ad_eps.demonstrator",
          f"'searcher' needs an env with a scripted searcher (DarkRoom, MinAtar-Breakout); {config.env.name} has none", demo)
    check(demo == "oracle" or not str(config.imitation.sources or ""), "imitation.ad_eps.demonstrator",
          "'teacher' needs the run's own teachers (imitation.sources names other stores)", demo)
    detour = positive_int(config, "imitation.ad_eps.search_detour", minimum=0) if "search_detour" in config.imitation.ad_eps else 0
    check(not detour or (demo == "searcher" and hasattr(env, "search_detour")), "imitation.ad_eps.search_detour",
          f"needs imitation.ad_eps.demonstrator='searcher' in an env whose searcher takes detours (DarkRoom); "
          f"{config.env.name}, {demo!r}", detour)
    positive_int(config, "imitation.ad_eps.steps")
    positive_int(config, "imitation.ad_eps.streams")
    in_range(config, "imitation.ad_eps.eps_floor", 0.0, 1.0)
    in_range(config, "imitation.ad_eps.decay_fraction", 0.0, 1.0)     # 0: epsilon at its floor throughout
  positive_int(config, "imitation.fidelity.heldout_streams", minimum=0)
  positive_int(config, "imitation.fidelity.max_windows", minimum=0)
  positive_int(config, "imitation.fidelity.patience", minimum=0)
  in_range(config, "imitation.fidelity.min_improvement", 0.0, float("inf"))
  k = common.learners_per_task(config)
  streams = int(config.teacher.dqn.num_envs) * k if "teacher" in config else 0
  check(artifacts.sources(config) or not any(a["data"] == "teacher" for a in artifacts.arms_of(config).values())
        or int(im.fidelity.heldout_streams) < streams, "imitation.fidelity.heldout_streams",
        f"must leave a stream to train on: the teachers have {streams} streams per task (teacher.dqn.num_envs"
        + (f" x teacher.learners_per_task={k}" if k > 1 else f"={streams}") + ")",
        int(im.fidelity.heldout_streams))
  check(k == 1 or not any(a["labels"] == "teacher" for a in artifacts.arms_of(config).values()),
        "teacher.learners_per_task", "must be 1 for labels='teacher' (one final DQN per task labels its "
        "histories)", k)
  check(k == 1 or not any(a["data"] == "ad_eps" for a in artifacts.arms_of(config).values())
        or str(im.ad_eps.demonstrator) != "teacher", "teacher.learners_per_task",
        "must be 1 for imitation.ad_eps.demonstrator='teacher' (one final DQN per task demonstrates)", k)
  if any(a["data"] == "ad_eps" for a in artifacts.arms_of(config).values()):
    check(int(im.fidelity.heldout_streams) < int(im.ad_eps.streams), "imitation.fidelity.heldout_streams",
          f"must leave an AD-epsilon stream to train on (imitation.ad_eps.streams={int(im.ad_eps.streams)})",
          int(im.fidelity.heldout_streams))
  check(int(im.fidelity.heldout_streams) > 0 or int(im.fidelity.patience) == 0, "imitation.fidelity.patience",
        "needs held-out data to stop on (fidelity.heldout_streams >= 1); 0 trains every arm to its cap",
        int(im.fidelity.patience))
  positive_int(config, "imitation.eval.every_segments", minimum=0)
  positive_int(config, "imitation.eval.num_tasks", minimum=0)
  positive_int(config, "imitation.eval.episodes")
  artifacts.protocol(config)
  artifacts.build_model(config, env)
