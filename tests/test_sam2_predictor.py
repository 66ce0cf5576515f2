"""SAM 2's image predictor against the reference `SAM2ImagePredictor` (sam2 1.1.0): the same
random weights, loaded from an official-layout checkpoint through `segany.build_sam`, give the
same masks, scores and logits for every prompt kind, for all eight SAM 2 / 2.1 models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segany
from conftest import synthetic_image
from sam2_reference import NAMES, build_reference, reference_predictor, save_checkpoint
from segany import ImageError, PromptError
from segany.sam2_predictor import Sam2Predictor

H, W = 180, 240  # original image: not square, not the input size
HIGH_RES = ("high_res_feat_s0", "high_res_feat_s1")
POINT = dict(point_coords=[[100, 80]], point_labels=[1])
BOX = [20, 30, 200, 150]
CASES = {
    "point": POINT,
    "points_single": dict(
        point_coords=[[100, 80], [30, 40]], point_labels=[1, 0], multimask_output=False
    ),
    "padding_label": dict(point_coords=[[100, 80], [0, 0]], point_labels=[1, -1]),
    "box": dict(box=BOX),
    "box_points": dict(box=BOX, **POINT, multimask_output=False),
    "boxes": dict(box=[BOX, [0, 0, 100, 100], [50, 60, 230, 170]], multimask_output=False),
    "boxes_points": dict(
        box=[BOX, [0, 0, 100, 100]],
        point_coords=[[[100, 80]], [[40, 50]]],
        point_labels=[[1], [0]],
    ),
    "logits": dict(**POINT, return_logits=True),
    "logits_single": dict(**POINT, multimask_output=False, return_logits=True),
    "normalized": dict(
        point_coords=[[0.4, 0.45]], point_labels=[1], normalize_coords=False, return_logits=True
    ),
    "normalized_box": dict(box=[0.1, 0.2, 0.8, 0.9], normalize_coords=False),
}


def assert_matches(got: tuple, want: tuple, logits: bool) -> None:
    """Our (masks, iou, low_res) against the reference's: logits within 1e-3, scores within
    1e-4, boolean masks equal on >= 99.99 % of pixels (the reference returns them as 0/1
    floats)."""
    masks, iou, low_res = got
    want_masks, want_iou, want_low = want
    assert masks.shape == want_masks.shape and iou.shape == want_iou.shape
    assert low_res.shape == want_low.shape
    if logits:
        assert masks.dtype == np.float32
        np.testing.assert_allclose(masks, want_masks, atol=1e-3, rtol=0)
    else:
        assert masks.dtype == bool
        assert (masks == want_masks.astype(bool)).mean() >= 0.9999
    np.testing.assert_allclose(iou, want_iou, atol=1e-4, rtol=0)
    np.testing.assert_allclose(low_res, want_low, atol=1e-3, rtol=0)


@pytest.fixture(scope="module", params=NAMES)
def predictors(request, tmp_path_factory):
    """(reference predictor, ours) on the same random weights at 256 px, ours built by
    `segany.build_sam` from the reference's saved `{"model": state_dict}`."""
    name = request.param
    reference = build_reference(name, image_size=256)
    path = save_checkpoint(reference, tmp_path_factory.mktemp("sam2") / f"{name}.pt")
    ours = segany.build_sam(name, checkpoint=path, image_size=256)
    return reference_predictor(reference), segany.SamPredictor(ours)


