# Sourced by the GPU visit scripts (gpu_session.sh, gpu_one_stream.sh): `record_machine OUT_DIR PYTHON`
# writes OUT_DIR/machine.txt (nvidia-smi, versions, devices) and prints it, then logs GPU memory and
# utilisation every 5 s to OUT_DIR/gpu_usage.csv until the calling script exits.
record_machine() {
  local out=$1 py=$2
  {
    date -u
    nvidia-smi 2>&1 || echo "no nvidia-smi"
    "$py" -c "import sys, jax; from importlib.metadata import version as v; print(sys.version); \
print(*(f'{p} {v(p)}' for p in ('jax', 'jaxlib', 'flax', 'optax', 'gymnax', 'orbax-checkpoint'))); print(jax.devices())"
  } >"$out/machine.txt" 2>&1
  cat "$out/machine.txt"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu --format=csv -l 5 \
      >"$out/gpu_usage.csv" 2>/dev/null &
    smi=$!
    trap 'kill $smi 2>/dev/null' EXIT
  fi
}
