"""What the table commands share (`experiments.compare_seeds`, `experiments.compare_runs`): a bad argument
or run directory ends the command with one line, `error: ...`, and exit status 2; a table is printed and,
with --out, also written to a file."""
from __future__ import annotations

import sys


def fail(message) -> None:
  """`error: <message>` on stderr, exit status 2."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def emit(text: str, out: str = "") -> None:
  """Print `text`; with `out`, also write it there."""
  print(text, flush=True)
  if out:
    with open(out, "w") as f:
      f.write(text)
