"""A stage's spec: the part of the config it declares, and nothing else.

A stage lists the config fields it reads (`Stage.reads`, dotted paths, and `Stage.ignores` below them).
The pipeline hands its `run` (and its `validate`) a `Spec`: a read-only view of the config that answers
for those fields and raises `SpecError` for any other, including `in`, `.get` and iteration. So what a
stage reads, what its spec holds and what its fingerprint covers are one list by construction: a stage
that reads a field it does not list fails on its first read (the smoke pipelines read every stage), it
cannot silently reuse stale results. Sections a stage reads whole come back as locked copies (real
ConfigDicts, so library code takes them), one per read: nothing a stage does to one reaches the config or
its next read.
"""
from __future__ import annotations

import copy

import ml_collections


class SpecError(RuntimeError):
  """A stage read a config field outside its spec (a bug in the stage: list the field in its `reads`)."""


def _matches(pattern: str, path: str) -> bool:
  """Whether `path` is `pattern` or below it (`*` matches any one key)."""
  pp, parts = pattern.split("."), path.split(".")
  return len(parts) >= len(pp) and all(a in ("*", b) for a, b in zip(pp, parts))


def _below(pattern: str, path: str) -> bool:
  """Whether `pattern` names something strictly below `path`."""
  pp, parts = pattern.split("."), path.split(".")
  return len(pp) > len(parts) and all(a in ("*", b) for a, b in zip(pp, parts))


class Spec:
  """A read-only view of `config` limited to the dotted paths `reads` (less `ignores`) and `locations`
  (read, never ignored); `stage` names the stage in errors."""

  __slots__ = ("_node", "_path", "_reads", "_ignores", "_locations", "_stage", "_cache")

  def __init__(self, config, reads, ignores=(), stage: str = "", locations=(), _path: str = ""):
    object.__setattr__(self, "_node", config)
    object.__setattr__(self, "_path", _path)
    object.__setattr__(self, "_reads", tuple(dict.fromkeys(tuple(reads) + tuple(locations))))
    object.__setattr__(self, "_ignores", tuple(ignores))
    object.__setattr__(self, "_locations", tuple(locations))
    object.__setattr__(self, "_stage", stage)
    object.__setattr__(self, "_cache", {})

  # -- which paths are visible
  def _sub(self, key) -> str:
    return f"{self._path}.{key}" if self._path else str(key)

  def _ignored(self, path: str) -> bool:
    if any(path == r or path.startswith(r + ".") for r in self._locations):
      return False
    return any(_matches(i, path) for i in self._ignores)

  def _covered(self, path: str) -> bool:
    return not self._ignored(path) and any(path == r or path.startswith(r + ".") for r in self._reads)

  def _visible(self, path: str) -> bool:
    return self._covered(path) or (not self._ignored(path) and any(r.startswith(path + ".") for r in self._reads))

  def _whole(self, path: str) -> bool:
    return self._covered(path) and not any(_below(i, path) for i in self._ignores)

  def _refuse(self, path: str):
    raise SpecError(f"stage {self._stage or '?'} read {path}, which is not in its spec (add it to the "
                    f"stage's reads: {', '.join(self._reads)})")

  # -- reading
  def _value(self, key, default=None, has_default=False):
    path = self._sub(key)
    if not self._visible(path):
      self._refuse(path)
    if path in self._cache:
      return self._cache[path]
    node = self._node
    if key not in node:
      if has_default:
        return default
      raise AttributeError(f"{path}: no such field in the config")
    value = node[key]
    if isinstance(value, (ml_collections.ConfigDict, dict)) and not self._whole(path):
      value = Spec(value, self._reads, self._ignores, self._stage, self._locations, path)
      self._cache[path] = value
      return value
    if isinstance(value, (ml_collections.ConfigDict, dict)):      # a fresh copy per read: what a stage
      value = ml_collections.ConfigDict(copy.deepcopy(value.to_dict() if hasattr(value, "to_dict") else value))
      value.lock()                                                # does to it stays with that read
    elif isinstance(value, (list, set)):
      value = copy.deepcopy(value)
    return value

  def __getattr__(self, key):
    if key.startswith("__"):
      raise AttributeError(key)
    return self._value(key)

  def __getitem__(self, key):
    return self._value(key)

  def get(self, key, default=None):
    return self._value(key, default, has_default=True)

  def __contains__(self, key) -> bool:
    if not self._visible(self._sub(key)):
      self._refuse(self._sub(key))
    return key in self._node

  def keys(self):
    return [k for k in self._node.keys() if self._visible(self._sub(k))]

  def __iter__(self):
    return iter(self.keys())

  def __len__(self) -> int:
    return len(self.keys())

  def items(self):
    return [(k, self._value(k)) for k in self.keys()]

  def values(self):
    return [self._value(k) for k in self.keys()]

  def to_dict(self) -> dict:
    return {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in self.items()}

  def __setattr__(self, key, value):
    raise SpecError(f"stage {self._stage or '?'} wrote {self._sub(key)}: a spec is read-only")

  __setitem__ = __setattr__

  def __repr__(self) -> str:
    return f"Spec({self._stage}: {self.to_dict()!r})"
