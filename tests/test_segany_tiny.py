"""segany-tiny, the first built-in model (the default until segany-tiny-v2): its encoder, its
registry entry, the weights shipped in the package, and that those weights really segment (on
held-out synthetic scenes and on the README's sample); the experiment scripts of its notes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segany import SamPredictor, build_sam
from segany.checkpoints import read_state_dict
from segany.cli.main import main
from segany.data.spec import open_dataset
from segany.errors import ImageError
from segany.evaluation import EvalConfig, Evaluator
from segany.modeling.build import build_model
from segany.modeling.config import ConvEncoderConfig
from segany.modeling.conv_encoder import ConvEncoder
from segany.registry import DEFAULT_MODEL, detect_variant, get_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SPEC = get_spec("segany-tiny")


def test_ships_its_weights_but_is_no_longer_the_default():
    assert DEFAULT_MODEL == "segany-tiny-v2"
    path = SPEC.bundled_path
    assert path is not None and path.is_file() and path.suffix == ".safetensors"
    assert path.stat().st_size <= 25 * 2**20
    assert detect_variant(read_state_dict(path)) == "segany-tiny"


def test_encoder_is_small_and_maps_the_input_to_the_embedding_grid():
    model = build_sam("segany-tiny", pretrained=False)
    assert sum(p.numel() for p in model.image_encoder.parameters()) <= 10_000_000
    size, grid = SPEC.image_size, SPEC.embedding_size
    with torch.no_grad():
        out = model.image_encoder(torch.zeros(2, 3, size, size))
    assert out.shape == (2, SPEC.decoder.transformer_dim, grid, grid)
    with pytest.raises(ImageError, match="expects a"):
        model.image_encoder(torch.zeros(1, 3, size + 8, size))


def test_stride_4_variant_gives_full_resolution_masks():
    # The feature-pyramid option (not shipped; see training/segany-tiny/NOTES.md): a 64 x 64
    # embedding of the 256 px input, so the decoder's low-res logits have one value per pixel.
    spec = dataclasses.replace(SPEC, encoder=ConvEncoderConfig(stride=4), bundled=None)
    model = build_model(spec).eval()
    predictor = SamPredictor(model)
    predictor.set_image(np.random.default_rng(0).integers(0, 255, (200, 256, 3), np.uint8))
    assert predictor.features.shape == (1, SPEC.decoder.transformer_dim, 64, 64)
    masks, scores, low_res = predictor.predict(np.array([[100.0, 80.0]]), np.array([1]))
    assert masks.shape == (3, 200, 256) and low_res.shape == (3, 256, 256)
    # Not mistaken for the shipped stride-8 segany-tiny (same pos_embed grid, extra layers).
    assert detect_variant(model.state_dict()) is None


def test_conv_encoder_config_rejects_sizes_off_the_grid():
    with pytest.raises(ValueError, match="stride must be 4 or 8"):
        ConvEncoderConfig(stride=16)
    with pytest.raises(ValueError, match="multiple of 8"):
        ConvEncoderConfig(img_size=100)
    with pytest.raises(ValueError, match="heads"):
        ConvEncoder(ConvEncoderConfig(dims=(8, 18), num_heads=4))


def test_pretrained_loads_the_shipped_weights_and_pretrained_false_does_not():
    shipped = read_state_dict(SPEC.bundled_path)
    trained = build_sam("segany-tiny").state_dict()
    assert all(torch.equal(trained[k], v) for k, v in shipped.items())
    torch.manual_seed(0)
    random = build_sam("segany-tiny", pretrained=False).state_dict()
    key = "mask_decoder.iou_token.weight"
    assert not torch.equal(random[key], shipped[key])


def test_frozen_encoder_keeps_batch_norm_statistics(tmp_path):
    """Fine-tuning the decoder must not move the encoder's batch-norm running statistics."""
    from segany.train.config import TrainConfig
    from segany.train.trainer import Trainer

    config = TrainConfig.from_dict(
        {
            "data": {"train": "synthetic:train:4:64"},
            "model": {"name": "segany-tiny", "trainable": "decoder"},
            "optim": {"batch_size": 2, "masks_per_image": 2, "warmup_steps": 1},
            "loop": {
                "max_steps": 2,
                "iterations": 2,
                "output_dir": str(tmp_path / "run"),
                "progress": False,
                "device": "cpu",
            },
        }
    )
    weights = Trainer(config).fit()
    before = build_sam("segany-tiny", pretrained=False).state_dict()
    after = read_state_dict(weights)
    stats = [k for k in before if k.startswith("image_encoder.") and "running" in k]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)


