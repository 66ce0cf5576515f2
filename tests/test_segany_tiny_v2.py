"""segany-tiny v2 (issue 13), the built-in default model: its shipped weights and their
held-out report, what they reach on held-out scenes that random weights cannot, the README's
Quick-start disc, its encoder's shapes, and the training script that made the weights, run end
to end on a tiny budget."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segany.checkpoints import read_state_dict
from segany.cli.main import main
from segany.data.spec import open_dataset
from segany.errors import ConfigError
from segany.evaluation import EvalConfig, Evaluator
from segany.modeling.build import build_model
from segany.modeling.config import PyramidEncoderConfig
from segany.modeling.pyramid_encoder import PyramidEncoder
from segany.predictor import SamPredictor
from segany.registry import DEFAULT_MODEL, build_sam, detect_variant, get_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = get_spec("segany-tiny-v2")
STAGES = ROOT / "training/segany-tiny-v2/checkpoints"
LAST_STAGE = 12
SHIPPED_REPORT = ROOT / "src/segany/weights/segany_tiny_v2.eval.json"
HELD_OUT = {"scenes": "scenes:test:30:512", "photo": "photo:test:30:512", "drawn": "drawn:test:30"}
# 1-point mIoU floors on a few held-out scenes (24 masks): below what the shipped weights score
# there (0.691 / 0.588 before edge refinement), far above random weights (0.018 on both).
FLOORS = {"scenes:test:3:512": 0.6, "photo:test:3:512": 0.5}


@pytest.fixture(scope="module")
def shipped() -> SamPredictor:
    return SamPredictor(build_sam("segany-tiny-v2"))


def test_is_the_default_and_ships_the_last_stages_weights():
    assert DEFAULT_MODEL == "segany-tiny-v2"
    path = SPEC.bundled_path
    assert path is not None and path.is_file() and path.suffix == ".safetensors"
    assert path.stat().st_size <= 25 * 2**20
    weights = read_state_dict(path)
    assert detect_variant(weights) == "segany-tiny-v2"
    # train.sh copies its last stage into the package: the shipped file is that stage's.
    script = (ROOT / "training/segany-tiny-v2/train.sh").read_text(encoding="utf-8")
    assert f"\nLAST_STAGE={LAST_STAGE} " in script
    assert path.read_bytes() == (STAGES / f"stage{LAST_STAGE}.safetensors").read_bytes()
    loaded = build_sam().state_dict()  # the default model, with its weights by default
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())


def test_shipped_report_is_the_held_out_evaluation_of_those_weights():
    """src/segany/weights/segany_tiny_v2.eval.json: train.sh's three `segany eval` reports of
    the last stage, with every row of issue 13's table and no machine path."""
    reports = json.loads(SHIPPED_REPORT.read_text(encoding="utf-8"))
    assert set(reports) == set(HELD_OUT)
    for split, report in reports.items():
        assert report["model"] == "segany-tiny-v2"
        assert (
            report["checkpoint"]
            == f"training/segany-tiny-v2/checkpoints/stage{LAST_STAGE}.safetensors"
        )
        assert report["data"] == HELD_OUT[split] and report["images"] == 30
        assert {"one_point_miou", "oracle_miou", "noc85", "noc90", "boundary_f"} <= report.keys()
        assert "objects" in report["size_split"] and report["amg"]["ar100"] > 0
        assert report["encoding_ms"] > 0
        # Scored as users get the masks: with the model's own edge refinement.
        refinement = SPEC.edge_refinement
        assert report["edge_refinement"] == dataclasses.asdict(refinement)
        assert "/work/" not in json.dumps(report) and "/tmp/" not in json.dumps(report)


def disc_iou(mask: np.ndarray) -> float:
    """IoU of an (480, 640) mask with the sample's yellow disc (centre (330, 190), radius
    100 px)."""
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    disc = (xx - 330) ** 2 + (yy - 190) ** 2 <= 100**2
    return float((mask & disc).sum() / (mask | disc).sum())


def test_quick_start_click_gives_a_clean_disc(shipped):
    """The README's Quick start: one click on the sample's disc, the mask the model chooses."""
    image = np.asarray(Image.open(ROOT / "examples" / "sample.png").convert("RGB"))
    shipped.set_image(image)
    masks, scores, _ = shipped.predict(np.array([[330, 190]]), np.array([1]))
    assert disc_iou(masks[int(np.argmax(scores))]) >= 0.95


def test_cli_predict_runs_the_built_in_model_without_download(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEGANY_HOME", str(tmp_path / "empty_home"))
    out = tmp_path / "mask.png"
    sample = str(ROOT / "examples" / "sample.png")
    assert main(["predict", sample, "--point", "330,190", "--out", str(out)]) == 0
    assert disc_iou(np.asarray(Image.open(out)) > 0) >= 0.95


@pytest.mark.parametrize("spec", sorted(FLOORS))
def test_shipped_weights_reach_a_floor_random_weights_cannot(shipped, spec):
    """A quick version of the README's held-out evaluation."""
    data = open_dataset(spec)
    config = EvalConfig(max_clicks=3)
    trained = Evaluator(shipped, config).evaluate(data, max_masks=24)
    random = SamPredictor(build_sam("segany-tiny-v2", pretrained=False, seed=0))
    untrained = Evaluator(random, config).evaluate(data, max_masks=24)
    assert trained.one_point_miou >= FLOORS[spec], trained.one_point_miou
    assert untrained.one_point_miou < FLOORS[spec] / 2, untrained.one_point_miou


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
    """Every stage up to LAST_STAGE (2 steps each; three of them at 256 px), then the held-out
    evaluation; the smoke run leaves the shipped weights alone."""
    shipped_before = SPEC.bundled_path.read_bytes()
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
    for stage in range(1, LAST_STAGE + 1):
        lines = (runs / f"stage{stage}" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == [1, 2]
    for split in HELD_OUT:
        report = json.loads((runs / f"eval_{split}.json").read_text())
        assert report["encoding_ms"] > 0
        # Scored as users get the masks: with the model's own edge refinement.
        refinement = SPEC.edge_refinement
        assert report["edge_refinement"] == dataclasses.asdict(refinement)
        assert report["model"] == "segany-tiny-v2" and report["images"] == 1
        assert {"boundary_f", "amg"} <= report.keys()
    assert SPEC.bundled_path.read_bytes() == shipped_before


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
    """The stage configs (stage1 ... stage{LAST_STAGE}, what train.sh runs) and the experiments
    parse, and every checkpoint they name (the previous stage's weights) is committed."""
    from segany.train.config import load_config

    folder = ROOT / "training/segany-tiny-v2"
    stages = sorted(path.name for path in folder.glob("stage*.toml"))
    assert stages == sorted(f"stage{n}.toml" for n in range(1, LAST_STAGE + 1))
    experiments = sorted(folder.glob("experiments/*.toml"))
    assert experiments
    for path in [folder / name for name in stages] + experiments:
        config = load_config(path)
        assert config.model.name == "segany-tiny-v2"
        if config.model.checkpoint is not None:
            assert (ROOT / config.model.checkpoint).is_file(), path
    experiment = load_config(folder / "experiments/iou_head.toml")
    assert experiment.model.trainable == "iou_head"
