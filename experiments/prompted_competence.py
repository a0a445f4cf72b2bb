r"""Does a P2 imitator keep the end of its own data when it is handed it? On a finished run, each
replicate's imitator of `--arm` acts on the first `--tasks` training tasks for one kept history's steps
(the competence gate's horizon), once from an empty context (the gate) and once with its context first
filled with the last context-length kept steps of its own training data (stream 0, the end of what it
imitated). Printed per replicate, as fractions of each task's optimum: the first and last two episodes
of each, beside the data's end on the same tasks. An imitator that plays near its data's end when
prompted but falls back as its own episodes replace the prompt imitates the end of learning, not the
learning; one that never reaches it when prompted has not learned the end either.

  python -m experiments.prompted_competence --config=experiments/configs/darkroom.py \
      --workdir=runs/darkroom_s0 --arm=ad_early

`--epsilons=0,0.05,0.2` plays both rollouts once per exploration rate around the protocol's choice (uniform
actions injected with that probability; with `--config.evaluation.greedy=true`, around its argmax): a
test of whether actions that carry no information undo a goal the imitator was shown. `--plot=PATH`
draws every rollout's mean return per episode (over replicates and tasks) beside the data's end.
Episodes are read as the P2 stage reads them, so games whose episodes end early (Breakout) play too;
`--episodes=N` sets the first and last windows (each row's own last N finished episodes).
"""
import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:preset]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory whose imitation stage has finished.")
_CACHE = cli.compile_cache_flag()
_ARM = flags.DEFINE_string("arm", "ad_early", "The imitation arm (a P2 source).")
_TASKS = flags.DEFINE_integer("tasks", 20, "How many of the teachers' training tasks (the first ones).")
_EPSILONS = flags.DEFINE_string("epsilons", "", "Comma-separated exploration rates to play in turn (empty: the "
                                "config's evaluation.epsilon only).")
_PLOT = flags.DEFINE_string("plot", "", "A PNG path for the mean return per episode of every rollout.")
_EPISODES = flags.DEFINE_integer("episodes", 2, "How many episodes the first and last windows hold.")
flags.mark_flags_as_required(["config", "workdir"])


def main(_):
  cli.open_compile_cache(_CACHE)
  from cl_limits.analysis import replicates  # noqa: PLC0415
  from cl_limits import comma_list  # noqa: PLC0415
  from cl_limits.histories import datasets  # noqa: PLC0415
  from cl_limits.rollouts import chunked  # noqa: PLC0415
  from cl_limits.rollouts import rollout as rollout_lib  # noqa: PLC0415
  from cl_limits.stages import common, p1, p2  # noqa: PLC0415

  from experiments import arm_rollouts  # noqa: PLC0415

  config, workdir, name = _CONFIG.value, _WORKDIR.value, _ARM.value
  base = arm_rollouts.protocol(config)
  try:
    protocols = [(f"epsilon {float(e):g}: ", rollout_lib.action_protocol(**{**base, "epsilon": float(e)}))
                 for e in comma_list(_EPSILONS.value)] or [("", base)]
  except ValueError as e:
    raise app.UsageError(f"--epsilons={_EPSILONS.value}: {e}") from None
  if _EPISODES.value < 1:
    raise app.UsageError(f"--episodes={_EPISODES.value}: must be >= 1")
  m = int(_EPISODES.value)
  r = arm_rollouts.load(config, workdir, name, int(_TASKS.value), fixed_episodes=False)
  model, params, history, data, n, opt = r.model, r.params, r.history, r.data, r.n, r.opt
  horizon, ep_len = r.horizon, r.ep_len
  done = np.asarray(history.terminated) | np.asarray(history.truncated)
  keep = datasets.arm_keep(done, np.asarray(history.episode), r.arm)
  prompt = p1.kept_prompts(history, keep, n, int(model.context_len))
  keys = jax.random.split(jax.random.key(int(config.seed) + 41), r.num_seeds * n).reshape(r.num_seeds, n)
  unit = "fraction of each task's optimum" if opt is not None else "return"
  count = f"{horizon // ep_len} episodes" if ep_len else "episodes end early"
  print(f"{name} on {n} training tasks, {horizon} steps ({count}), {unit}; the "
        f"prompt: the last {int(model.context_len)} kept steps of stream 0 (reward in it per task: "
        f"{float(np.asarray(prompt.reward).sum(-1).mean()):.1f})")
  ends = [replicates.data_end(d, opt is not None) for d in data]
  print(f"  data's end on these tasks, per replicate: {' '.join(f'{v:.3f}' for v in ends)}")
  curves = []
  for tag, protocol in protocols:
    for mode, p in (("empty context", None), ("prompted with its data's end", prompt)):
      res = chunked.run_batched(model, r.env, horizon, params, r.tasks, keys, p, **protocol)
      rets = replicates.in_unit(p2.episode_returns(res, horizon, ep_len), opt, task_axis=1)
      first, last = np.nanmean(rets[..., :m], axis=(1, 2)), np.nanmean(arm_rollouts.last_episodes(rets, m), axis=1)
      print(f"  {tag}{mode:30s} first {m} episodes {' '.join(f'{v:.3f}' for v in first)} | last {m} "
            f"{' '.join(f'{v:.3f}' for v in last)}", flush=True)
      curves.append((tag + mode, np.nanmean(rets, axis=(0, 1))))
  if _PLOT.value:
    title = f"{name}: {common.describe_actions(config.evaluation)}"
    _plot(_PLOT.value, curves, ends, title + (", uniform actions injected at each epsilon" if _EPSILONS.value else ""),
          unit)
    print(f"  figure: {_PLOT.value}")


def _plot(path: str, curves: list, ends: list, title: str, unit: str) -> None:
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
  for ax, which in zip(axes, ("empty context", "prompted with its data's end")):
    for label, c in curves:
      if label.endswith(which):
        ax.plot(np.arange(1, len(c) + 1), c, lw=1.2, label=label[:-len(which)].rstrip(": ") or "protocol")
    ax.axhspan(min(ends), max(ends), color="0.85", label="data's end (replicates' range)")
    ax.set_title(which, fontsize=9)
    ax.set_xlabel("episode of the rollout")
  axes[0].set_ylabel(unit)
  axes[0].legend(fontsize=7, loc="center left")     # the empty-context panel's middle is free
  fig.suptitle(title + " (mean over replicates and tasks)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  app.run(main)
