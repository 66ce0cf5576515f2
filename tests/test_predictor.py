"""`SamPredictor` on the tiny random-weight model: input checks, shapes, several boxes per call,
embedding reuse, the multi-image batch call, the per-image decoder cache, and equivalence with
the reference predictor called box by box."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import segany
import segany.predictor_base
from conftest import synthetic_image
from segany import ImageError, PromptError, SamPredictor, SeganyError, build_sam
from segany.transforms import coords_to_input_torch

H, W = 48, 80  # a small landscape image; test_tiny's input side is 256
POINT = dict(point_coords=np.array([[30.0, 20.0]]), point_labels=np.array([1]))
BOXES = np.array([[5.0, 4.0, 40.0, 30.0], [20.0, 10.0, 75.0, 45.0], [0.0, 0.0, 79.0, 47.0]])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_sam("test_tiny", pretrained=False).eval()


@pytest.fixture(scope="module")
def image():
    return synthetic_image(H, W, seed=3)


@pytest.fixture
def predictor(model, image):
    predictor = SamPredictor(model)
    predictor.set_image(image)
    return predictor


def _assert_same(a, b, atol=0.0):
    """Two `predict` tuples agree within atol (bool masks: exactly when atol is 0)."""
    assert len(a) == len(b) == 3
    assert a[0].shape == b[0].shape and a[0].dtype == b[0].dtype
    if atol == 0 or a[0].dtype != np.bool_:
        np.testing.assert_allclose(a[0], b[0], atol=atol, rtol=0)
    else:  # a logit within atol of the threshold may flip
        assert (a[0] == b[0]).mean() >= 0.999
    np.testing.assert_allclose(a[1], b[1], atol=atol, rtol=0)
    np.testing.assert_allclose(a[2], b[2], atol=atol, rtol=0)


# ---- bad input raises a typed error that says what to fix -------------------------------------


def test_error_types_are_value_errors():
    for cls in (PromptError, ImageError):
        assert issubclass(cls, SeganyError) and issubclass(cls, ValueError)


def test_predict_before_set_image(model):
    predictor = SamPredictor(model)
    with pytest.raises(PromptError, match="call set_image"):
        predictor.predict(**POINT)
    with pytest.raises(PromptError, match="call set_image"):
        predictor.get_image_embedding()
    with pytest.raises(PromptError, match="call set_image"):
        predictor.predict_torch(None, None, torch.tensor([[0.0, 0.0, 10.0, 10.0]]))


def test_reset_image_makes_predict_fail_again(predictor):
    predictor.predict(**POINT)
    predictor.reset_image()
    assert not predictor.is_image_set
    with pytest.raises(PromptError, match="call set_image"):
        predictor.predict(**POINT)


BAD_IMAGES = {
    "gray_2d": (np.zeros((H, W), np.uint8), "grayscale"),
    "rgba": (np.zeros((H, W, 4), np.uint8), "alpha channel"),
    "one_channel": (np.zeros((H, W, 1), np.uint8), "3 colour channels"),
    "float32": (np.zeros((H, W, 3), np.float32), "uint8"),
    "int64": (np.zeros((H, W, 3), np.int64), "uint8"),
    "empty": (np.zeros((0, 10, 3), np.uint8), "empty"),
    "list": ([[[0, 0, 0]]], "NumPy array or a PIL image"),
    "str": ("image.png", "NumPy array or a PIL image"),
}


@pytest.mark.parametrize("case", BAD_IMAGES, ids=str)
def test_set_image_rejects_bad_images(predictor, case):
    bad, phrase = BAD_IMAGES[case]
    before = predictor.predict(**POINT)
    with pytest.raises(ImageError, match=phrase):
        predictor.set_image(bad)
    # The previous image is still set and answers as before.
    _assert_same(predictor.predict(**POINT), before)


@pytest.mark.parametrize("fmt", ["rgb", "HSV", ""])
def test_set_image_rejects_bad_format(predictor, image, fmt):
    with pytest.raises(ImageError, match="'RGB' or 'BGR'"):
        predictor.set_image(image, image_format=fmt)
    predictor.predict(**POINT)


def _pts(*xy):
    return np.array(xy, dtype=np.float64)


BAD_PROMPTS = {
    "nan_coords": (dict(point_coords=_pts([np.nan, 3.0]), point_labels=[1]), "NaN or infinity"),
    "inf_coords": (dict(point_coords=_pts([np.inf, 3.0]), point_labels=[1]), "NaN or infinity"),
    "label_2": (dict(point_coords=_pts([1, 2]), point_labels=[2]), "1 \\(foreground\\)"),
    "label_half": (dict(point_coords=_pts([1, 2]), point_labels=[0.5]), "0 \\(background\\)"),
    "label_bool": (dict(point_coords=_pts([1, 2]), point_labels=[True]), "-1 \\(padding\\)"),
    "label_str": (dict(point_coords=_pts([1, 2]), point_labels=["fg"]), "1 \\(foreground\\)"),
    "more_labels": (dict(point_coords=_pts([1, 2]), point_labels=[1, 0]), "one label per point"),
    "fewer_labels": (
        dict(point_coords=_pts([1, 2], [3, 4]), point_labels=[1]),
        "one label per point",
    ),
    "coords_only": (dict(point_coords=_pts([1, 2])), "without point_labels"),
    "labels_only": (dict(point_labels=[1]), "without point_coords"),
    "coords_n3": (dict(point_coords=np.ones((2, 3)), point_labels=[1, 1]), "shape \\(N, 2\\)"),
    "coords_1d": (dict(point_coords=np.ones(2), point_labels=[1]), "shape \\(N, 2\\)"),
    "zero_points": (
        dict(point_coords=np.zeros((0, 2)), point_labels=np.zeros(0)),
        "N >= 1",
    ),
    "coords_str": (dict(point_coords="here", point_labels=[1]), "must be numeric"),
    "box_x1_lt_x0": (dict(box=[30, 5, 10, 40]), "x1 >= x0"),
    "box_y1_lt_y0": (dict(box=[5, 30, 40, 10]), "y1 >= y0"),
    "one_bad_box_of_two": (dict(box=[[0, 0, 10, 10], [5, 30, 40, 10]]), "y1 >= y0"),
    "box_3": (dict(box=[1, 2, 3]), "\\(4,\\) or \\(N, 4\\)"),
    "box_2x2x2": (dict(box=np.zeros((2, 2, 2))), "\\(4,\\) or \\(N, 4\\)"),
    "box_empty": (dict(box=np.zeros((0, 4))), "\\(4,\\) or \\(N, 4\\)"),
    "box_nan": (dict(box=[0, 0, np.nan, 10]), "NaN or infinity"),
    "mask_256": (dict(mask_input=np.zeros((256, 256))), "shape \\(1, 64, 64\\)"),
    "mask_2d_low": (dict(mask_input=np.zeros((64, 64))), "shape \\(1, 64, 64\\)"),
    "mask_sam_size": (dict(mask_input=np.zeros((1, 256, 256))), "low_res_logits"),
    "mask_wrong_width": (dict(mask_input=np.zeros((1, 64, 32))), "low_res_logits"),
    "mask_two_channels": (dict(mask_input=np.zeros((1, 2, 64, 64))), "low_res_logits"),
    "mask_batch_mismatch": (
        dict(box=BOXES[:2], mask_input=np.zeros((3, 1, 64, 64))),
        "shape \\(1, 64, 64\\)",
    ),
    "mask_batch_without_boxes": (dict(mask_input=np.zeros((2, 1, 64, 64))), "low_res_logits"),
    "mask_nan": (dict(mask_input=np.full((1, 64, 64), np.nan)), "NaN or infinity"),
    "no_prompt": (dict(), "at least one prompt"),
    "points_per_box_mismatch": (
        dict(box=BOXES[:2], point_coords=np.ones((3, 1, 2)), point_labels=np.ones((3, 1))),
        "need 3 boxes, got 2",
    ),
    "points_per_box_without_box": (
        dict(point_coords=np.ones((2, 1, 2)), point_labels=np.ones((2, 1))),
        "need 2 boxes, got 1",
    ),
}


@pytest.mark.parametrize("case", BAD_PROMPTS, ids=str)
def test_predict_rejects_bad_prompts(predictor, case):
    kwargs, phrase = BAD_PROMPTS[case]
    before = predictor.predict(**POINT)
    with pytest.raises(PromptError, match=phrase):
        predictor.predict(**kwargs)
    # Bad input never breaks the rest: the same predictor still answers as before.
    _assert_same(predictor.predict(**POINT), before)


def test_box_error_names_the_shape_given(predictor):
    with pytest.raises(PromptError, match="got \\(3,\\)"):
        predictor.predict(box=[1, 2, 3])


def test_mask_input_accepts_the_low_res_size(predictor):
    h, w = predictor.low_res_size
    assert (h, w) == (64, 64)
    predictor.predict(mask_input=np.zeros((1, h, w), np.float32))
    predictor.predict(mask_input=np.zeros((1, 1, h, w), np.float32))


EMBEDDING_SHAPES = [(1, 32, 16), (1, 32, 16, 8), (2, 32, 16, 16), (1, 16, 16, 16), (32, 16, 16)]


@pytest.mark.parametrize("shape", EMBEDDING_SHAPES, ids=str)
def test_set_embedding_rejects_wrong_shape(predictor, shape):
    before = predictor.predict(**POINT)
    with pytest.raises(ImageError, match="tensor of shape \\(1, 32, 16, 16\\)"):
        predictor.set_embedding(torch.zeros(shape), (H, W))
    _assert_same(predictor.predict(**POINT), before)


def test_set_embedding_rejects_non_tensor(predictor):
    with pytest.raises(ImageError, match="must be a tensor"):
        predictor.set_embedding(np.zeros((1, 32, 16, 16), np.float32), (H, W))
    predictor.predict(**POINT)


@pytest.mark.parametrize("size", [(0, 10), (10, 0), (-5, 10), (10,), (10, 20, 30), None, "ab"])
def test_set_embedding_rejects_bad_size(predictor, size):
    before = predictor.predict(**POINT)
    embedding = predictor.get_image_embedding()
    with pytest.raises(ImageError, match="original_size"):
        predictor.set_embedding(embedding, size)
    _assert_same(predictor.predict(**POINT), before)


def test_predict_batch_rejects_mismatched_lengths(predictor, image):
    before = predictor.predict(**POINT)
    with pytest.raises(PromptError, match="2 images but 1 prompt"):
        predictor.predict_batch([image, image], [POINT])
    with pytest.raises(ImageError, match="uint8"):
        predictor.predict_batch([image, image.astype(np.float32)], [POINT, POINT])
    _assert_same(predictor.predict(**POINT), before)
    assert predictor.predict_batch([], []) == []


def test_predict_torch_needs_labels_with_coords(predictor):
    with pytest.raises(PromptError, match="without point_labels"):
        predictor.predict_torch(torch.zeros(1, 1, 2), None)
    predictor.predict(**POINT)


# ---- shapes and dtypes ------------------------------------------------------------------------


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("logits", [False, True])
def test_output_shapes_and_dtypes(predictor, multimask, logits):
    c = 3 if multimask else 1
    h, w = predictor.low_res_size
    masks, scores, low = predictor.predict(
        **POINT, box=BOXES[0], multimask_output=multimask, return_logits=logits
    )
    assert masks.shape == (c, H, W)
    assert masks.dtype == (np.float32 if logits else np.bool_)
    assert scores.shape == (c,) and scores.dtype == np.float32
    assert low.shape == (c, h, w) and low.dtype == np.float32
    assert np.isfinite(scores).all() and np.isfinite(low).all()


def test_logits_threshold_to_masks(predictor):
    masks, _, _ = predictor.predict(**POINT)
    logits, _, _ = predictor.predict(**POINT, return_logits=True)
    np.testing.assert_array_equal(masks, logits > predictor.model.mask_threshold)


def test_low_res_size_is_four_times_the_embedding(predictor):
    grid = predictor.model.prompt_encoder.image_embedding_size
    assert predictor.low_res_size == (4 * grid[0], 4 * grid[1]) == (64, 64)
    assert tuple(predictor.get_image_embedding().shape) == (1, 32, *grid)
    assert predictor.original_size == (H, W)
    assert predictor.input_size == (154, 256)  # 48 * 256 / 80 = 153.6


def test_pil_image_equals_array(model, image):
    from_array, from_pil = SamPredictor(model), SamPredictor(model)
    from_array.set_image(image)
    from_pil.set_image(Image.fromarray(image))
    torch.testing.assert_close(from_pil.features, from_array.features, atol=0, rtol=0)
    _assert_same(from_pil.predict(**POINT), from_array.predict(**POINT))


def test_bgr_equals_rgb_reversed(model, image):
    rgb, bgr = SamPredictor(model), SamPredictor(model)
    rgb.set_image(image)
    bgr.set_image(np.ascontiguousarray(image[..., ::-1]), image_format="BGR")
    torch.testing.assert_close(bgr.features, rgb.features, atol=0, rtol=0)
    _assert_same(bgr.predict(box=BOXES[1]), rgb.predict(box=BOXES[1]))


def test_set_image_accepts_non_contiguous_view(model, image):
    a, b = SamPredictor(model), SamPredictor(model)
    a.set_image(image)
    b.set_image(np.ascontiguousarray(image[..., ::-1])[..., ::-1])  # negative-stride view
    _assert_same(a.predict(**POINT), b.predict(**POINT))


def test_portrait_and_square_images(model):
    predictor = SamPredictor(model)
    for size in [(90, 33), (64, 64), (7, 5)]:
        predictor.set_image(synthetic_image(*size, seed=1))
        masks, _, _ = predictor.predict(box=[0, 0, size[1] - 1, size[0] - 1])
        assert masks.shape == (3, *size)


@pytest.mark.parametrize("size", [(1, 5000), (3000, 2)])
def test_extreme_strips_keep_a_one_pixel_side(model, size):
    # Resized to the model's long side, the short side rounds to 0; it is kept at 1 px.
    predictor = SamPredictor(model)
    predictor.set_image(np.zeros((*size, 3), np.uint8))
    masks, scores, _ = predictor.predict(point_coords=[[0, 0]], point_labels=[1])
    assert masks.shape == (3, *size) and np.isfinite(scores).all()


def test_list_prompts_equal_arrays(predictor):
    expected = predictor.predict(**POINT, box=BOXES[0])
    got = predictor.predict(point_coords=[[30, 20]], point_labels=[1], box=list(BOXES[0]))
    _assert_same(got, expected)


def test_bf16_autocast_keeps_float32_outputs(model, image):
    exact, mixed = SamPredictor(model), SamPredictor(model, autocast_dtype=torch.bfloat16)
    exact.set_image(image)
    mixed.set_image(image)
    assert mixed.get_image_embedding().dtype == torch.float32
    for prompt in [POINT, dict(box=BOXES[:2], mask_input=np.zeros((1, 64, 64), np.float32))]:
        want = exact.predict(**prompt, return_logits=True)
        got = mixed.predict(**prompt, return_logits=True)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and g.dtype == w.dtype == np.float32
            np.testing.assert_allclose(g, w, atol=0.05, rtol=0)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("name", sorted(segany.list_models()))
def test_encoder_runs_in_the_measured_dtype_only_where_native(monkeypatch, name, native):
    """ "auto" takes a model's measured encoder dtype on devices with bfloat16 units; the
    reference models declare none, so they stay float32 (and match the reference) anywhere."""
    monkeypatch.setattr(segany.predictor_base, "computes_bfloat16_natively", lambda device: native)
    spec = segany.get_spec(name)
    built = type("Built", (), {"spec": spec, "device": torch.device("cpu")})()
    predictor = SamPredictor(built)
    expected = spec.encoder_autocast if native else None
    assert predictor.encoder_dtype() == expected
    assert SamPredictor(built, encoder_autocast=None).encoder_dtype() is None
    if spec.name == "segany-tiny-v2":
        assert spec.encoder_autocast == torch.bfloat16
    if spec.checkpoint_name is not None and spec.checkpoint_name.startswith(("sam_", "mobile")):
        assert spec.encoder_autocast is None


def test_encoder_autocast_option_runs_the_encoder_alone_in_bfloat16(model, image):
    exact = SamPredictor(model, encoder_autocast=None)
    fast = SamPredictor(model, encoder_autocast=torch.bfloat16)
    assert fast.encoder_dtype() == torch.bfloat16 and exact.encoder_dtype() is None
    exact.set_image(image)
    fast.set_image(image)
    want, got = exact.get_image_embedding(), fast.get_image_embedding()
    assert got.dtype == torch.float32 and not torch.equal(got, want)  # it did run in bf16
    assert float((got - want).norm() / want.norm()) < 0.02
    with pytest.raises(segany.ConfigError, match="encoder_autocast"):
        SamPredictor(model, encoder_autocast="fast")


# ---- several boxes in one call ----------------------------------------------------------------


@pytest.mark.parametrize("multimask", [True, False])
def test_several_boxes_equal_one_by_one(predictor, multimask):
    masks, scores, low = predictor.predict(box=BOXES, multimask_output=multimask)
    n, c = len(BOXES), 3 if multimask else 1
    assert masks.shape == (n, c, H, W) and masks.dtype == np.bool_
    assert scores.shape == (n, c) and low.shape == (n, c, 64, 64)
    for i, box in enumerate(BOXES):
        one = predictor.predict(box=box, multimask_output=multimask)
        np.testing.assert_allclose(low[i], one[2], atol=1e-5, rtol=0)
        np.testing.assert_allclose(scores[i], one[1], atol=1e-5, rtol=0)
        assert (masks[i] == one[0]).mean() >= 0.999


def test_one_row_box_gives_unbatched_shape(predictor):
    flat = predictor.predict(box=BOXES[0])
    row = predictor.predict(box=BOXES[:1])
    assert row[0].shape == (3, H, W) and row[1].shape == (3,) and row[2].shape == (3, 64, 64)
    _assert_same(row, flat)


def test_points_per_box(predictor):
    coords = np.array([[[20.0, 15.0], [35.0, 25.0]], [[50.0, 30.0], [60.0, 20.0]]])  # (2, 2, 2)
    labels = np.array([[1, 0], [1, 1]])  # (2, 2)
    masks, scores, low = predictor.predict(point_coords=coords, point_labels=labels, box=BOXES[:2])
    assert masks.shape == (2, 3, H, W) and scores.shape == (2, 3)
    for i in range(2):
        one = predictor.predict(point_coords=coords[i], point_labels=labels[i], box=BOXES[i])
        np.testing.assert_allclose(low[i], one[2], atol=1e-5, rtol=0)
        np.testing.assert_allclose(scores[i], one[1], atol=1e-5, rtol=0)


def test_shared_points_broadcast_over_boxes(predictor):
    coords, labels = np.array([[30.0, 20.0], [10.0, 40.0]]), np.array([1, 0])
    _, scores, low = predictor.predict(point_coords=coords, point_labels=labels, box=BOXES)
    assert low.shape == (3, 3, 64, 64)
    for i, box in enumerate(BOXES):
        one = predictor.predict(point_coords=coords, point_labels=labels, box=box)
        np.testing.assert_allclose(low[i], one[2], atol=1e-5, rtol=0)
        np.testing.assert_allclose(scores[i], one[1], atol=1e-5, rtol=0)


def test_mask_input_per_box_and_shared(predictor):
    rng = np.random.default_rng(0)
    per_box = rng.normal(0, 3, (2, 1, 64, 64)).astype(np.float32)
    _, _, low = predictor.predict(box=BOXES[:2], mask_input=per_box)
    for i in range(2):
        one = predictor.predict(box=BOXES[i], mask_input=per_box[i])
        np.testing.assert_allclose(low[i], one[2], atol=1e-5, rtol=0)
    _, _, shared = predictor.predict(box=BOXES[:2], mask_input=per_box[0])
    np.testing.assert_allclose(shared[0], low[0], atol=1e-5, rtol=0)
    one = predictor.predict(box=BOXES[1], mask_input=per_box[0])
    np.testing.assert_allclose(shared[1], one[2], atol=1e-5, rtol=0)


# ---- embedding reuse and the batch call -------------------------------------------------------


def test_set_embedding_reproduces_set_image(model, predictor):
    fresh = SamPredictor(model)
    fresh.set_embedding(predictor.get_image_embedding(), (H, W))
    assert fresh.original_size == predictor.original_size
    assert fresh.input_size == predictor.input_size
    for prompt in [POINT, dict(box=BOXES), dict(box=BOXES[0], **POINT)]:
        for logits in (False, True):
            _assert_same(
                fresh.predict(**prompt, return_logits=logits),
                predictor.predict(**prompt, return_logits=logits),
                atol=1e-6,
            )


def test_set_embedding_accepts_a_copy_with_grad(model, predictor):
    embedding = predictor.get_image_embedding().clone().requires_grad_(True)
    fresh = SamPredictor(model)
    fresh.set_embedding(embedding, (H, W))
    _assert_same(fresh.predict(**POINT), predictor.predict(**POINT), atol=1e-6)


def test_predict_batch_equals_one_by_one(model):
    sizes = [(48, 80), (90, 33), (64, 64)]
    images = [synthetic_image(*s, seed=i) for i, s in enumerate(sizes)]
    prompts = [
        POINT,
        dict(box=np.array([[2.0, 5.0, 30.0, 80.0], [10.0, 10.0, 20.0, 40.0]])),
        dict(box=[5, 5, 50, 60], point_coords=[[30, 30]], point_labels=[0]),
    ]
    batch_predictor = SamPredictor(model)
    results = batch_predictor.predict_batch(images, prompts, multimask_output=False)
    assert isinstance(results, list) and len(results) == len(images)
    single = SamPredictor(model)
    for result, img, prompt in zip(results, images, prompts, strict=True):
        assert isinstance(result, tuple) and len(result) == 3
        single.set_image(img)
        expected = single.predict(**prompt, multimask_output=False)
        for got, want in zip(result, expected, strict=True):
            assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(result[2], expected[2], atol=1e-4, rtol=0)
        np.testing.assert_allclose(result[1], expected[1], atol=1e-4, rtol=0)
        assert (result[0] == expected[0]).mean() >= 0.999
    # The last image stays set.
    assert batch_predictor.original_size == sizes[-1]
    _assert_same(batch_predictor.predict(**POINT), single.predict(**POINT), atol=1e-4)


def test_predict_batch_logits_and_format(model, image):
    predictor = SamPredictor(model)
    [rgb] = predictor.predict_batch([image], [POINT], return_logits=True)
    [bgr] = predictor.predict_batch(
        [np.ascontiguousarray(image[..., ::-1])], [POINT], return_logits=True, image_format="BGR"
    )
    assert rgb[0].dtype == np.float32 and rgb[0].shape == (3, H, W)
    _assert_same(bgr, rgb, atol=1e-6)


# ---- mask prompts and the per-image decoder cache ---------------------------------------------


def test_mask_input_from_previous_call_changes_the_output(predictor):
    masks, scores, low = predictor.predict(**POINT)
    mask_input = low[np.argmax(scores)][None]  # (1, 64, 64)
    refined = predictor.predict(**POINT, mask_input=mask_input)
    assert refined[2].shape == low.shape
    assert not np.allclose(refined[2], low, atol=1e-3)
    # A mask alone is a prompt too.
    alone = predictor.predict(mask_input=mask_input, multimask_output=False)
    assert alone[0].shape == (1, H, W)


def test_predict_torch_matches_predict(predictor):
    expected = predictor.predict(**POINT, box=BOXES[0], return_logits=True)
    side = predictor.model.image_size
    coords = coords_to_input_torch(
        torch.as_tensor(POINT["point_coords"], dtype=torch.float32)[None], (H, W), side
    )  # (1, 1, 2) input frame
    labels = torch.as_tensor(POINT["point_labels"])[None]  # (1, 1)
    box = coords_to_input_torch(
        torch.as_tensor(BOXES[0], dtype=torch.float32).view(1, 2, 2), (H, W), side
    ).view(1, 4)
    masks, scores, low = predictor.predict_torch(coords, labels, box, return_logits=True)
    assert masks.shape == (1, 3, H, W) and scores.shape == (1, 3) and low.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(masks[0].numpy(), expected[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(scores[0].numpy(), expected[1], atol=1e-5, rtol=0)
    np.testing.assert_allclose(low[0].numpy(), expected[2], atol=1e-5, rtol=0)


def test_decoder_cache_does_not_leak_between_prompts(model, image):
    fresh = SamPredictor(model)
    fresh.set_image(image)
    first = fresh.predict(**POINT)

    used = SamPredictor(model)
    used.set_image(image)
    a = used.predict(**POINT)
    mask_input = a[2][np.argmax(a[1])][None]
    with_mask = used.predict(**POINT, mask_input=mask_input)
    b = used.predict(**POINT)
    _assert_same(a, first)
    _assert_same(b, first)
    # And the mask prompt itself does not depend on what came before.
    other = SamPredictor(model)
    other.set_image(image)
    _assert_same(other.predict(**POINT, mask_input=mask_input), with_mask)


def test_decoder_cache_is_per_image(model, image):
    second = synthetic_image(70, 40, seed=9)
    used = SamPredictor(model)
    used.set_image(image)
    used.predict(**POINT)  # fills the cache for the first image
    used.set_image(second)
    fresh = SamPredictor(model)
    fresh.set_image(second)
    _assert_same(used.predict(**POINT), fresh.predict(**POINT))
    # The same through set_embedding.
    used.set_embedding(fresh.get_image_embedding(), (70, 40))
    _assert_same(used.predict(box=BOXES[0]), fresh.predict(box=BOXES[0]), atol=1e-6)


# ---- the reference predictor, box by box ------------------------------------------------------


def test_several_boxes_match_reference_box_by_box(reference_checkpoint):
    from segment_anything import SamPredictor as RefPredictor

    ref_model, path = reference_checkpoint("test_tiny")
    ours = SamPredictor(build_sam("test_tiny", checkpoint=path))
    ref = RefPredictor(ref_model)
    image = synthetic_image(60, 90, seed=5)
    boxes = np.array([[5.0, 4.0, 50.0, 40.0], [30.0, 10.0, 85.0, 55.0], [0.0, 0.0, 89.0, 59.0]])
    coords, labels = np.array([[40.0, 30.0]]), np.array([1])
    with torch.no_grad():
        ref.set_image(image)
    ours.set_image(image)
    for multimask in (True, False):
        masks, scores, low = ours.predict(
            point_coords=coords, point_labels=labels, box=boxes, multimask_output=multimask
        )
        assert masks.shape[0] == scores.shape[0] == low.shape[0] == len(boxes)
        for i, box in enumerate(boxes):
            with torch.no_grad():
                ref_masks, ref_scores, ref_low = ref.predict(
                    point_coords=coords, point_labels=labels, box=box, multimask_output=multimask
                )
            assert masks[i].shape == ref_masks.shape and masks[i].dtype == ref_masks.dtype
            np.testing.assert_allclose(low[i], ref_low, atol=1e-3, rtol=0)
            np.testing.assert_allclose(scores[i], ref_scores, atol=1e-4, rtol=0)
            assert (masks[i] == ref_masks).mean() >= 0.9999


def test_public_name_is_exported():
    assert segany.SamPredictor is SamPredictor


@pytest.mark.parametrize("multimask", [True, False])
def test_skip_below_iou_decodes_only_prompts_that_pass(predictor, multimask):
    """Prompts whose predicted IoUs are all <= the threshold get -inf logits; the others get
    exactly the logits of a call without skipping."""
    torch.manual_seed(5)
    coords = torch.rand(12, 1, 2) * 256  # input-frame points
    labels = torch.ones(12, 1, dtype=torch.int)
    full, iou = predictor.predict_low_res_torch(coords, labels, multimask_output=multimask)
    threshold = float(iou.max(dim=1).values.median())  # about half the prompts pass
    skipped, iou_skipped = predictor.predict_low_res_torch(
        coords, labels, multimask_output=multimask, skip_below_iou=threshold
    )
    torch.testing.assert_close(iou_skipped, iou, rtol=0, atol=0)
    passing = (iou > threshold).any(dim=1)
    assert 0 < int(passing.sum()) < len(passing)
    torch.testing.assert_close(skipped[passing], full[passing], rtol=0, atol=1e-5)
    assert torch.isneginf(skipped[~passing]).all()