def test_prompts_match_reference(predictors):
    reference, ours = predictors
    assert isinstance(ours, Sam2Predictor)
    image = synthetic_image(H, W)
    reference.set_image(image)
    ours.set_image(image)
    features, want = ours.get_image_features(), reference._features
    torch.testing.assert_close(features["image_embed"], want["image_embed"], atol=1e-4, rtol=0)
    for key, expected in zip(HIGH_RES, want["high_res_feats"], strict=True):
        torch.testing.assert_close(features[key], expected, atol=1e-4, rtol=0)
    embedding = ours.get_image_embedding()
    torch.testing.assert_close(embedding, reference.get_image_embedding(), atol=1e-4, rtol=0)
    for name, prompt in CASES.items():
        got, want = ours.predict(**prompt), reference.predict(**prompt)
        try:
            assert_matches(got, want, prompt.get("return_logits", False))
        except AssertionError as e:
            raise AssertionError(f"prompt {name}: {e}") from None
    # Logits that vary (the random weights do not give constant masks).
    assert got[2].std() > 0.1 and 0.01 < (got[0] > 0).mean() < 0.99  # type: ignore[operator]
    # A previous answer as the mask prompt, with and without clicks.
    low_res = ours.predict(**POINT)[2][:1]
    for prompt in (dict(mask_input=low_res), dict(**POINT, mask_input=low_res)):
        assert_matches(ours.predict(**prompt), reference.predict(**prompt), logits=False)


def test_image_batch_matches_reference(predictors):
    reference, ours = predictors
    images = [synthetic_image(H, W, seed=1), synthetic_image(200, 160, seed=2)]
    reference.set_image_batch(images)
    ours.set_image_batch(images)
    prompts = dict(
        point_coords_batch=[np.array([[100, 80]]), np.array([[20, 30], [90, 100]])],
        point_labels_batch=[np.array([1]), np.array([1, 0])],
        box_batch=[None, np.array([10, 20, 150, 190])],
    )
    for multimask in (True, False):
        got = ours.predict_batch(**prompts, multimask_output=multimask)
        want = reference.predict_batch(**prompts, multimask_output=multimask)
        for i in range(len(images)):
            assert_matches(tuple(g[i] for g in got), tuple(w[i] for w in want), logits=False)
    # `predict` then answers for the last image, as the reference's.
    assert_matches(ours.predict(**POINT), reference.predict(**POINT), logits=False)


@pytest.mark.slow
def test_full_size_matches_reference(tmp_path):
    """sam2.1_hiera_t at its own 1024 px input, the size the official weights run at."""
    reference = build_reference("sam2.1_hiera_t", image_size=1024)
    path = save_checkpoint(reference, tmp_path / "sam2.1_hiera_t.pt")
    ours = segany.SamPredictor(segany.build_sam("sam2.1_hiera_t", checkpoint=path))
    reference = reference_predictor(reference)
    image = synthetic_image(300, 400)
    reference.set_image(image)
    ours.set_image(image)
    assert ours.low_res_size == (256, 256)
    for name in ("point", "box_points", "logits_single", "boxes"):
        prompt = CASES[name]
        got, want = ours.predict(**prompt), reference.predict(**prompt)
        assert_matches(got, want, prompt.get("return_logits", False))


# ---- features for an embedding cache, and bad input -------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    model = segany.build_sam("sam2.1_hiera_t", pretrained=False, seed=0, image_size=256)
    predictor = segany.SamPredictor(model)
    predictor.set_image(synthetic_image(H, W))
    return predictor


