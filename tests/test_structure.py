"""The shape of the code, read from its imports and text: stages share only through the shared stage
modules, the library knows nothing of stages or config paths, no file under cl_limits/ passes 300 lines,
and every path the docs name exists."""
import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "cl_limits")
SHARED = {"base", "spec", "artifacts", "layout", "outputs", "common"}     # what stage modules may import
SECTIONS = ("imitation", "evaluation", "experiments", "teacher", "tasks", "transplant", "env")


def _modules(sub=""):
  for d, _, files in os.walk(os.path.join(PKG, sub)):
    for f in files:
      if f.endswith(".py"):
        yield os.path.join(d, f)


def _imports(path):
  tree = ast.parse(open(path).read())
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      out |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
    elif isinstance(node, ast.Import):
      out |= {a.name for a in node.names}
  return out


def _defines_stage(path):
  return any(isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and getattr(n.value.func, "id", "") == "Stage"
             for n in ast.parse(open(path).read()).body)


def test_no_stage_module_imports_another_stage_module():
  stage_dir = os.path.join(PKG, "stages")
  stages = {f[:-3] for f in os.listdir(stage_dir) if f.endswith(".py") and _defines_stage(os.path.join(stage_dir, f))}
  assert {"teachers", "imitation", "evaluation", "p1", "p2", "p3", "hybrid", "sensitivity", "report"} <= stages
  # A stage may keep helpers beside it (`<stage>_checks.py`, `p2_figures.py`): modules of its own name
  # that define no stage; what any of them imports from cl_limits/stages/ is only the shared modules.
  companions = {f[:-3] for f in os.listdir(stage_dir) if f.endswith(".py") and f[:-3] not in stages
                and f.split("_")[0] in stages}
  bad = []
  for name in stages | companions:
    for imp in _imports(os.path.join(stage_dir, f"{name}.py")):
      if imp.startswith("cl_limits.stages."):
        target = imp.split(".")[2]
        own = target in companions and target.split("_")[0] == name.split("_")[0]
        if target not in SHARED and not own:
          bad.append((name, imp))
  assert not bad, bad


def test_the_library_imports_no_stage_and_names_no_config_path():
  pattern = re.compile(rf"^({'|'.join(SECTIONS)})\.[a-z_]")
  bad = []
  for path in _modules():
    rel = os.path.relpath(path, PKG)
    if rel.startswith(("stages", "report")):
      continue
    bad += [(rel, imp) for imp in _imports(path) if imp.startswith(("cl_limits.stages", "cl_limits.report"))]
    for node in ast.walk(ast.parse(open(path).read())):
      if isinstance(node, ast.Constant) and isinstance(node.value, str) and pattern.match(node.value):
        bad.append((rel, node.lineno, node.value[:60]))
  assert not bad, bad


def test_the_report_reads_the_run_directory_through_layout_only():
  for path in _modules("report"):
    stage_imports = {i for i in _imports(path) if i.startswith("cl_limits.stages")}
    assert stage_imports <= {"cl_limits.stages", "cl_limits.stages.layout", "cl_limits.stages.common",
                             "cl_limits.stages.outputs"}, (path, stage_imports)


def test_no_file_under_cl_limits_passes_300_lines():
  long = {os.path.relpath(p, ROOT): n for p in _modules() if (n := len(open(p).read().splitlines())) > 300}
  assert not long, long


DOCS = ["README.md", "BUILD_NOTES.md"] + [os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                                          if f.endswith(".md")]
PATH = re.compile(r"(?<![\w/.<])((?:cl_limits|experiments|tests|benchmarks|launch|docs|\.ci)/[\w./-]*[\w])")


def _named_paths(text):
  for m in PATH.finditer(text):
    p = m.group(1).split("::")[0].rstrip(".")
    if "<" in p or "*" in p:
      continue
    yield p


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_doc_names_exists(doc):
  missing = sorted({p for p in _named_paths(open(os.path.join(ROOT, doc)).read())
                    if not os.path.exists(os.path.join(ROOT, p))})
  assert not missing, missing


def test_every_path_a_docstring_or_comment_names_exists():
  missing = []
  for d in ("cl_limits", "experiments", "launch", "benchmarks"):
    for base, _, files in os.walk(os.path.join(ROOT, d)):
      for f in files:
        if f.endswith(".py"):
          path = os.path.join(base, f)
          missing += [(os.path.relpath(path, ROOT), p) for p in _named_paths(open(path).read())
                      if not os.path.exists(os.path.join(ROOT, p))]
  assert not missing, missing


def _session_fixtures():
  """The session-scoped fixtures tests/conftest.py defines (each one built once per worker that needs it)."""
  tree = ast.parse(open(os.path.join(ROOT, "tests", "conftest.py")).read())
  return {f.name for f in tree.body if isinstance(f, ast.FunctionDef) for d in f.decorator_list
          if isinstance(d, ast.Call) and any(k.arg == "scope" and getattr(k.value, "value", None) == "session"
                                             for k in d.keywords)}


def test_every_session_fixture_is_built_by_one_xdist_group():
  # `--dist loadgroup` sends a group to one worker: a shared run is built once only if every module that
  # uses it is in one group (conftest.SHARED_GROUPS); another module would build it again on the other worker.
  from conftest import SHARED_GROUPS  # noqa: PLC0415
  names = _session_fixtures()
  assert {"smoke_pipeline", "transplant_pipeline", "darkroom_all_goals"} <= names
  users = {}
  for f in sorted(os.listdir(os.path.join(ROOT, "tests"))):
    if f.startswith("test_") and f.endswith(".py"):
      tree = ast.parse(open(os.path.join(ROOT, "tests", f)).read())
      args = {a.arg for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) for a in node.args.args}
      for name in names & args:
        users.setdefault(name, set()).add(SHARED_GROUPS.get(f[:-3], f[:-3]))
  assert users["smoke_pipeline"] and users["transplant_pipeline"]
  for name, groups in users.items():
    assert len(groups) == 1, f"{name} is used by the groups {sorted(groups)}: put them in conftest.SHARED_GROUPS"


def test_the_readme_test_command_keeps_each_group_on_one_worker(request):
  # pytest >= 9.2 with pytest-xdist 3.8 drops the groups silently (pytest-dev/pytest-xdist#1386): every
  # module's fixtures were then built on both workers. setup.cfg pins pytest below 9.2; this catches a drop.
  if not getattr(request.config.option, "loadgroup", False):
    pytest.skip("checks the README's test command (pytest-xdist with --dist loadgroup)")
  assert request.node.nodeid.endswith("@test_structure"), request.node.nodeid
