"""What every stage shares: its shape (`Stage`), the one error a user can fix (`ConfigError`), field checks,
and the fingerprint that ties a stage's results to the config fields and inputs that made them.

A stage reads some config fields (`reads`, dotted paths), needs the outputs of some earlier steps, writes
one directory of the run, and is skipped when that directory holds results of the same fingerprint. The
pipeline (cl_limits/stages/pipeline.py) is a list of `Step`s: a stage applied to one config in one run
directory (the MinAtar transplant applies the same stages to derived configs in sub-directories).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Callable

import ml_collections

from cl_limits.stages.spec import Spec


class ConfigError(ValueError):
  """A config or input the user can fix; printed as one line `error: <field>: <what> (got <value>)`."""


def field(config, path: str, default=None):
  """The value at a dotted path of a ConfigDict (`default` where a section or field is absent)."""
  node = config
  for part in path.split("."):
    if isinstance(node, (ml_collections.ConfigDict, dict, Spec)) and part in node:
      node = node[part]
    else:
      return default
  return node


def check(ok: bool, path: str, what: str, value: Any) -> None:
  """Raises ConfigError("path: what (got value)") unless ok."""
  if not ok:
    raise ConfigError(f"{path}: {what} (got {value!r})")


def positive_int(config, path: str, minimum: int = 1) -> int:
  v = field(config, path)
  try:
    ok = int(v) == float(v) and int(v) >= minimum
  except (TypeError, ValueError):
    ok = False
  check(ok, path, f"must be an integer >= {minimum}", v)
  return int(v)


def in_range(config, path: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> float:
  v = field(config, path)
  try:
    x = float(v)
    ok = (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
  except (TypeError, ValueError):
    ok = False
  what = (f"must be {'>' if lo_open else '>='} {lo:g}" if hi == float("inf")
          else f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}")
  check(ok, path, what, v)
  return float(v)


def wrap(prefix: str, fn: Callable, *args, **kwargs):
  """Calls a library validator; its ValueError ("field: msg") becomes ConfigError("prefix.field: msg")."""
  try:
    return fn(*args, **kwargs)
  except ConfigError:
    raise
  except ValueError as e:
    msg = str(e)
    raise ConfigError(f"{prefix}.{msg}" if prefix and not msg.startswith(prefix) else msg) from None


def jsonable(x):
  if isinstance(x, (ml_collections.ConfigDict, Spec)):
    return {k: jsonable(v) for k, v in x.items()}
  if isinstance(x, dict):
    return {str(k): jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [jsonable(v) for v in x]
  if isinstance(x, (int, float, str, bool)) or x is None:
    return x
  return str(x)


# Fields added to the configs after runs had been made, with the value at which they compute what the
# configs without them computed. At that value a field stays out of every fingerprint, so a run finished
# before it existed is still reused, not retrained; any other value is a change like any other. A `*`
# stands for every key at its level (every arm).
ADDED_DEFAULTS = {"imitation.model.tokens": "step", "imitation.model.mark_explore": False, "evaluation.epsilon": 0.0,
                  "evaluation.epsilon_decay": 0, "imitation.arms.*.start": 0.0, "imitation.ad_eps.search_detour": 0,
                  "experiments.p2.competence_rollouts": 1}


def expand(config, path: str) -> list[str]:
  """The concrete dotted paths a path with `*` parts names in `config` (the path itself when it has none)."""
  done = [""]
  for part in path.split("."):
    nxt = []
    for pre in done:
      node = field(config, pre[:-1]) if pre else config
      keys = (list(node) if isinstance(node, (ml_collections.ConfigDict, dict, Spec)) else []) if part == "*" else [part]
      nxt += [pre + str(k) + "." for k in keys]
    done = nxt
  return [p[:-1] for p in done]


def read_fields(config, paths, ignores=()) -> dict:
  """{path: JSON-able value} of the fields a stage reads (absent ones as None), `ignores` left out; a `*`
  in an ignored path matches every key at that level (`experiments.p3.targets.*.role`). Fields of
  ADDED_DEFAULTS at their default are left out too."""
  ignores = tuple(ignores) + tuple(c for p, d in ADDED_DEFAULTS.items() for c in expand(config, p)
                                   if field(config, c) == d)
  out = {p: jsonable(field(config, p)) for p in paths}

  def drop(node, parts):
    if not isinstance(node, dict) or not parts:
      return
    if len(parts) == 1:
      for k in (list(node) if parts[0] == "*" else [parts[0]]):
        node.pop(k, None)
      return
    for k in (list(node) if parts[0] == "*" else [parts[0]]):
      drop(node.get(k), parts[1:])

  out = {p: v for p, v in out.items() if p not in ignores}
  for ig in ignores:
    for p, v in out.items():
      if ig.startswith(p + "."):
        drop(v, ig[len(p) + 1:].split("."))
  return out


def fingerprint(values: dict, inputs: dict) -> str:
  """sha256 of the fields read and the fingerprints of the inputs."""
  blob = json.dumps({"reads": values, "inputs": inputs}, sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def changed_fields(old: dict, new: dict, prefix: str = "") -> list[str]:
  """Dotted paths whose values differ between two {path: value} read records (nested dicts walked)."""
  out = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k), new.get(k)
    path = f"{prefix}.{k}" if prefix else k
    if isinstance(a, dict) and isinstance(b, dict):
      out += changed_fields(a, b, path)
    elif a != b:
      out.append(path)
  return out


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage of the study.

  name: its log tag; subdir: where it writes under its run directory; reads: config fields (dotted) that
  are part of its fingerprint; enabled(config): whether the config asks for it; validate(config): raises
  ConfigError naming the field; run(step, log): does the work and writes through cl_limits.stages.outputs.
  """
  name: str
  subdir: str
  reads: tuple[str, ...]
  validate: Callable
  run: Callable
  enabled: Callable = lambda config: True
  extra_outputs: tuple[str, ...] = ()    # other run-directory paths it writes (cleared on a re-run)
  ignores: tuple[str, ...] = ()          # fields under `reads` left out of the fingerprint
  locations: tuple[str, ...] = ()        # fields that say where its inputs are, not what they hold, or how
                                         # it runs, not what it computes (read, not fingerprinted)
  marker: str = ""                       # the file written last (default <subdir>/summary.json)
  record: str = ""                       # its fingerprint record (default <subdir>/stage.json)

  @property
  def marker_path(self) -> str:
    return self.marker or f"{self.subdir}/summary.json"

  @property
  def record_path(self) -> str:
    return self.record or f"{self.subdir}/stage.json"


@dataclasses.dataclass
class Step:
  """A stage applied to one config in one run directory; `inputs` are the ids of the steps it reads."""
  id: str
  stage: Stage
  config: Any
  workdir: str
  inputs: tuple[str, ...] = ()
  args: dict = dataclasses.field(default_factory=dict)

  def spec(self) -> Spec:
    """The stage's view of the config: its `reads` and nothing else (cl_limits/stages/spec.py)."""
    return Spec(self.config, self.stage.reads, self.stage.ignores, self.stage.name, self.stage.locations)

  def scoped(self) -> "Step":
    """This step with its config replaced by its spec: what the stage's validate and run see."""
    return dataclasses.replace(self, config=self.spec())
