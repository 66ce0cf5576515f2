#!/usr/bin/env bash
# Stage-1 experiments in parallel on one GPU machine, each cut off after $1 seconds;
# metrics land in $OUT (or runs/exp). Usage: bash training/segany-tiny/experiments/sweep.sh 480
set -u
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=4 PYTHONPATH=src:${PYTHONPATH:-}
dir=training/segany-tiny/experiments
for e in ${EXPERIMENTS:-e1:8 e2:4 e3:4 e4:4}; do  # NAME:STRIDE
  name=${e%%:*} stride=${e##*:}
  timeout "${SECONDS_LIMIT:-480}" python3 $dir/run.py $dir/$name.toml $stride > runs_$name.log 2>&1 &
done
wait
for e in $(ls runs/exp); do cp runs/exp/$e/metrics.jsonl "${OUT:-runs/exp}/$e.jsonl"; tail -2 runs_$e.log; done
