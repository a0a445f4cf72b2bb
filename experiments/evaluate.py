r"""Roll out the frozen imitators on held-out tasks from an empty context and summarise their returns.

  python -m experiments.evaluate --config=experiments/configs/darkroom.py --workdir=runs/darkroom

Needs a finished imitation stage in the same workdir (experiments/imitate.py). Writes workdir/eval/.
"""
from experiments import main

if __name__ == "__main__":
  main.run(("evaluation",))
