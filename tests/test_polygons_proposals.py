"""Masks as polygons (the API's and COCO's outlines) and the proposal scorer (AR@100)."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from segany.data.sample import DenseMasks, Sample
from segany.errors import FormatError
from segany.evaluation.proposals import proposal_scores
from segany.formats.polygons import mask_to_polygons


def _rasterise(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    if not polygons:
        return np.zeros((height, width), bool)
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))) > 0


def test_polygons_rasterise_back_to_the_mask_exactly():
    rng = np.random.default_rng(0)
    for _ in range(40):
        mask = np.zeros((40, 50), bool)
        for _ in range(3):
            y, x = rng.integers(0, 35), rng.integers(0, 45)
            h, w = rng.integers(1, 8, 2)
            mask[y : y + h, x : x + w] = True
        np.testing.assert_array_equal(_rasterise(mask_to_polygons(mask), 40, 50), mask)


def test_polygons_are_pixel_corners_largest_first():
    mask = np.zeros((10, 10), bool)
    mask[2, 2] = True
    mask[5:9, 4:9] = True
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 2
    corners = sorted(zip(polygons[1][::2], polygons[1][1::2], strict=True))
    assert corners == [(2, 2), (2, 3), (3, 2), (3, 3)]
    assert mask_to_polygons(np.zeros((4, 4), bool)) == []
    with pytest.raises(FormatError):
        mask_to_polygons(np.zeros((2, 2, 2), bool))


def test_polygons_do_not_depend_on_where_the_mask_sits_in_its_image():
    """The outlines are traced in the mask's tight box: the same mask placed anywhere in a
    larger image (touching its borders or not) gives the same outlines, shifted."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        mask = rng.random((12, 9)) < 0.5
        mask[0, :] = mask[:, 0] = True  # the box is the whole array
        polygons = mask_to_polygons(mask)
        for y0, x0 in ((0, 0), (5, 0), (0, 7), (30, 41)):
            canvas = np.zeros((y0 + 12, x0 + 9 + 3), bool)
            canvas[y0 : y0 + 12, x0 : x0 + 9] = mask
            shifted = [
                [v + (x0 if i % 2 == 0 else y0) for i, v in enumerate(polygon)]
                for polygon in polygons
            ]
            assert mask_to_polygons(canvas) == shifted


def _sample(masks: np.ndarray) -> Sample:
    return Sample(image=np.zeros((*masks.shape[1:], 3), np.uint8), masks=DenseMasks(masks))


def test_proposals_scores_perfect_partial_and_empty_generators():
    masks = np.zeros((3, 64, 64), bool)
    masks[0, 5:30, 5:30] = masks[1, 35:60, 10:40] = masks[2, 40:50, 45:60] = True
    data = [_sample(masks)]

    def perfect(image):
        return [{"segmentation": m, "predicted_iou": 0.9} for m in masks]

    def one(image):
        return perfect(image)[:1]

    assert proposal_scores(perfect, data).ar100 == pytest.approx(1.0)
    partial = proposal_scores(one, data)
    assert partial.ar100 == pytest.approx(1 / 3) and partial.proposals == 1
    empty = proposal_scores(lambda image: [], data)
    assert empty.ar100 == 0.0 and empty.objects == 3
