"""The numbers the :smoke main job and the MinAtar transplant smoke wrote before the stages redesign
(tests/pinned/*.json, made by tests/pinned/collect.py from runs of the code as it was) come out again:
same files, same keys, same arm order, same values."""
import json
import os

import pytest

from pinned.collect import collect

HERE = os.path.dirname(os.path.abspath(__file__))


def _compare(workdir, name):
  with open(os.path.join(HERE, "pinned", name)) as f:
    want = json.load(f)
  got = collect(workdir)
  missing = sorted(set(want) - set(got))
  assert not missing, f"{len(missing)} pinned numbers missing, e.g. {missing[:5]}"
  bad = []
  for k, v in want.items():
    g = got[k]
    if isinstance(v, float) and isinstance(g, (int, float)):
      if g != pytest.approx(v, rel=1e-5, abs=1e-9):
        bad.append((k, v, g))
    elif g != v:
      bad.append((k, v, g))
  assert not bad, f"{len(bad)} of {len(want)} pinned numbers changed, e.g. {bad[:5]}"


def test_smoke_pipeline_reproduces_its_pinned_numbers(smoke_pipeline):
  _compare(smoke_pipeline[0], "darkroom_smoke.json")


def test_transplant_smoke_reproduces_its_pinned_numbers(transplant_pipeline):
  _compare(transplant_pipeline[0], "transplant_smoke.json")
