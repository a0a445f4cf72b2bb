r"""Train DQN teachers and record their learning histories.

  python -m experiments.teachers --config=experiments/configs/darkroom.py --workdir=runs/darkroom

Re-running the same command resumes a killed run from its last segment and skips a finished one.
"""
from experiments import main

if __name__ == "__main__":
  main.run(("teachers",))
