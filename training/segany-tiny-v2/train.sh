#!/usr/bin/env bash
# Train segany-tiny v2 (issue 13) from nothing, in three resumable `segany train` stages:
#
#     bash training/segany-tiny-v2/train.sh            # the real run (uses CUDA when present)
#     bash training/segany-tiny-v2/train.sh --smoke    # every step on a tiny budget (CI)
#
# Each stage resumes from its OUTPUT_DIR/last.pt when run again, so an interrupted run is
# continued by running the script again. The held-out evaluation (scenes: and photo: test
# splits, boundary F, AR@100) is written beside the weights in runs/segany-tiny-v2/.
# Photo scenes use scikit-image's bundled photos (pip install "segany[train]"); on Debian,
# `apt-get install mate-backgrounds` adds nature photos to the training split only.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=training/segany-tiny-v2
# $SEGANY_RUNS moves the run folder (the smoke test runs in a temporary folder).
runs="${SEGANY_RUNS:-runs}/segany-tiny-v2"
smoke=0
eval_count=30
if [ "${1:-}" = "--smoke" ]; then
    smoke=1
    runs="$runs-smoke"
    eval_count=1
fi
for stage in 1 2 3; do
    args=(--config "$here/stage$stage.toml")
    if [ "$smoke" = 1 ] || [ "$runs" != runs/segany-tiny-v2 ]; then
        args+=(--set loop.max_steps=2 --set loop.val_every=2 --set loop.checkpoint_every=1
               --set optim.warmup_steps=1 --set data.val_images=1 --set data.val_masks=2
               --set "loop.output_dir=$runs/stage$stage")
        if [ "$stage" != 1 ]; then
            args+=(--set "model.checkpoint=$runs/stage$((stage - 1))/model.pth")
        fi
        if [ "$stage" = 3 ]; then
            args+=(--set loop.iterations=3)
        fi
    fi
    segany train "${args[@]}"
done
weights="$runs/stage3/model.safetensors"
for split in scenes photo; do
    segany eval --model segany-tiny-v2 --checkpoint "$weights" --amg --quiet --json \
        --data "$split:test:$eval_count:512" > "$runs/eval_$split.json"
done
cat "$runs"/eval_*.json
