"""What the table commands share (`experiments.compare_seeds`, `experiments.compare_runs`): a bad argument
or run directory ends the command with one line, `error: ...`, and exit status 2; a table is printed and,
with --out, also written to a file. And the compile cache every main that compiles opens (`experiments.main`,
the diagnostics). Importing it defines no flag (`compile_cache_flag` does, when a main calls it), so any
module may import it."""
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


CACHE_HELP = ("Persistent XLA compile cache: a directory, or '' for none. Default: $JAX_COMPILATION_CACHE_DIR if "
              "set, else ~/.cache/cl_limits/jax. A second run of the same shapes (another seed, a resume) reads its "
              "programs instead of compiling them; the programs, and so every number, are the same.")


def compile_cache_flag():
  """Defines `--compile_cache` (a main calls it once, at import) and returns its holder."""
  from absl import flags  # noqa: PLC0415
  return flags.DEFINE_string("compile_cache", None, CACHE_HELP)


def open_compile_cache(holder) -> None:
  """Turns the cache the flag of `compile_cache_flag` names on, before anything compiles in `main`."""
  use_compile_cache(compile_cache(holder.value))


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
