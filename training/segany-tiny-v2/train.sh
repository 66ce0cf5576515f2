#!/usr/bin/env bash
# Train segany-tiny v2 (issue 13) in LAST_STAGE resumable `segany train` stages (1: one prompt
# at 512 px; 2: one prompt at 256 px, four times cheaper per mask; 3: interactive at 256 px;
# 4: interactive at 512 px; 5: one prompt at 256 px again; 6 and 7: one prompt at 512 px;
# 8: interactive at 512 px; 9: short interactive episodes with the IoU head's loss weighed 5x;
# 10: the same, longer, IoU loss at 1x; 11: with the IoU ranking term; 12 and on: the drawn
# scenes interleaved too):
#
#     bash training/segany-tiny-v2/train.sh                 # continue the committed run
#     bash training/segany-tiny-v2/train.sh --from-scratch  # the whole run from nothing
#     bash training/segany-tiny-v2/train.sh --smoke         # every step on a tiny budget (CI)
#
# A finished stage's weights and log are committed in checkpoints/ (stageN.safetensors,
# stageN.jsonl), and the next stage starts from them, so the run spans several sittings: a
# stage whose checkpoint is committed is skipped unless --from-scratch. Within a stage, running
# the script again continues from OUTPUT_DIR/last.pt. Uses CUDA when present. At the end the
# held-out evaluation (scenes:, photo: and drawn: test splits, boundary F, AR@100) goes to the run
# folder, and the last stage's weights with that evaluation to src/segany/weights/ (what the
# package ships as segany-tiny-v2). Photo scenes use scikit-image's photos (pip install "segany[train]"); on Debian,
# `apt-get install mate-backgrounds` adds nature photos to the training split only.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=training/segany-tiny-v2
LAST_STAGE=12  # the shipped weights are this stage's
# $SEGANY_RUNS moves the run folder (the smoke test runs in a temporary folder).
runs="${SEGANY_RUNS:-runs}/segany-tiny-v2"
mode="${1:-}"
checkpoints="$here/checkpoints"
eval_count=30
if [ "$mode" = "--smoke" ]; then
    runs="$runs-smoke"
    checkpoints="$runs/checkpoints"
    eval_count=1
fi
mkdir -p "$checkpoints"
for stage in $(seq 1 "$LAST_STAGE"); do
    if [ "$mode" = "" ] && [ -f "$checkpoints/stage$stage.safetensors" ]; then
        echo "stage $stage: committed in $checkpoints, skipped" >&2
        continue
    fi
    args=(--config "$here/stage$stage.toml" --set "loop.output_dir=$runs/stage$stage")
    if [ "$stage" != 1 ]; then
        args+=(--set "model.checkpoint=$checkpoints/stage$((stage - 1)).safetensors")
    fi
    if [ "$mode" = "--smoke" ]; then
        args+=(--set loop.max_steps=2 --set loop.val_every=2 --set loop.checkpoint_every=1
               --set optim.warmup_steps=1 --set data.val_images=1 --set data.val_masks=2)
        if [ "$stage" = 3 ] || [ "$stage" = 4 ] || [ "$stage" -ge 8 ]; then
            args+=(--set loop.iterations=3)  # the interactive stages: shorter episodes
        fi
    fi
    segany train "${args[@]}"
    cp "$runs/stage$stage/model.safetensors" "$checkpoints/stage$stage.safetensors"
    cp "$runs/stage$stage/metrics.jsonl" "$checkpoints/stage$stage.jsonl"
done
weights="$checkpoints/stage$LAST_STAGE.safetensors"
for data in "scenes:test:$eval_count:512" "photo:test:$eval_count:512" "drawn:test:$eval_count"; do
    segany eval --model segany-tiny-v2 --checkpoint "$weights" --amg --quiet --json \
        --data "$data" > "$runs/eval_${data%%:*}.json"
done
cat "$runs"/eval_*.json
if [ "$mode" != "--smoke" ]; then
    cp "$weights" src/segany/weights/segany_tiny_v2.safetensors
    python -c 'import json, sys; print(json.dumps(
        {s: json.load(open(f"{sys.argv[1]}/eval_{s}.json")) for s in ("scenes", "photo", "drawn")},
        indent=2))' "$runs" > src/segany/weights/segany_tiny_v2.eval.json
fi
