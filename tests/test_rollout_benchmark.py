"""benchmarks/rollout_throughput.py at the Breakout study's model (which reads exploration marks), one model
per rollout as the stages roll out: it runs and prints one parsable line per horizon."""
import re
import subprocess
import sys


def test_rollout_benchmark_runs_at_breakout_shapes_with_a_model_per_rollout():
  res = subprocess.run([sys.executable, "benchmarks/rollout_throughput.py", "--shapes=breakout", "--contexts=8",
                        "--horizon=20", "--naive_steps=4", "--batch=2", "--models", "--repeats=1"],
                       capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  lines = [ln for ln in res.stdout.splitlines() if ln.startswith("context=")]
  assert [re.search(r"horizon=(\d+)", ln).group(1) for ln in lines] == ["20", "200"]
  for ln in lines:
    assert float(re.search(r"cached_steps_per_s=(\d+)", ln).group(1)) > 0