def test_shipped_model_segments_held_out_scenes():
    """A quick version of the README's evaluation on a few test-split scenes: the shipped
    weights score 0.47 1-point and 0.62 oracle mIoU here, random weights 0.015; the bounds
    catch weights that were not trained or that got worse."""
    predictor = SamPredictor(build_sam("segany-tiny"))
    data = open_dataset("synthetic:test:6:256")
    summary = Evaluator(predictor, EvalConfig(max_clicks=5)).evaluate(data, max_masks=40)
    assert summary.masks == 40
    assert summary.one_point_miou >= 0.42 and summary.oracle_miou >= 0.57


def test_shipped_model_finds_the_sample_objects():
    image = np.asarray(Image.open(EXAMPLES / "sample.png").convert("RGB"))
    predictor = SamPredictor(build_sam("segany-tiny"))
    predictor.set_image(image)
    # The yellow disc: centre (330, 190), radius ~100 px in the 640 x 480 sample.
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    disc = (xx - 330) ** 2 + (yy - 190) ** 2 <= 98**2
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[330, 190]]), point_labels=np.array([1])
    )
    best = masks[int(np.argmax(scores))]
    iou = (best & disc).sum() / (best | disc).sum()
    assert iou >= 0.8, iou


def test_cli_runs_it_by_name_without_download(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEGANY_HOME", str(tmp_path / "empty_home"))
    out = tmp_path / "mask.png"
    argv = ["predict", str(EXAMPLES / "sample.png"), "--point", "330,190", "--out", str(out)]
    code = main([*argv, "--model", "segany-tiny"])
    assert code == 0, capsys.readouterr().err
    mask = np.asarray(Image.open(out)) > 0
    assert 0.05 < mask.mean() < 0.3


@pytest.mark.parametrize("name", ["segany-tiny", "segany-tiny-v2"])
def test_download_and_models_say_the_weights_ship(name, capsys):
    assert main(["download", name]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(get_spec(name).bundled_path)
    assert "nothing to download" in captured.err
    assert main(["models"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.split()[0] == name)
    assert "bundled" in row
    assert ("[default]" in row) == (name == DEFAULT_MODEL)


def test_random_weights_flag_still_gives_an_untrained_model(tmp_path, capsys):
    out = tmp_path / "mask.png"
    argv = ["predict", str(EXAMPLES / "sample.png"), "--point", "330,190", "--random-weights"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "random weights" in capsys.readouterr().err


def _experiment_module(name: str):
    """Load training/segany-tiny/experiments/NAME.py (a script folder, not a package)."""
    import importlib.util

    path = Path(__file__).parents[1] / f"training/segany-tiny/experiments/{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ceilings_pooling_keeps_grid_aligned_squares_and_loses_dots():
    ceilings = _experiment_module("ceilings")
    square = np.zeros((64, 64), dtype=bool)
    square[16:32, 8:24] = True  # two stride-8 cells wide and high, on the grid
    seen = ceilings.pooled(square, 8)
    assert not (seen & ~square).any()  # nothing outside the square
    # Bilinear upsampling rounds off the corners (0.5625 ** 2 < 0.5 at the corner pixel) and
    # keeps the rest: 6 px lost at each corner, none along the sides.
    ys, xs = np.nonzero(square & ~seen)
    assert len(ys) == 24
    corners = [(16, 8), (16, 23), (31, 8), (31, 23)]
    assert all(
        min(max(abs(y - cy), abs(x - cx)) for cy, cx in corners) <= 2
        for y, x in zip(ys, xs, strict=True)
    )
    dot = np.zeros((64, 64), dtype=bool)
    dot[10:13, 10:13] = True  # 9 px: under half of an 8 x 8 cell
    assert not ceilings.pooled(dot, 8).any()


def test_ceilings_script_prints_a_row_per_size_class(capsys, monkeypatch):
    ceilings = _experiment_module("ceilings")
    monkeypatch.setattr("sys.argv", ["ceilings.py", "--data", "scenes:test:2:96"])
    ceilings.main()
    lines = capsys.readouterr().out.splitlines()
    assert "scenes:test:2:96" in lines[0]
    assert "smallest" in lines[1] and "stride 8" in lines[1]
    rows = {line.split()[0]: [float(v) for v in line.split()[2:]] for line in lines[2:]}
    assert "all" in rows and "objects" in rows
    for values in rows.values():
        assert all(0.0 <= v <= 1.0 for v in values)
    ambiguous, random_choice, smallest = rows["all"][:3]
    if ambiguous == 0:  # no click in two masks: every choice rule is perfect
        assert random_choice == smallest == 1.0


V2_STAGE7 = "training/segany-tiny-v2/checkpoints/stage7.safetensors"


@pytest.mark.parametrize(
    "options",
    [
        ["--images", "1", "--size", "128"],
        ["--model", "segany-tiny-v2", "--checkpoint", V2_STAGE7, "--data", "scenes:val:1:128"],
    ],
)
def test_choice_script_compares_the_iou_head_with_fixed_outputs_and_the_oracle(
    capsys, monkeypatch, options
):
    choice = _experiment_module("choice")
    monkeypatch.chdir(Path(__file__).parents[1])
    monkeypatch.setattr("sys.argv", ["choice.py", *options])
    choice.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[2:4] == ["IoU", "head"]
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[1:]}
    values = dict(zip(["count", *choice.CHOICES], rows["all"], strict=True))
    assert values["count"] >= 1
    three = ("IoU head", "output 0", "output 1", "output 2", "stability", "IoUxstab")
    oracle = values["oracle"]
    # The oracle is the best of the three outputs, mask by mask: no rule choosing among them
    # beats it, and SAM 2's dynamic rule takes either one of them or the single-mask output.
    assert all(0.0 <= values[c] <= oracle + 1e-9 <= 1.0 + 1e-9 for c in three)
    assert 0.0 <= values["single"] <= 1.0 and 0.0 <= values["dynamic"] <= 1.0


def test_choice_rows_dynamic_rule_takes_the_single_mask_or_the_iou_heads_pick():
    from segany.data.spec import open_dataset

    choice = _experiment_module("choice")
    rows = choice.choice_rows(
        SamPredictor(build_sam("segany-tiny")), open_dataset("scenes:val:1:128")
    )
    assert rows
    for row in rows:
        assert row["dynamic"] in (row["single"], row["IoU head"])
        assert row["oracle"] == max(row["output 0"], row["output 1"], row["output 2"])


def test_warm_stride4_init_copies_the_shipped_weights_and_starts_the_new_branch_at_zero(
    tmp_path, monkeypatch
):
    import segany.registry

    # The script registers its variant: keep that out of the registry the other tests see.
    monkeypatch.setattr(segany.registry, "_SPECS", dict(segany.registry._SPECS))
    warm = _experiment_module("warm_stride4")
    config = Path(__file__).parents[1] / "training/segany-tiny/experiments/e6.toml"
    text = config.read_text().replace('"runs/exp/e6"', f'"{(tmp_path / "e6").as_posix()}"')
    (tmp_path / "e6.toml").write_text(text)
    monkeypatch.setattr("sys.argv", ["warm_stride4.py", str(tmp_path / "e6.toml"), "--init-only"])
    warm.main()
    init = torch.load(tmp_path / "e6" / "init.pth", weights_only=True)
    shipped = build_sam("segany-tiny").state_dict()
    for key, value in shipped.items():
        assert torch.equal(init[key], value), key
    new = sorted(set(init) - set(shipped))
    assert new and all(k.startswith(("image_encoder.lateral", "image_encoder.fuse")) for k in new)
    assert not init["image_encoder.lateral.1.weight"].any()


def test_edges_script_prints_a_row_per_radius(capsys, monkeypatch):
    """experiments/edges.py: the click protocol with the refinement off and at each radius,
    on the same masks."""
    edges = _experiment_module("edges")
    monkeypatch.chdir(Path(__file__).parents[1])
    argv = ["edges.py", "--data", "scenes:val:1:128", "--radius", "0", "4"]
    monkeypatch.setattr("sys.argv", argv)
    edges.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| radius |") and len(lines) == 4
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[0] for row in rows] == ["off", "4"]
    assert rows[0][1] == rows[1][1] and int(rows[0][1]) > 0  # the same masks
    for row in rows:
        one, oracle, boundary = float(row[2]), float(row[3]), float(row[5])
        assert 0 <= one <= oracle <= 1 and 0 <= boundary <= 1
