"""A sweep file for tests: one capacity smoke run and one job whose config cannot be built."""
from experiments.configs import capacity

NAME = "capacity_bad"


def base_config(preset: str = ""):
  """The main job these jobs belong to: the :smoke one (its fingerprints must match for the report)."""
  del preset
  return capacity.base_config("smoke")


get_config = capacity.get_config


def sweep(preset: str = ""):
  del preset
  return [("ctx1-small", "smoke,ctx1-small"), ("broken", "smoke,ctx2-huge")]
