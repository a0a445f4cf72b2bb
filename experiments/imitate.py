r"""Train imitators (AD, snapshot BC, DPT, AD-epsilon arms x seeds) on recorded learning histories.

  python -m experiments.imitate --config=experiments/configs/darkroom.py --workdir=runs/darkroom

Needs the teacher stage's histories in the same workdir (experiments/teachers.py). Re-running the same
command resumes a killed run from its last segment and skips a finished one.
"""
from experiments import main

if __name__ == "__main__":
  main.run(("imitation",))
