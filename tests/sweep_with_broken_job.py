"""A sweep file for tests: two capacity smoke runs and one job whose config cannot be built."""
from experiments.configs import capacity

NAME = "capacity"            # writes where the capacity sweep does, so the report picks its rows up
base_config = capacity.base_config
get_config = capacity.get_config


def sweep(preset: str = ""):
  del preset
  return [("ctx1-small", "smoke,ctx1-small"), ("ctx2-small", "smoke,ctx2-small"),
          ("broken", "smoke,ctx2-huge")]
