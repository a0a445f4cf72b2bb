"""What the table commands share (`experiments.compare_seeds`, `experiments.compare_runs`): a bad argument
or run directory ends the command with one line, `error: ...`, and exit status 2; a table is printed and,
with --out, also written to a file. And the compile cache every pipeline main opens (`experiments.main`).
No flags are defined here, so any module may import it."""
from __future__ import annotations

import os
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


def compile_cache(flag: str | None, environ=os.environ) -> str:
  """The compile cache directory a main uses ('' for none): the flag when given, else
  $JAX_COMPILATION_CACHE_DIR when set, else ~/.cache/cl_limits/jax."""
  if flag is not None:
    return os.path.expanduser(flag)
  if environ.get("JAX_COMPILATION_CACHE_DIR") is not None:
    return environ["JAX_COMPILATION_CACHE_DIR"]
  return os.path.join(os.path.expanduser("~"), ".cache", "cl_limits", "jax")


def use_compile_cache(path: str) -> None:
  """Turns JAX's persistent compile cache on at `path` (created), or off for ''. The cache is reset, since a
  program compiled earlier in the process (while the flags were read) fixes the directory it was opened at."""
  from jax.experimental.compilation_cache import compilation_cache as cc  # noqa: PLC0415
  if path:
    os.makedirs(path, exist_ok=True)
  cc.set_cache_dir(path or None)
  cc.reset_cache()
