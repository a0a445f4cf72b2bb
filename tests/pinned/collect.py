"""Collects the numbers of every summary a finished run wrote, for the pinned-results test.

  python tests/pinned/collect.py RUN_DIR OUT.json     (writes the pinned numbers of RUN_DIR)

Every `summary.json` (and the transplant's per-game `entry.json`) under the run directory is flattened to
{"<file>:<key path>": value}; timings, paths and config echoes are left out (they are not results)."""
import json
import math
import os
import sys

import pytest

SKIP_KEYS = {"wall_s", "tokens_per_s", "dir", "sources", "protocol", "learner", "config", "fingerprint",
             "fingerprints", "reads", "inputs"}


def flatten(obj, prefix, out):
  if isinstance(obj, dict):
    for k, v in obj.items():
      if k in SKIP_KEYS:
        continue
      flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
  elif isinstance(obj, list):
    for i, v in enumerate(obj):
      flatten(v, f"{prefix}[{i}]", out)
  else:
    out[prefix] = obj


def collect(workdir: str) -> dict:
  out = {}
  for root, _, files in os.walk(workdir):
    for f in files:
      if f in ("summary.json", "entry.json") and "checkpoints" not in root and "tb" not in root.split(os.sep):
        rel = os.path.relpath(os.path.join(root, f), workdir)
        with open(os.path.join(root, f)) as fh:
          flatten(json.load(fh), rel + ":", out)
  return dict(sorted(out.items()))


def compare(workdir, name):
  with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name)) as f:
    want = json.load(f)
  got = collect(workdir)
  missing = sorted(set(want) - set(got))
  assert not missing, f"{len(missing)} pinned numbers missing, e.g. {missing[:5]}"
  bad = []
  for k, v in want.items():
    g = got[k]
    if isinstance(v, float) and isinstance(g, (int, float)):
      if math.isnan(v) and math.isnan(g):          # a ratio undefined in both runs (a data end of 0)
        continue
      if g != pytest.approx(v, rel=1e-5, abs=1e-9):
        bad.append((k, v, g))
    elif g != v:
      bad.append((k, v, g))
  assert not bad, f"{len(bad)} of {len(want)} pinned numbers changed, e.g. {bad[:5]}"


if __name__ == "__main__":
  # RUN_DIR must come from a run under the test suite's device setup (four virtual CPU devices; the MinAtar
  # teachers' numbers depend on it): e.g. the suite's own fixture directory, /tmp/pytest-of-*/.../
  # transplant_smoke0.
  with open(sys.argv[2], "w") as fh:
    json.dump(collect(sys.argv[1]), fh, indent=0, sort_keys=True)
