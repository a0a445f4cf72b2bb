"""The history store: round trip, atomic writes, and a reader that refuses bad files by name."""
import json
import os

import numpy as np
import pytest

from cl_limits.histories import store
from cl_limits.histories.history import History


def make_history(rng, t, obs_shape=(2,), obs_dtype=np.int8):
  shape = (2, 3, 2, t)
  if obs_dtype == np.bool_:
    obs = rng.random(shape + obs_shape) < 0.3
  else:
    obs = rng.integers(0, 9, shape + obs_shape).astype(obs_dtype)
  return History(obs=obs, action=rng.integers(0, 5, shape).astype(np.int32),
                 reward=rng.random(shape).astype(np.float32), terminated=rng.random(shape) < 0.1,
                 truncated=rng.random(shape) < 0.1, episode=rng.integers(0, 9, shape).astype(np.int32),
                 update=rng.integers(0, 9, shape).astype(np.int32),
                 greedy=rng.integers(0, 5, shape).astype(np.int32), epsilon=rng.random(shape).astype(np.float32))


def write_store(tmp_path, rng, **kw):
  parts = [make_history(rng, 5, **kw), make_history(rng, 5, **kw), make_history(rng, 5, **kw)]
  w = store.HistoryWriter(str(tmp_path / "h"), {"env": "DarkRoom", "streams_per_learner": 2})
  for i, p in enumerate(parts):
    w.write_chunk(i, p)
  w.finalize(len(parts))
  return str(tmp_path / "h"), parts


@pytest.mark.parametrize("obs_shape,obs_dtype", [((2,), np.int8), ((10, 10, 7), np.bool_)])
def test_round_trip(tmp_path, rng, obs_shape, obs_dtype):
  d, parts = write_store(tmp_path, rng, obs_shape=obs_shape, obs_dtype=obs_dtype)
  h, manifest = store.load(d, expect={"env": "DarkRoom"})
  for name in ("obs", "action", "reward", "terminated", "truncated", "episode", "update"):
    want = np.concatenate([getattr(p, name) for p in parts], axis=3)
    np.testing.assert_array_equal(getattr(h, name), want)
    assert getattr(h, name).dtype == want.dtype
  assert manifest["length"] == 15 and manifest["streams_per_learner"] == 2


def test_boolean_observations_are_bit_packed(tmp_path, rng):
  d, parts = write_store(tmp_path, rng, obs_shape=(10, 10, 7), obs_dtype=np.bool_)
  manifest = store.read_manifest(d)
  assert manifest["fields"]["obs"]["packed"]
  raw_obs_bytes = sum(p.obs.size for p in parts)  # one byte per bool unpacked
  on_disk = sum(os.path.getsize(os.path.join(d, c["file"])) for c in manifest["chunks"])
  assert on_disk < raw_obs_bytes / 4


def test_truncated_chunk_is_refused_by_name(tmp_path, rng):
  d, _ = write_store(tmp_path, rng)
  path = os.path.join(d, "chunk_00001.npz")
  data = open(path, "rb").read()
  open(path, "wb").write(data[: len(data) // 2])
  with pytest.raises(store.HistoryStoreError, match="chunk_00001.npz is truncated"):
    store.load(d)


def test_corrupted_chunk_is_refused_by_name(tmp_path, rng):
  d, _ = write_store(tmp_path, rng)
  path = os.path.join(d, "chunk_00002.npz")
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2] ^= 0xFF
  open(path, "wb").write(bytes(data))
  with pytest.raises(store.HistoryStoreError, match="chunk_00002.npz is corrupt"):
    store.load(d)


def test_missing_chunk_manifest_and_store(tmp_path, rng):
  d, _ = write_store(tmp_path, rng)
  os.remove(os.path.join(d, "chunk_00000.npz"))
  with pytest.raises(store.HistoryStoreError, match="chunk_00000.npz is missing"):
    store.load(d)
  os.remove(os.path.join(d, store.MANIFEST))
  with pytest.raises(store.HistoryStoreError, match="no manifest.json: it is incomplete"):
    store.load(d)
  with pytest.raises(store.HistoryStoreError, match="does not exist"):
    store.load(str(tmp_path / "nowhere"))


def test_mismatched_expectation_and_shape(tmp_path, rng):
  d, _ = write_store(tmp_path, rng)
  with pytest.raises(store.HistoryStoreError, match="env is 'DarkRoom', expected 'DarkKeyToDoor'"):
    store.load(d, expect={"env": "DarkKeyToDoor"})
  m = json.load(open(os.path.join(d, store.MANIFEST)))
  m["fields"]["reward"]["shape"][1] = 4
  store.atomic_write_json(os.path.join(d, store.MANIFEST), m)
  with pytest.raises(store.HistoryStoreError, match="chunk_00000.npz: field 'reward'"):
    store.load(d)


def test_garbled_manifest(tmp_path, rng):
  d, _ = write_store(tmp_path, rng)
  open(os.path.join(d, store.MANIFEST), "w").write('{"format_version": 1, "chun')
  with pytest.raises(store.HistoryStoreError, match="manifest.json is not valid JSON"):
    store.load(d)


def test_a_killed_write_leaves_no_file_that_reads_as_valid(tmp_path, monkeypatch):
  path = str(tmp_path / "x.bin")
  store.atomic_write_bytes(path, b"old")

  def boom(fd):
    raise KeyboardInterrupt  # the process dies after writing, before the rename
  monkeypatch.setattr(os, "fsync", boom)
  with pytest.raises(KeyboardInterrupt):
    store.atomic_write_bytes(path, b"new and longer")
  assert open(path, "rb").read() == b"old"


def test_a_store_without_the_behaviour_record_loads_as_not_recorded(tmp_path):
  """A store written before the behaviour policy was recorded (no greedy / epsilon fields) still loads:
  greedy -1 and epsilon NaN everywhere, which the fidelity measurement reads as "not recorded"."""
  from cl_limits.histories import datasets  # noqa: PLC0415
  from cl_limits.histories.history import behaviour_recorded  # noqa: PLC0415
  from cl_limits.imitation import fidelity  # noqa: PLC0415
  h = make_history(np.random.default_rng(0), 6)
  old = h.replace(greedy=None, epsilon=None)
  w = store.HistoryWriter(str(tmp_path / "old"), {"env": "toy"})
  w.write_chunk(0, old)
  manifest = w.finalize(1)
  assert "greedy" not in manifest["fields"]
  loaded, _ = store.load(str(tmp_path / "old"))
  assert (np.asarray(loaded.greedy) == -1).all() and np.isnan(np.asarray(loaded.epsilon)).all()
  assert not behaviour_recorded(loaded)
  fd = datasets.select(loaded)
  assert not fidelity.held_out([fd], seq_len=4, max_windows=8).recorded.any()
