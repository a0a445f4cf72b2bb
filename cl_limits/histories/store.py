"""On-disk store of learning histories: time chunks, a manifest, atomic writes, a validating reader.

Layout of a store directory:

  chunk_00000.npz   one teacher segment: every History field as [seeds, tasks, streams, T_chunk, ...]
  chunk_00000.json  the chunk's size and sha256, written after the chunk itself
  manifest.json     written last, by `finalize`: env, tasks, seeds, config, field shapes and dtypes,
                    streams per learner, and every chunk with its checksum. No manifest = incomplete.

Every file is written to a temporary name, fsynced and renamed, so a killed write never leaves a file
that reads as valid. Boolean observations (MinAtar) are bit-packed along their flattened feature axis.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any

import numpy as np

from cl_limits.histories.history import BEHAVIOUR_FIELDS, FIELDS, NOT_RECORDED, History

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class HistoryStoreError(ValueError):
  """A history store is missing, incomplete, corrupt or does not match what was asked for."""


def atomic_write_bytes(path: str, data: bytes) -> None:
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
  try:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)
  except OSError:
    pass


def read_json(path: str) -> Any | None:
  """The JSON object at path, or None when there is no such file."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def atomic_write_json(path: str, obj: Any) -> None:
  atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _chunk_name(i: int) -> str:
  return f"chunk_{i:05d}"


def _pack(name: str, x: np.ndarray, time_axis: int):
  """Bit-pack boolean observations: [..., T, *step] -> [..., T, ceil(prod(step) / 8)] uint8."""
  if name == "obs" and x.dtype == np.bool_:
    flat = x.reshape(x.shape[:time_axis + 1] + (-1,))
    return np.packbits(flat, axis=-1), True
  return x, False


def _unpack(x: np.ndarray, step_shape, time_axis: int):
  n = int(np.prod(step_shape))
  bits = np.unpackbits(x, axis=-1, count=n).astype(bool)
  return bits.reshape(x.shape[:time_axis + 1] + tuple(step_shape))


class HistoryWriter:
  """Writes chunks as they are produced; `finalize` seals the store with its manifest.

  Args:
    directory: the store directory (created).
    meta: JSON-able description (env, tasks, seeds, config, streams per learner ...) copied to the manifest.
    time_axis: index of the time axis in every field (3 for [seeds, tasks, streams, T, ...]).
  """

  def __init__(self, directory: str, meta: dict, time_axis: int = 3):
    self.directory = directory
    self.meta = meta
    self.time_axis = time_axis
    os.makedirs(directory, exist_ok=True)

  def write_chunk(self, index: int, history: History) -> None:
    arrays, packed, fields = {}, {}, {}
    for name in FIELDS:
      if getattr(history, name) is None:       # a History without the behaviour record
        continue
      x = np.asarray(getattr(history, name))
      fields[name] = {"dtype": x.dtype.str, "shape": list(x.shape)}
      arrays[name], packed[name] = _pack(name, x, self.time_axis)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)   # zero-heavy bit-packed frames and small ints compress well
    data = buf.getvalue()
    path = os.path.join(self.directory, _chunk_name(index) + ".npz")
    atomic_write_bytes(path, data)
    atomic_write_json(os.path.join(self.directory, _chunk_name(index) + ".json"), {
        "file": os.path.basename(path), "bytes": len(data), "sha256": _sha256(data),
        "length": int(history.action.shape[self.time_axis]), "fields": fields, "packed": packed})

  def finalize(self, num_chunks: int) -> dict:
    chunks = []
    for i in range(num_chunks):
      side = os.path.join(self.directory, _chunk_name(i) + ".json")
      if not os.path.exists(side):
        raise HistoryStoreError(f"cannot finalize {self.directory}: chunk {i} was never written ({side})")
      with open(side) as f:
        chunks.append(json.load(f))
    first = chunks[0]["fields"]
    total = sum(c["length"] for c in chunks)
    fields = {}
    for name, spec in first.items():
      shape = list(spec["shape"])
      shape[self.time_axis] = total
      fields[name] = {"dtype": spec["dtype"], "shape": shape, "packed": chunks[0]["packed"][name]}
    manifest = {"format_version": FORMAT_VERSION, "time_axis": self.time_axis, "length": total,
                "fields": fields, "chunks": chunks, **self.meta}
    atomic_write_json(os.path.join(self.directory, MANIFEST), manifest)
    return manifest


def is_complete(directory: str) -> bool:
  return os.path.exists(os.path.join(directory, MANIFEST))


