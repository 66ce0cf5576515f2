"""segany-tiny v2 (issue 13, in training): its encoder's shapes, and the training script that
will make its weights, run end to end on a tiny budget."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import torch

from segany.modeling.config import PyramidEncoderConfig
from segany.modeling.pyramid_encoder import PyramidEncoder
from segany.registry import build_sam, detect_variant, get_spec

ROOT = Path(__file__).resolve().parents[1]


def test_pyramid_encoder_gives_a_stride_8_embedding_within_the_parameter_budget():
    spec = get_spec("segany-tiny-v2")
    assert isinstance(spec.encoder, PyramidEncoderConfig) and spec.image_size == 512
    model = build_sam("segany-tiny-v2", pretrained=False, seed=0)
    assert sum(p.numel() for p in model.parameters()) <= 10_000_000
    assert detect_variant(model.state_dict()) == "segany-tiny-v2"
    small = PyramidEncoder(PyramidEncoderConfig(img_size=64, dims=(8, 16, 24), num_heads=2))
    with torch.inference_mode():
        assert small(torch.rand(2, 3, 64, 64)).shape == (2, 128, 8, 8)


def test_training_script_runs_end_to_end_on_a_tiny_budget(tmp_path):
    """All three stages (2 steps each), then the held-out evaluation of the result."""
    env = {**os.environ, "SEGANY_RUNS": str(tmp_path), "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        ["bash", str(ROOT / "training/segany-tiny-v2/train.sh"), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "segany-tiny-v2-smoke"
    for stage in (1, 2, 3):
        lines = (runs / f"stage{stage}" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == [1, 2]
    for split in ("scenes", "photo"):
        report = json.loads((runs / f"eval_{split}.json").read_text())
        assert report["model"] == "segany-tiny-v2" and report["images"] == 1
        assert {"boundary_f", "amg"} <= report.keys()


def test_the_committed_stage_checkpoints_load_and_continue_the_run():
    """train.sh's next stage starts from the committed stage weights: they must load."""
    folder = ROOT / "training/segany-tiny-v2/checkpoints"
    stages = sorted(folder.glob("stage*.safetensors"))
    assert stages, "stage 1's weights are committed"
    for path in stages:
        model = build_sam("segany-tiny-v2", checkpoint=path)
        assert detect_variant(model.state_dict()) == "segany-tiny-v2"
        log = path.with_suffix(".jsonl").read_text().splitlines()
        assert json.loads(log[-1])["step"] == len(log)
