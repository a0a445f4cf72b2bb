"""cl_limits: can a frozen imitator of learning histories keep learning? (see README.md)"""


def comma_list(spec) -> list[str]:
  """The names in a comma-separated config field ('a, b,,c' -> ['a', 'b', 'c']; '' or None -> [])."""
  return [s.strip() for s in str(spec or "").split(",") if s.strip()]
