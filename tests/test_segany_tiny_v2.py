"""segany-tiny v2 (issue 13, in training): its encoder's shapes, and the training script that
will make its weights, run end to end on a tiny budget."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from segany.errors import ConfigError
from segany.modeling.build import build_model
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
    """All eight stages (2 steps each; three of them at 256 px), then the held-out evaluation."""
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
    for stage in (1, 2, 3, 4, 5, 6, 7, 8):
        lines = (runs / f"stage{stage}" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == [1, 2]
    for split in ("scenes", "photo"):
        report = json.loads((runs / f"eval_{split}.json").read_text())
        assert report["encoding_ms"] > 0
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


def test_the_same_weights_run_at_a_lower_input_size():
    """Stages 2 and 3 train at 256 px: the learned positions (a 32 x 32 grid) are resized to
    the 16 x 16 stride-16 grid, and the weights keep their shapes, so they load back at 512."""
    spec = get_spec("segany-tiny-v2")
    half = spec.at_image_size(256)
    assert half.image_size == 256 and half.embedding_size == 32
    assert spec.at_image_size(512) is spec
    full = build_sam("segany-tiny-v2", pretrained=False, seed=0)
    small = build_model(half).eval()
    small.load_state_dict(full.state_dict())  # strict: same keys, same shapes
    image = torch.rand(1, 3, 256, 256)
    with torch.inference_mode():
        assert small.image_encoder(image).shape == (1, 128, 32, 32)
        # At the learned grid's own size nothing is resized: the model is unchanged.
        again = build_model(spec.at_image_size(256).at_image_size(512)).eval()
        again.load_state_dict(full.state_dict())
        big = torch.rand(1, 3, 512, 512)
        assert torch.equal(again.image_encoder(big), full.image_encoder(big))
    assert detect_variant(small.state_dict()) == "segany-tiny-v2"
    loaded = build_sam("segany-tiny-v2", pretrained=False, seed=0, image_size=256)
    assert loaded.image_size == 256 and loaded.spec.image_size == 256


def test_lower_input_size_is_refused_where_the_weights_do_not_allow_it():
    with pytest.raises(ConfigError, match="1024 px only"):
        get_spec("vit_b").at_image_size(512)
    with pytest.raises(ConfigError, match="multiple of 16"):
        get_spec("segany-tiny-v2").at_image_size(100)


def test_every_v2_config_loads_and_starts_from_committed_weights():
    """The stage configs and the IoU-head experiment parse, and every checkpoint they name
    (the previous stage's weights) is committed."""
    from segany.train.config import load_config

    folder = ROOT / "training/segany-tiny-v2"
    paths = sorted(folder.glob("stage*.toml")) + sorted(folder.glob("experiments/*.toml"))
    assert len(paths) == 9
    for path in paths:
        config = load_config(path)
        assert config.model.name == "segany-tiny-v2"
        if config.model.checkpoint is not None:
            assert (ROOT / config.model.checkpoint).is_file(), path
    experiment = load_config(folder / "experiments/iou_head.toml")
    assert experiment.model.trainable == "iou_head"
