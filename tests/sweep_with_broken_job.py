"""A sweep file for tests: two capacity smoke runs and a third one that the test breaks at run time (a
corrupt file in its run directory)."""
from experiments.configs import capacity

NAME = "capacity"            # writes where the capacity sweep does, so the report picks its rows up


def base_config(preset: str = ""):
  """The main job these jobs belong to: the :smoke one (its fingerprints must match for the report)."""
  del preset
  return capacity.base_config("smoke")


get_config = capacity.get_config


def sweep(preset: str = ""):
  del preset
  return [("ctx1-small", "smoke,ctx1-small"), ("ctx2-small", "smoke,ctx2-small"),
          ("broken", "smoke,ctx1-small")]
