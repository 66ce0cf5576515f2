"""The interactive click rule (`segany.interactive`): counting contradicted clicks, ranking the
4 outputs, `predict_edit` on a random-weight model and on the shipped one, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import synthetic_image
from segany import PromptError, SamPredictor, build_sam
from segany.interactive import contradicted_clicks, predict_edit, rank_candidates


def square(top: int, bottom: int, left: int, right: int, shape=(40, 60)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top:bottom, left:right] = True
    return mask


def test_contradicted_clicks_counts_foreground_outside_and_background_inside():
    masks = np.stack([square(0, 20, 0, 30), square(20, 40, 30, 60), np.zeros((40, 60), bool)])
    coords = np.array([[5.5, 5.9], [45.0, 30.0], [10.0, 10.0]])  # xy; (5.5, 5.9) is pixel (6, 6)
    labels = np.array([1, 0, 0])
    # mask 0: fg click inside, bg click at (45, 30) outside, bg click at (10, 10) inside -> 1
    # mask 1: fg click outside, bg click inside, bg at (10, 10) outside -> 2
    # mask 2: only the fg click -> 1
    np.testing.assert_array_equal(contradicted_clicks(masks, coords, labels), [1, 2, 1])


def test_padding_labels_and_clicks_off_the_image_count_nothing():
    masks = square(0, 40, 0, 60)[None]
    coords = np.array([[10.0, 10.0], [59.5, 5.0], [-0.6, 3.0], [3.0, 39.5]])
    labels = np.array([-1, 1, 1, 0])  # padding; then three clicks just off the 60 x 40 image
    np.testing.assert_array_equal(contradicted_clicks(masks, coords, labels), [0])
    # Pixel (i, j) is named by (i, j), its centre: a click rounds to the nearest one.
    edge = np.array([[59.4, 5.0], [-0.4, 3.0]])
    np.testing.assert_array_equal(contradicted_clicks(~masks, edge, np.array([1, 1])), [2])


def test_candidates_rank_by_clicks_then_single_first_then_predicted_iou():
    inside, outside = square(0, 20, 0, 30), np.zeros((40, 60), bool)
    coords, labels = np.array([[5.0, 5.0]]), np.array([1])
    # The single output (index 0) honours the click: it comes first whatever the IoUs say.
    masks = np.stack([inside, inside, outside, inside])
    order = rank_candidates(masks, np.array([0.1, 0.5, 0.9, 0.7]), coords, labels)
    np.testing.assert_array_equal(order, [0, 3, 1, 2])
    # It contradicts the click: the multimask outputs that do not go first, by predicted IoU.
    masks = np.stack([outside, inside, outside, inside])
    order = rank_candidates(masks, np.array([0.9, 0.5, 0.8, 0.7]), coords, labels)
    np.testing.assert_array_equal(order, [3, 1, 0, 2])
    # No clicks (a box): the single output, then by predicted IoU.
    order = rank_candidates(masks, np.array([0.1, 0.5, 0.8, 0.7]), None, None)
    np.testing.assert_array_equal(order, [0, 2, 3, 1])


@pytest.mark.parametrize(
    ("masks", "coords", "labels", "match"),
    [
        (np.zeros((40, 60), bool), [[1.0, 1.0]], [1], "masks must be"),
        (np.zeros((1, 40, 60), bool), [[1.0, 1.0], [2.0, 2.0]], [1], "labels"),
    ],
)
def test_contradicted_clicks_bad_input(masks, coords, labels, match):
    with pytest.raises(PromptError, match=match):
        contradicted_clicks(masks, np.array(coords), np.array(labels))


# ---- predict_edit on a model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    predictor = SamPredictor(build_sam("test_tiny", pretrained=False))
    predictor.set_image(synthetic_image(48, 80, seed=3))
    return predictor


def test_a_first_click_or_box_gets_the_three_multimask_outputs_by_predicted_iou(predictor):
    for prompt in ({"point_coords": [[30.0, 20.0]], "point_labels": [1]}, {"box": [5, 4, 40, 30]}):
        masks, scores, low_res = predict_edit(predictor, **prompt)
        reference = predictor.predict(**prompt, multimask_output=True)
        order = np.argsort(-reference[1], kind="stable")
        np.testing.assert_array_equal(masks, reference[0][order])
        np.testing.assert_array_equal(scores, reference[1][order])
        np.testing.assert_array_equal(low_res, reference[2][order])


def test_a_later_edit_gets_all_four_outputs_in_the_rules_order(predictor):
    coords, labels = np.array([[30.0, 20.0], [60.0, 40.0]]), np.array([1, 0])
    previous = predictor.predict(coords[:1], labels[:1])[2][:1]  # (1, h, w)
    masks, scores, low_res = predict_edit(predictor, coords, labels, mask_input=previous)
    every = predictor.predict(coords, labels, mask_input=previous, multimask_output="all")
    order = rank_candidates(every[0], every[1], coords, labels)
    assert masks.shape == (4, 48, 80) and scores.shape == (4,) and len(low_res) == 4
    np.testing.assert_array_equal(masks, every[0][order])
    np.testing.assert_array_equal(low_res, every[2][order])
    contradicted = contradicted_clicks(masks, coords, labels)
    assert list(contradicted) == sorted(contradicted)  # fewest contradicted first
    two_clicks = predict_edit(predictor, coords, labels)  # no earlier answer: still 4
    assert len(two_clicks[0]) == 4


@pytest.mark.parametrize(
    ("prompt", "match"),
    [
        ({"box": [[0, 0, 10, 10], [5, 5, 20, 20]]}, "one box"),
        ({"point_coords": [[[1.0, 1.0]], [[2.0, 2.0]]], "point_labels": [[1], [1]]}, "one set"),
        ({"point_coords": [[1.0, 1.0]], "point_labels": [7]}, "point_labels"),
        ({"point_coords": [[1.0, np.nan]], "point_labels": [1]}, "point_coords"),
    ],
)
def test_predict_edit_bad_input(predictor, prompt, match):
    with pytest.raises(PromptError, match=match):
        predict_edit(predictor, **prompt)


def test_predict_refuses_an_unknown_output_choice(predictor):
    with pytest.raises(PromptError, match="multimask_output"):
        predictor.predict([[30.0, 20.0]], [1], multimask_output="both")


def test_the_shipped_model_honours_a_correcting_click_on_the_sample():
    """The Quick start's disc, then a background click on the red block behind it: the answer
    keeps the disc's click inside and the block's outside."""
    from PIL import Image

    sample = Path(__file__).resolve().parents[1] / "examples" / "sample.png"
    image = np.asarray(Image.open(sample).convert("RGB"))
    predictor = SamPredictor(build_sam("segany-tiny-v2"))
    predictor.set_image(image)
    first = predict_edit(predictor, np.array([[330.0, 190.0]]), np.array([1]))
    coords, labels = np.array([[330.0, 190.0], [140.0, 250.0]]), np.array([1, 0])
    masks, _, _ = predict_edit(predictor, coords, labels, mask_input=first[2][:1])
    assert contradicted_clicks(masks[:1], coords, labels)[0] == 0