def test_features_round_trip(tiny):
    features = tiny.get_image_features()
    assert {k: tuple(v.shape) for k, v in features.items()} == {
        "image_embed": (1, 256, 16, 16),
        "high_res_feat_s0": (1, 32, 64, 64),
        "high_res_feat_s1": (1, 64, 32, 32),
    }
    want = tiny.predict(**POINT, return_logits=True)
    other = segany.SamPredictor(tiny.model)
    other.set_image_features(features, (H, W))
    for g, w in zip(other.predict(**POINT, return_logits=True), want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_sam1_features_round_trip():
    model = segany.build_sam("test_tiny", pretrained=False, seed=0)
    predictor = segany.SamPredictor(model)
    assert type(predictor) is segany.SamPredictor
    predictor.set_image(synthetic_image(H, W))
    features = predictor.get_image_features()
    assert list(features) == ["image_embed"]
    other = segany.SamPredictor(model)
    other.set_image_features(features, (H, W))
    for g, w in zip(other.predict(**POINT), predictor.predict(**POINT), strict=True):
        np.testing.assert_array_equal(g, w)
    with pytest.raises(ImageError, match="image_embed"):
        other.set_image_features({"embedding": features["image_embed"]}, (H, W))


def test_bad_features_are_refused(tiny):
    features = tiny.get_image_features()
    other = segany.SamPredictor(tiny.model)
    with pytest.raises(ImageError, match="keys"):
        other.set_image_features({"image_embed": features["image_embed"]}, (H, W))
    with pytest.raises(ImageError, match="high_res_feat_s0"):
        bad = dict(features, high_res_feat_s0=torch.zeros(1, 32, 32, 32))
        other.set_image_features(bad, (H, W))
    with pytest.raises(ImageError, match="original_size"):
        other.set_image_features(features, (0, W))
    with pytest.raises(ImageError, match="image is"):
        other.set_image_features(features, (H, W), image=synthetic_image(10, 10))
    with pytest.raises(ImageError, match="set_image_features"):
        other.set_embedding(features["image_embed"], (H, W))
    assert not other.is_image_set


def test_bad_input_is_refused(tiny):
    fresh = segany.SamPredictor(tiny.model)
    with pytest.raises(PromptError, match="set_image"):
        fresh.predict(**POINT)
    with pytest.raises(PromptError, match="set_image_batch"):
        fresh.predict_batch([np.array([[1, 2]])], [np.array([1])])
    with pytest.raises(ImageError):
        fresh.set_image(np.zeros((10, 10), np.uint8))
    with pytest.raises(ImageError):
        fresh.set_image_batch([])
    with pytest.raises(ImageError, match="stretched"):
        fresh.set_torch_image(torch.zeros(1, 3, 100, 256), (100, 256))
    with pytest.raises(PromptError, match="at least one prompt"):
        tiny.predict()
    with pytest.raises(PromptError, match="point_labels"):
        tiny.predict(point_coords=[[1, 2]])
    with pytest.raises(PromptError, match="label"):
        tiny.predict(point_coords=[[1, 2]], point_labels=[2])
    with pytest.raises(PromptError, match="box"):
        tiny.predict(box=[10, 10, 5, 5])
    with pytest.raises(PromptError, match=r"\(1, 64, 64\)"):
        tiny.predict(**POINT, mask_input=np.zeros((1, 256, 256), np.float32))
    with pytest.raises(PromptError, match="multimask_output"):
        tiny.predict(**POINT, multimask_output="some")


def test_all_outputs_are_the_single_then_the_three(tiny):
    """multimask_output="all" (segany.interactive): the one mask `False` gives, then the 3."""
    for prompt in (POINT, dict(box=BOX)):
        all4 = tiny.predict(**prompt, multimask_output="all", return_logits=True)
        one = tiny.predict(**prompt, multimask_output=False, return_logits=True)
        three = tiny.predict(**prompt, multimask_output=True, return_logits=True)
        for a, o, t in zip(all4, one, three, strict=True):
            np.testing.assert_allclose(a, np.concatenate([o, t]), atol=1e-5, rtol=0)


def test_low_res_path_and_skipping(tiny):
    """predict_low_res_torch (the automatic mask generator's call): input-frame prompts,
    unclipped logits, and prompts below an IoU floor skipped."""
    coords = torch.as_tensor(tiny.to_input_frame(np.array([[[100, 80]], [[30, 40]]])))
    labels = torch.ones(2, 1, dtype=torch.int)
    low_res, iou = tiny.predict_low_res_torch(coords, labels)
    assert low_res.shape == (2, 3, 64, 64) and iou.shape == (2, 3)
    masks, iou2, clipped = tiny.predict_torch(coords, labels)
    assert masks.shape == (2, 3, H, W) and masks.dtype == torch.bool
    torch.testing.assert_close(clipped, low_res.clamp(-32, 32))
    torch.testing.assert_close(iou2, iou)
    floor = float(iou[0].max())  # prompt 0 falls at or below it, prompt 1 may not
    skipped, _ = tiny.predict_low_res_torch(coords, labels, skip_below_iou=floor)
    assert torch.isinf(skipped[0]).all()
    kept = iou[1].max() > floor
    if kept:
        torch.testing.assert_close(skipped[1], low_res[1])
