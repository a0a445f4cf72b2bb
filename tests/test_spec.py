"""A stage's spec: the config fields it lists and nothing else (cl_limits/stages/spec.py)."""
import ml_collections
import pytest

from cl_limits.stages.spec import Spec, SpecError


def _config():
  return ml_collections.ConfigDict(dict(
      seed=3, teachers_from="",
      env=dict(name="DarkRoom", kwargs=dict(size=9)),
      imitation=dict(sources="a,b", model=dict(width=64, layers=2), arms=dict(bc=dict(fraction=0.1))),
      experiments=dict(p3=dict(arm="ad", targets=dict(hard=dict(name="DarkRoom", role="transfer")))),
  ))


def test_a_listed_field_reads_and_any_other_read_is_refused_naming_the_stage_and_field():
  s = Spec(_config(), ("seed", "imitation.model"), stage="p1")
  assert s.seed == 3 and s["imitation"].model.width == 64
  for read in (lambda: s.env, lambda: s["teachers_from"], lambda: s.imitation.arms,
               lambda: s.get("env", None), lambda: "env" in s, lambda: "arms" in s.imitation):
    with pytest.raises(SpecError, match=r"stage p1 read (env|teachers_from|imitation\.arms)"):
      read()
  assert sorted(s) == ["imitation", "seed"] and list(s.imitation) == ["model"]
  assert s.to_dict() == {"seed": 3, "imitation": {"model": {"width": 64, "layers": 2}}}


def test_an_absent_listed_field_takes_the_default_and_a_spec_is_read_only():
  s = Spec(_config(), ("experiments",), stage="p2")
  assert s.experiments.get("sensitivity", "none") == "none" and "sensitivity" not in s.experiments
  with pytest.raises(SpecError, match="read-only"):
    s.seed = 4
  section = s.experiments.p3           # a whole section: a copy per read, never the config itself
  section.arm = "bc"
  assert _config().experiments.p3.arm == "ad" and s.experiments.p3.arm == "ad"


def test_ignored_fields_are_refused_and_locations_read_but_stay_out_of_the_fields():
  s = Spec(_config(), ("imitation", "experiments.p3.targets"), stage="imitation",
           ignores=("imitation.sources", "experiments.p3.targets.*.role"), locations=("imitation.sources",))
  assert s.imitation.sources == "a,b"                      # a location: where the data is
  assert s.experiments.p3.targets.hard.name == "DarkRoom"
  with pytest.raises(SpecError, match="experiments.p3.targets.hard.role"):
    _ = s.experiments.p3.targets.hard.role
  assert s.experiments.p3.targets.hard.to_dict() == {"name": "DarkRoom"}
