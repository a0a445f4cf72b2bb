"""Every kind of output a stage writes, in one place: atomic JSON and npz, figures, TensorBoard.

Files are written to a temporary name and renamed (cl_limits.histories.store.atomic_write_bytes), so a
killed run never leaves a half-written file that reads as valid. TensorBoard scalars always go on the
environment-step axis where the curve is a learning curve, one point per step value per tag.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import os

import numpy as np

from cl_limits.analysis import curves as curves_lib
from cl_limits.histories import store


def write_json(path: str, obj) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  store.atomic_write_json(path, obj)
  return path


def write_npz(path: str, **arrays) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  store.atomic_write_bytes(path, buf.getvalue())
  return path


def write_text(path: str, text: str) -> str:
  return write_bytes(path, text.encode())


def write_bytes(path: str, data: bytes) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  store.atomic_write_bytes(path, data)
  return path


@contextlib.contextmanager
def figure(path: str, ncols: int = 1, size=(7, 4), nrows: int = 1, h_pad: float | None = None):
  """`with figure(path, ncols) as (fig, axes):` draw on axes [ncols] (or [nrows] stacked, one column, in a
  figure of `size`); saved (atomically) and closed on exit."""
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1]), squeeze=False)
  try:
    yield fig, list(axes.ravel())
    fig.tight_layout(**({} if h_pad is None else {"h_pad": h_pad}))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_bytes(path, buf.getvalue())
  finally:
    plt.close(fig)


_WRITERS = itertools.count()


def _unique() -> str:
  """An event-file suffix no other writer shares: tensorboardX names files by the second and the host
  only, so two writers opened on one directory within a second would write one file and lose a curve."""
  return f".{os.getpid()}.{next(_WRITERS):06d}"


class Board:
  """TensorBoard writers under one directory: `<dir>/<group>/seed_<s>` per replicate and `<dir>/<group>/all`
  for the mean. `purge_step` (a resumed run's first step) drops events a killed run wrote past its last
  checkpoint, so a tag never holds two points at one step."""

  def __init__(self, directory: str, num_seeds: int, groups=("",), purge_step: int | None = None,
               config=None):
    from tensorboardX import SummaryWriter  # noqa: PLC0415
    self.num_seeds = num_seeds
    kw = {} if not purge_step else {"purge_step": int(purge_step)}
    self.seed = {(g, s): SummaryWriter(os.path.join(directory, g, f"seed_{s}"), filename_suffix=_unique(), **kw)
                 for g in groups for s in range(num_seeds)}
    self.all = {g: SummaryWriter(os.path.join(directory, g, "all"), filename_suffix=_unique(), **kw)
                for g in groups}
    if config is not None and not purge_step:
      self.all[groups[0]].add_text("config", "```\n" + str(config) + "\n```", 0)

  def scalars(self, tag: str, per_seed, step: int, group: str = "") -> None:
    """per_seed [S]: one value per replicate (nan: none); the mean of the finite ones goes to `all`."""
    v = np.asarray(per_seed, np.float64).reshape(self.num_seeds)
    for s in range(self.num_seeds):
      if np.isfinite(v[s]):
        self.seed[(group, s)].add_scalar(tag, float(v[s]), int(step))
    if np.isfinite(v).any():
      self.all[group].add_scalar(tag, float(np.nanmean(v)), int(step))

  def mean_only(self, tag: str, value: float, step: int, group: str = "") -> None:
    if np.isfinite(value):
      self.all[group].add_scalar(tag, float(value), int(step))

  def close(self) -> None:
    for w in list(self.seed.values()) + list(self.all.values()):
      w.close()


def curves_board(tb_dir: str, tag_prefix: str, runs: dict, horizon: int, lines: dict | None = None,
                 bins: int = 100) -> None:
  """`<tag_prefix>/<learner>` per replicate and mean against environment steps (runs: {learner:
  (episode_return [S, K, E], episode_end [S, K, E])}), plus constant reference lines at the same steps."""
  curves = {k: curves_lib.mean_curve(r, e, bins=bins, horizon=horizon) for k, (r, e) in runs.items()}
  num_seeds = next(iter(curves.values()))[1].shape[0]
  board = Board(tb_dir, num_seeds)
  for k, (x, y) in curves.items():
    for j in range(len(x)):
      board.scalars(f"{tag_prefix}/{k}", y[:, j], int(x[j]))
  x = next(iter(curves.values()))[0]
  for name, value in (lines or {}).items():
    for j in range(len(x)):
      board.mean_only(f"{tag_prefix}/{name}", float(value), int(x[j]))
  board.close()


def line_board(tb_dir: str, tag: str, x, y, max_points: int = 500) -> None:
  """One curve (mean only) against environment steps, thinned to `max_points`, one point per step."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  ok = np.isfinite(x) & np.isfinite(y)
  x, y = x[ok].astype(np.int64), y[ok]
  _, first = np.unique(x, return_index=True)
  keep = first[np.unique(np.linspace(0, len(first) - 1, min(len(first), max_points)).astype(int))] \
      if len(first) else first
  board = Board(tb_dir, 0)
  for j in keep:
    board.mean_only(tag, float(y[j]), int(x[j]))
  board.close()


def hparams_board(directory: str, hparams: dict, metrics: dict, curves: dict, config_text: str = "") -> None:
  """One run's TensorBoard hparams entry (the sweep axes and its metrics), per-episode curves (x = episode,
  1-based) and its config as text."""
  from tensorboardX import SummaryWriter  # noqa: PLC0415
  with SummaryWriter(directory, filename_suffix=_unique()) as w:
    if config_text:
      w.add_text("config", "```\n" + config_text + "\n```", 0)
    w.add_hparams(hparams, metrics, name=".")
    for tag, ys in curves.items():
      for i, y in enumerate(ys):
        w.add_scalar(tag, float(y), i + 1)


def write_target(out_dir, tb_dir, group, title, entry, runs, rnd, dqn_curves, dqn_x, horizon):
  """A scored target's returns.npz and curves.png under out_dir, its TensorBoard curves under tb_dir."""
  lo = np.asarray(entry["random_return"])
  write_npz(os.path.join(out_dir, "returns.npz"), dqn_curves=dqn_curves, dqn_x=dqn_x,
            random_return=np.asarray(rnd.episode_return), random_end=np.asarray(rnd.episode_end),
            **{f"{k}/{n}": a for k, (r, e) in runs.items() for n, a in (("episode_return", r), ("episode_end", e))})
  _target_plot(title, entry, runs, dqn_curves, dqn_x, lo, os.path.join(out_dir, "curves.png"), horizon)
  curves_board(tb_dir, group, runs, horizon, {"random": float(np.mean(lo))})
  with np.errstate(all="ignore"):
    line_board(os.path.join(tb_dir, "dqn"), f"{group}/dqn", dqn_x, np.nanmean(dqn_curves, axis=(0, 1)))


def _target_plot(name, entry, runs, dqn_curves, dqn_x, random_level, path, horizon):
  with figure(path) as (_, (ax,)), np.errstate(all="ignore"):
    ax.plot(dqn_x, np.nanmean(dqn_curves, axis=(0, 1)), color="k", lw=2, label="DQN from scratch")
    for i, (k, (r, e)) in enumerate(runs.items()):
      x, y = curves_lib.mean_curve(r, e, horizon=horizon)
      ax.plot(x, curves_lib.nanmean(y, 0), color=f"C{i}", lw=2, label=f"imitator {k} ({r.shape[1]} tasks)")
      for s in range(y.shape[0]):
        ax.plot(x, y[s], color=f"C{i}", lw=0.5, alpha=0.3)
    ax.axhline(float(np.mean(random_level)), color="gray", ls=":", lw=1.2, label="random policy")
    ax.set_xlabel("environment steps in the unseen env")
    ax.set_ylabel("episode return (thick: mean; thin: each seed)")
    ax.set_title(f"P3 {name}: {entry['env']} {entry['env_kwargs']}", fontsize=10)
    ax.legend(fontsize=7)


def provenance() -> dict:
  """What made a run: the commit of this checkout (and whether its tree had changes), the versions of the
  packages the numbers depend on, the device kind and count, and the time."""
  import datetime  # noqa: PLC0415
  import importlib.metadata as md  # noqa: PLC0415
  import subprocess  # noqa: PLC0415
  import sys  # noqa: PLC0415

  import jax  # noqa: PLC0415
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

  def git(*args):
    try:
      return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10,
                            check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
      return None
  commit = git("rev-parse", "HEAD")
  dirty = git("status", "--porcelain", "--untracked-files=no")
  versions = {"python": sys.version.split()[0]}
  for p in ("jax", "jaxlib", "flax", "optax", "gymnax", "orbax-checkpoint", "numpy"):
    try:
      versions[p] = md.version(p)
    except md.PackageNotFoundError:
      versions[p] = None
  devices = jax.devices()
  return {"commit": commit or "unknown (not a git checkout)", "dirty": bool(dirty) if dirty is not None else None,
          "versions": versions, "device": {"kind": devices[0].device_kind, "platform": devices[0].platform,
                                           "count": len(devices)},
          "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def tee(log, path: str):
  """`log` that also appends each line, timestamped, to `path` (flushed, so `tail -f` follows it)."""
  import datetime  # noqa: PLC0415
  os.makedirs(os.path.dirname(path), exist_ok=True)

  def out(line: str) -> None:
    log(line)
    with open(path, "a") as f:
      f.write(f"{datetime.datetime.now().isoformat(timespec='seconds')} {line}\n")
  return out


def minutes(seconds: float) -> str:
  """`1 h 8 min 33 s`, `12 min 5 s`, `41 s`."""
  s = int(round(seconds))
  h, m = s // 3600, s % 3600 // 60
  return " ".join(f"{v} {u}" for v, u in ((h, "h"), (m, "min"), (s % 60, "s")) if v or u == "s" or (h and u == "min"))
