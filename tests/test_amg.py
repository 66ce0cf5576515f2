"""AutomaticMaskGenerator behaviour beyond reference parity: options, inputs, the optional
covered-point skipping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import synthetic_image
from segany import AutomaticMaskGenerator, ConfigError, ImageError, build_sam
from test_amg_parity import _engineer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_sam("test_tiny", pretrained=False)


@pytest.mark.parametrize(
    "options, phrase",
    [
        (dict(points_per_side=None), "exactly one of points_per_side and point_grids"),
        (dict(point_grids=[np.zeros((4, 2))]), "exactly one of points_per_side and point_grids"),
        (dict(points_per_side=0), "points_per_side must be >= 1"),
        (dict(points_per_batch=0), "points_per_batch must be >= 1"),
        (dict(crop_n_layers=-1), "crop_n_layers must be >= 0"),
        (dict(crop_n_layers=9), "crop_n_layers must be >= 0 and <= 4"),
        (dict(pred_iou_thresh=88), "pred_iou_thresh must be at most 1"),
        (dict(stability_score_thresh=1.5), "stability_score_thresh must be at most 1"),
        (dict(box_nms_thresh=1.5), "box_nms_thresh must be in [0, 1]"),
        (dict(crop_overlap_ratio=1.0), "crop_overlap_ratio"),
        (dict(output_mode="png"), "output_mode must be one of"),
        (dict(min_mask_region_area=-3), "min_mask_region_area"),
        (
            dict(points_per_side=None, point_grids=[np.zeros((4, 2))], crop_n_layers=1),
            "one grid per crop layer",
        ),
    ],
)
def test_bad_options_raise_config_error(model, options, phrase):
    with pytest.raises(ConfigError, match=phrase.replace("[", r"\[").replace("]", r"\]")):
        AutomaticMaskGenerator(model, **options)


def test_bad_images_raise_image_error(model):
    generator = AutomaticMaskGenerator(model, points_per_side=2)
    for bad in (np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), "x"):
        with pytest.raises(ImageError):
            generator.generate(bad)
    assert isinstance(generator.generate(synthetic_image(40, 50)), list)  # still usable


def test_pil_input_and_explicit_grid(model):
    image = synthetic_image(60, 80)
    grid = [np.array([[0.25, 0.25], [0.75, 0.5]])]
    generator = AutomaticMaskGenerator(
        model, points_per_side=None, point_grids=grid, pred_iou_thresh=0.0,
        stability_score_thresh=0.0, box_nms_thresh=1.0,
    )  # fmt: skip
    from_array = generator.generate(image)
    from_pil = generator.generate(Image.fromarray(image))
    assert len(from_array) == len(from_pil) == 6  # 2 points x 3 masks, nothing filtered
    for a, b in zip(from_array, from_pil, strict=True):
        assert np.array_equal(a["segmentation"], b["segmentation"])
        assert a["segmentation"].shape == (60, 80)


def test_skip_covered_points_prompts_fewer_points():
    torch.manual_seed(0)
    model = _engineer(build_sam("test_tiny", pretrained=False))
    image = synthetic_image(180, 240, seed=7)
    options = dict(points_per_side=12, points_per_batch=16, pred_iou_thresh=0.3,
                   stability_score_thresh=0.6)  # fmt: skip
    prompted = {}
    results = {}
    for skip in (False, True):
        generator = AutomaticMaskGenerator(model, skip_covered_points=skip, **options)
        original = generator.predictor.predict_low_res_torch
        count = [0]

        def counting(coords, *args, _original=original, _count=count, **kwargs):
            _count[0] += coords.shape[0]
            return _original(coords, *args, **kwargs)

        generator.predictor.predict_low_res_torch = counting
        results[skip] = generator.generate(image)
        prompted[skip] = count[0]
    assert prompted[False] == 144
    assert prompted[True] < prompted[False]
    assert 0 < len(results[True]) <= len(results[False])
    # Most masks found with skipping are also found without it; the rest won NMS only because
    # an overlapping competitor's point was skipped.
    baseline = [r["segmentation"] for r in results[False]]
    found = [
        max((m & r["segmentation"]).sum() / (m | r["segmentation"]).sum() for m in baseline) >= 0.99
        for r in results[True]
    ]
    assert np.mean(found) >= 0.7
