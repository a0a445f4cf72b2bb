#!/usr/bin/env bash
# One GPU visit for the one-stream DarkRoom P2 arm at imitator sizes and budgets a CPU cannot train: several
# pipelines at once on one device, each reusing the same teachers (made on a CPU and carried), each its own
# run directory. Everything lands in OUT_DIR as it goes; a stopped visit keeps what was written.
#
#   bash benchmarks/gpu_one_stream.sh OUT_DIR [SECONDS=540] [TEACHERS=runs/gpu_src/one_stream_fast] [PRESET=fast,alone]
#
# TEACHERS `make` trains the preset's teachers on the device first (experiments.teachers into
# /tmp/gpu_runs/teachers; its log is teachers.log): for teachers too large to carry (the 64 MiB limit),
# e.g. PRESET=fast,x8,alone. The runs (name: overrides of experiments/configs/one_stream.py:PRESET) are the
# RUNS array below. OUT_DIR
# receives machine.txt, gpu_usage.csv (memory and utilisation every 5 s), <name>.log (each pipeline's own
# log: progress, ETA, the P2 line and its verdicts) and <name>.tar.gz (the run's report, summaries, curves
# and TensorBoard events; no checkpoints). PYTHON names the interpreter.
set -uo pipefail
out=${1:?usage: gpu_one_stream.sh OUT_DIR [SECONDS] [TEACHERS]}
budget=${2:-540}
teachers=${3:-runs/gpu_src/one_stream_fast}
preset=${4:-fast,alone}
start=$(date +%s)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
py=${PYTHON:-$(command -v python || command -v python3)}

m() { echo "--config.imitation.model.$1"; }
t() { echo "--config.imitation.train.$1"; }
upd() { echo "--config.imitation.arms.ad_early.updates=$1 $(t num_updates=$1)"; }
# name|overrides (updates_per_segment 1,000; everything not named is the config's)
RUNS=(
  "w64_b128_u10k|$(upd 10000) $(t batch_size=128)"
  "w128_l6_b64_u8k|$(upd 8000) $(t batch_size=64) $(t lr=5e-4) $(m width=128) $(m layers=6)"
  "w256_b64_u5k|$(upd 5000) $(t batch_size=64) $(t lr=3e-4) $(m width=256) $(m heads=8)"
)
# RUNS_OVERRIDE="name|flags;name|flags" replaces them (a smoke check on a CPU, another grid on the device).
if [ -n "${RUNS_OVERRIDE:-}" ]; then IFS=';' read -ra RUNS <<< "$RUNS_OVERRIDE"; fi

# The machine and versions, then GPU memory and utilisation every 5 s for the whole visit.
. "$(dirname "$0")/gpu_machine.sh"
record_machine "$out" "$py"

if [ "$teachers" = make ]; then
  teachers=/tmp/gpu_runs/teachers
  timeout $(( budget - ($(date +%s) - start) - 60 )) "$py" -m experiments.teachers \
    --config=experiments/configs/one_stream.py:"$preset" --workdir="$teachers" 2>&1 | tee "$out/teachers.log"
fi
limit=$(( budget - ($(date +%s) - start) - 25 ))
pids=()
for r in "${RUNS[@]}"; do
  name=${r%%|*}; flags=${r#*|}
  # shellcheck disable=SC2086
  timeout "$limit" "$py" -m experiments.pipeline --config=experiments/configs/one_stream.py:"$preset" \
    --workdir="/tmp/gpu_runs/$name" --config.teachers_from="$teachers" \
    --config.imitation.train.updates_per_segment=1000 --config.imitation.train.models_at_once=0 $flags \
    >"$out/$name.log" 2>&1 &
  pids+=($!)
  echo "# $name: pid ${pids[-1]}, at most $limit s: $flags"
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; echo "# ${RUNS[$i]%%|*} exit: $? (124: stopped by the time limit)" | tee -a "$out/${RUNS[$i]%%|*}.log"
done
for r in "${RUNS[@]}"; do
  name=${r%%|*}
  [ -d "/tmp/gpu_runs/$name" ] && tar -czf "$out/$name.tar.gz" -C "/tmp/gpu_runs/$name" \
    --exclude='checkpoints' --exclude='*.msgpack' --exclude='ocdbt*' --exclude='best' . 2>/dev/null
  grep -E "^\[p2\]|verdicts|<-|done in" "$out/$name.log" | sed "s/^/$name: /"
done
ls -la "$out"
echo "# visit: $(( $(date +%s) - start )) s"
