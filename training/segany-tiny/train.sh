#!/usr/bin/env bash
# Train segany-tiny from scratch and install it as the shipped weights:
#
#     bash training/segany-tiny/train.sh
#
# Two `segany train` stages (see the .toml files beside this script), each resumable: run the
# script again after an interruption and it continues from the last checkpoint. About 2 hours
# on a 2-core CPU. Then the logs and the held-out evaluation are copied next to the weights.
set -euo pipefail
cd "$(dirname "$0")/../.."
weights=src/segany/weights
segany train --config training/segany-tiny/stage1.toml
segany train --config training/segany-tiny/stage2.toml
mkdir -p "$weights"
cp runs/segany-tiny/stage2/model.safetensors "$weights/segany_tiny.safetensors"
cp runs/segany-tiny/stage1/metrics.jsonl "$weights/segany_tiny.stage1.jsonl"
cp runs/segany-tiny/stage2/metrics.jsonl "$weights/segany_tiny.stage2.jsonl"
# --checkpoint names the file just copied: without it `segany eval` loads the installed
# package's own weights, which after a non-editable install are the old ones. The path is
# relative to the repository, so the JSON records no path of this machine.
segany eval --model segany-tiny --checkpoint "$weights/segany_tiny.safetensors" \
    --data synthetic:test:50:256 --json > "$weights/segany_tiny.eval.json"
cat "$weights/segany_tiny.eval.json"
