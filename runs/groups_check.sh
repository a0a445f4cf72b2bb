#!/bin/bash
# Breakout's rollout stages of runs/breakout14_s1_m3b again with the models in threaded groups
# (experiments.rollout.groups, BUILD_NOTES): their time, and every number against the original run.
cd /work/dr_check
. /work/main/.venv/bin/activate
export JAX_COMPILATION_CACHE_DIR=$HOME/.cache/cl_limits/jax
W=/work/main/runs/breakout14_s1_groups
rm -rf $W && cp -r /work/main/runs/breakout14_s1_m3b $W
rm -f $W/eval/summary.json $W/p1/summary.json $W/p2/summary.json $W/p3/summary.json $W/hybrid/summary.json
git log --oneline | head -1; git status --short | head
date
/usr/bin/time -v python -m experiments.pipeline --config=experiments/configs/breakout.py \
  --workdir=$W --config.seed=1 2>&1 | grep -v "%)" | grep -E "pipeline|\] .*s\)|Elapsed|Maximum" | cut -c1-220
date
python -m experiments.compare_runs /work/main/runs/breakout14_s1_m3b $W | tail -40
