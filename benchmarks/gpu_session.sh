#!/usr/bin/env bash
# One timed visit to a GPU box: the machine, the stage timing at a preset's shapes, then the preset itself
# until the time is up. Everything it measures lands in OUT_DIR as it goes, so a stopped visit keeps it.
#
#   bash benchmarks/gpu_session.sh OUT_DIR [SECONDS=540] [CONFIG=experiments/configs/breakout.py:gpu]
#
# OUT_DIR receives: machine.txt (nvidia-smi, versions, devices), gpu_usage.csv (memory and utilisation
# every 5 s; JAX's preallocation is off unless XLA_PYTHON_CLIENT_PREALLOCATE is set, so the memory column
# is what the programs hold), gpu_timing.json / .log (one segment of every costly program and the
# extrapolated total), pipeline.log (the preset's own log: progress and ETA of each stage), run.tar.gz (the run directory's log, stage summaries, curves and TensorBoard events;
# no checkpoints or histories). The run directory itself is $RUN_DIR (default /tmp/gpu_run): run the
# script again with the same RUN_DIR to resume it stage by stage. PYTHON names the interpreter.
set -uo pipefail
out=${1:?usage: gpu_session.sh OUT_DIR [SECONDS] [CONFIG]}
budget=${2:-540}
config=${3:-experiments/configs/breakout.py:gpu}
run_dir=${RUN_DIR:-/tmp/gpu_run}
start=$(date +%s)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
py=${PYTHON:-$(command -v python || command -v python3)}
left() { echo $(( budget - ($(date +%s) - start) )); }

# The machine and versions, then GPU memory and utilisation every 5 s for the whole visit.
. "$(dirname "$0")/gpu_machine.sh"
record_machine "$out" "$py"

# The timing: at most 45% of the visit.
timeout $(( budget * 45 / 100 )) "$py" benchmarks/gpu_timing.py --config="$config" --out="$out/gpu_timing.json" \
  2>&1 | tee "$out/gpu_timing.log"

pack() {
  [ -d "$run_dir" ] || return 0
  tar -czf "$out/run.tar.gz" -C "$run_dir" --exclude='checkpoints' --exclude='histories' --exclude='best' \
    --exclude='*.npz' . 2>/dev/null
  ls -la "$out/run.tar.gz"
}

# The preset, until 20 s before the end (kept for packing what it wrote).
t=$(( $(left) - 20 ))
if [ "$t" -gt 30 ]; then
  echo "# pipeline: $config for at most $t s in $run_dir"
  timeout "$t" "$py" -m experiments.pipeline --config="$config" --workdir="$run_dir" 2>&1 | tee "$out/pipeline.log"
  echo "# pipeline exit: ${PIPESTATUS[0]} (124: stopped by the time limit)" | tee -a "$out/pipeline.log"
fi
pack
echo "# visit: $(( $(date +%s) - start )) s"