def read_manifest(directory: str) -> dict:
  path = os.path.join(directory, MANIFEST)
  if not os.path.isdir(directory):
    raise HistoryStoreError(f"history store {directory} does not exist (run experiments/teachers.py first)")
  if not os.path.exists(path):
    raise HistoryStoreError(
        f"history store {directory} has no {MANIFEST}: it is incomplete (a teacher run that was killed "
        "before it finished leaves no manifest; run the same command again to resume it)")
  try:
    with open(path) as f:
      manifest = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise HistoryStoreError(f"{path} is not valid JSON ({e}); the store is corrupt") from None
  if manifest.get("format_version") != FORMAT_VERSION:
    raise HistoryStoreError(f"{path}: format_version {manifest.get('format_version')} is not "
                            f"{FORMAT_VERSION}")
  return manifest


def _read_chunk(directory: str, chunk: dict, fields: dict, time_axis: int) -> dict:
  path = os.path.join(directory, chunk["file"])
  if not os.path.exists(path):
    raise HistoryStoreError(f"history chunk {path} is missing")
  with open(path, "rb") as f:
    data = f.read()
  if len(data) != chunk["bytes"]:
    raise HistoryStoreError(f"history chunk {path} is truncated or padded: {len(data)} bytes on disk, "
                            f"{chunk['bytes']} in the manifest")
  if _sha256(data) != chunk["sha256"]:
    raise HistoryStoreError(f"history chunk {path} is corrupt: its sha256 does not match the manifest")
  try:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
      raw = {k: z[k] for k in z.files}
  except Exception as e:  # a checksummed file that numpy cannot parse: written by something else
    raise HistoryStoreError(f"history chunk {path} cannot be read as npz: {e}") from None
  out = {}
  for name, spec in chunk["fields"].items():
    if name not in raw:
      raise HistoryStoreError(f"history chunk {path} lacks field {name!r}")
    x = raw[name]
    if chunk["packed"][name]:
      x = _unpack(x, spec["shape"][time_axis + 1:], time_axis)
    if list(x.shape) != list(spec["shape"]) or x.dtype.str != spec["dtype"]:
      raise HistoryStoreError(f"history chunk {path}: field {name!r} is {x.dtype.str}{list(x.shape)}, "
                              f"the manifest says {spec['dtype']}{spec['shape']}")
    want = fields[name]
    if x.dtype.str != want["dtype"] or [d for i, d in enumerate(x.shape) if i != time_axis] != [
        d for i, d in enumerate(want["shape"]) if i != time_axis]:
      raise HistoryStoreError(f"history chunk {path}: field {name!r} {x.dtype.str}{list(x.shape)} does "
                              f"not match the store's {want['dtype']}{want['shape']}")
    out[name] = x
  return out


def load(directory: str, expect: dict | None = None) -> tuple[History, dict]:
  """Reads and validates a whole store. Returns (History [seeds, tasks, streams, T, ...], manifest).

  `expect`: manifest entries that must match (e.g. {"env": "DarkRoom"}); a mismatch is an error.
  Raises HistoryStoreError naming the file for a missing, incomplete, truncated or corrupt store.
  """
  manifest = read_manifest(directory)
  for key, value in (expect or {}).items():
    if manifest.get(key) != value:
      raise HistoryStoreError(f"history store {directory}: {key} is {manifest.get(key)!r}, "
                              f"expected {value!r}")
  axis = manifest["time_axis"]
  parts = [_read_chunk(directory, c, manifest["fields"], axis) for c in manifest["chunks"]]
  arrays = {name: np.concatenate([p[name] for p in parts], axis=axis) for name in FIELDS
            if name in manifest["fields"]}
  missing = [f for f in FIELDS if f not in arrays and f not in BEHAVIOUR_FIELDS]
  if missing:
    raise HistoryStoreError(f"history store {directory}: its manifest lists no field {missing[0]!r}")
  lead = arrays["action"].shape
  for name in BEHAVIOUR_FIELDS:      # a store made before the behaviour policy was recorded: "not recorded"
    if name not in arrays:
      arrays[name] = np.full(lead, NOT_RECORDED[name], np.int32 if name == "greedy" else np.float32)
  for name, spec in manifest["fields"].items():
    if list(arrays[name].shape) != spec["shape"]:
      raise HistoryStoreError(f"history store {directory}: field {name!r} totals {list(arrays[name].shape)}"
                              f", the manifest says {spec['shape']}")
  return History(**arrays), manifest
