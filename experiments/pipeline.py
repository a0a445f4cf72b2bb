r"""The main job: every stage of the study for one config, resumable, ending in report.md.

  python -m experiments.pipeline --config=experiments/configs/darkroom.py --workdir=runs/darkroom
  python -m experiments.pipeline --config=experiments/configs/darkroom.py:smoke --workdir=runs/smoke
"""
from experiments import main

if __name__ == "__main__":
  main.run()
