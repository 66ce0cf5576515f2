"""segany.masks against segment-anything's `utils.amg`, for exact equality.

Every function is run on seeded random inputs and on the edge cases that break run-length and
box code: empty and full masks, single pixels, masks touching the borders, 1 x N and N x 1
images, and crops that reach the right/bottom edge or span the full height.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import segment_anything.utils.amg as ref  # noqa: E402  (the oracle, a dev dependency)
import torch

from segany.masks import (
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    build_point_grid,
    coco_rle_to_mask,
    generate_crop_boxes,
    is_box_near_crop_edge,
    masks_to_boxes,
    masks_to_rle,
    remove_small_regions,
    rle_area,
    rle_to_box,
    rle_to_coco,
    rle_to_mask,
    stability_score,
    uncrop_boxes_xyxy,
    uncrop_points,
)

# pycocotools' decode predates NumPy 2's copy keyword; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

SIZES = [(1, 1), (1, 9), (9, 1), (2, 2), (7, 5), (16, 16), (37, 53)]


def random_masks(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    """(n, h, w) bool: salt-and-pepper at several densities plus blocky blobs."""
    g = torch.Generator().manual_seed(seed)
    density = torch.rand(n, 1, 1, generator=g)
    noise = torch.rand(n, h, w, generator=g) < density
    # Coarse noise upsampled gives long runs that cross column boundaries.
    coarse = torch.rand(n, 1, (h + 3) // 4, (w + 3) // 4, generator=g) < 0.5
    blobs = torch.nn.functional.interpolate(coarse.float(), scale_factor=4)[:, 0, :h, :w] > 0
    return torch.where(torch.arange(n)[:, None, None] % 2 == 0, noise, blobs)


def edge_masks(h: int, w: int) -> torch.Tensor:
    """(M, h, w) bool: empty, full, each corner pixel, the centre pixel, each border line, and
    a full mask with one hole at the start and one at the end (in column-major order)."""
    masks = []
    empty = torch.zeros(h, w, dtype=torch.bool)
    masks.append(empty.clone())
    masks.append(~empty)
    for y, x in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2)]:
        m = empty.clone()
        m[y, x] = True
        masks.append(m)
    for index in [(0, slice(None)), (-1, slice(None)), (slice(None), 0), (slice(None), -1)]:
        m = empty.clone()
        m[index] = True
        masks.append(m)
    holed = ~empty
    holed[0, 0] = False
    holed[-1, -1] = False
    masks.append(holed)
    return torch.stack(masks)


def all_masks(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.cat([edge_masks(h, w), random_masks(12, h, w, seed)])


# ---------------------------------------------------------------------------- rle.py


@pytest.mark.parametrize("size", SIZES)
def test_masks_to_rle_matches_reference(size):
    masks = all_masks(*size)
    assert masks_to_rle(masks) == ref.mask_to_rle_pytorch(masks)


def test_masks_to_rle_empty_batch():
    assert masks_to_rle(torch.zeros(0, 4, 5, dtype=torch.bool)) == []


CROPS = [
    [0, 0, 53, 37],  # the whole image
    [10, 5, 30, 20],  # interior
    [40, 25, 53, 37],  # touching the right and bottom edges
    [0, 0, 12, 9],  # top-left corner
    [7, 0, 19, 37],  # full height: runs merge across columns
    [0, 0, 1, 37],  # one full column
    [0, 11, 53, 12],  # one full row
    [52, 36, 53, 37],  # the last pixel
    [52, 0, 53, 37],  # the last column
]


@pytest.mark.parametrize("crop_box", CROPS)
def test_masks_to_rle_uncrops_like_reference(crop_box):
    full_h, full_w = 37, 53
    x0, y0, x1, y1 = crop_box
    masks = all_masks(y1 - y0, x1 - x0, seed=x0 + 100 * y0)
    expected = ref.mask_to_rle_pytorch(ref.uncrop_masks(masks, crop_box, full_h, full_w))
    assert masks_to_rle(masks, offset=(x0, y0), full_size=(full_h, full_w)) == expected


def test_masks_to_rle_rejects_crop_outside_image():
    masks = torch.ones(1, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="does not fit"):
        masks_to_rle(masks, offset=(2, 0), full_size=(4, 5))
    with pytest.raises(ValueError, match="does not fit"):
        masks_to_rle(masks, offset=(1, 1))


@pytest.mark.parametrize("size", SIZES)
def test_rle_decoding_and_round_trips(size):
    masks = all_masks(*size, seed=3)
    for mask, rle in zip(masks, masks_to_rle(masks), strict=True):
        dense = rle_to_mask(rle)
        np.testing.assert_array_equal(dense, ref.rle_to_mask(rle))
        np.testing.assert_array_equal(dense, mask.numpy())
        assert masks_to_rle(torch.from_numpy(dense)[None]) == [rle]
        assert rle_area(rle) == ref.area_from_rle(rle) == int(mask.sum())
        coco = rle_to_coco(rle)
        assert coco == ref.coco_encode_rle(rle)
        assert isinstance(coco["counts"], str)
        np.testing.assert_array_equal(coco_rle_to_mask(coco), dense)
        assert rle_to_box(rle) == ref.batched_mask_to_box(mask).tolist()


def test_rle_to_box_of_runs_that_wrap_columns():
    # Column-major runs: rows 2..3 of column 0 then rows 0..1 of column 1 form one run.
    mask = torch.zeros(4, 3, dtype=torch.bool)
    mask[2:, 0] = True
    mask[:2, 1] = True
    (rle,) = masks_to_rle(mask[None])
    assert rle["counts"] == [2, 4, 6]
    assert rle_to_box(rle) == [0, 0, 1, 3]


def test_rle_to_mask_rejects_wrong_total():
    with pytest.raises(ValueError, match="sum to 5"):
        rle_to_mask({"size": [2, 3], "counts": [2, 3]})


def test_masks_to_rle_large_batch():
    """Speed sanity: a per-pixel Python loop would take minutes here, not milliseconds."""
    masks = random_masks(16, 300, 400, seed=7)
    assert masks_to_rle(masks) == ref.mask_to_rle_pytorch(masks)
    crop_box = [100, 50, 500, 350]
    expected = ref.mask_to_rle_pytorch(ref.uncrop_masks(masks, crop_box, 480, 640))
    assert masks_to_rle(masks, offset=(100, 50), full_size=(480, 640)) == expected


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_masks_on_every_device_match_reference(device):
    masks = all_masks(37, 53, seed=9)
    on_device = masks.to(device)
    assert masks_to_rle(on_device) == ref.mask_to_rle_pytorch(masks)
    crop = masks[:, 5:20, 7:19]
    expected = ref.mask_to_rle_pytorch(ref.uncrop_masks(crop, [7, 5, 19, 20], 37, 53))
    assert masks_to_rle(crop.to(device), offset=(7, 5), full_size=(37, 53)) == expected
    assert torch.equal(masks_to_boxes(on_device).cpu(), ref.batched_mask_to_box(masks))
    logits = torch.randn(masks.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        stability_score(logits.to(device), 0.0, 1.0).cpu(),
        ref.calculate_stability_score(logits, 0.0, 1.0),
        rtol=0,
        atol=0,
        equal_nan=True,
    )


# ---------------------------------------------------------------------------- boxes.py


@pytest.mark.parametrize("size", SIZES)
def test_masks_to_boxes_matches_reference(size):
    masks = all_masks(*size, seed=5)
    expected = ref.batched_mask_to_box(masks)
    got = masks_to_boxes(masks)
    assert got.dtype == torch.int64
    assert torch.equal(got, expected)
    batched = masks[:12].reshape(3, 4, *size)  # (B, N, H, W)
    assert torch.equal(masks_to_boxes(batched), ref.batched_mask_to_box(batched))
    assert torch.equal(masks_to_boxes(masks[3]), ref.batched_mask_to_box(masks[3]))


@pytest.mark.parametrize("shape", [(0, 5, 6), (3, 0, 6), (2, 5, 0)])
def test_masks_to_boxes_of_empty_tensors(shape):
    masks = torch.zeros(shape, dtype=torch.bool)
    got = masks_to_boxes(masks)
    assert got.dtype == torch.int64
    assert torch.equal(got, ref.batched_mask_to_box(masks).long())


def test_box_xyxy_to_xywh():
    boxes = torch.randint(0, 100, (10, 4), generator=torch.Generator().manual_seed(0))
    before = boxes.clone()
    got = box_xyxy_to_xywh(boxes)
    # The reference indexes dim 0, so it converts one (4,) box at a time.
    assert torch.equal(got, torch.stack([ref.box_xyxy_to_xywh(b) for b in boxes]))
    assert torch.equal(box_xyxy_to_xywh(boxes[0]), ref.box_xyxy_to_xywh(boxes[0]))
    assert torch.equal(boxes, before)  # a new tensor, the input untouched


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.float32])
def test_uncrop_boxes_and_points(dtype):
    g = torch.Generator().manual_seed(1)
    crop_box = [17, 9, 80, 60]
    for shape in [(6, 4), (2, 3, 4)]:
        boxes = torch.randint(0, 50, shape, generator=g).to(dtype)
        got, expected = uncrop_boxes_xyxy(boxes, crop_box), ref.uncrop_boxes_xyxy(boxes, crop_box)
        assert got.dtype == expected.dtype and torch.equal(got, expected)
    for shape in [(6, 2), (2, 3, 2)]:
        points = torch.randint(0, 50, shape, generator=g).to(dtype)
        got, expected = uncrop_points(points, crop_box), ref.uncrop_points(points, crop_box)
        assert got.dtype == expected.dtype and torch.equal(got, expected)


@pytest.mark.parametrize("atol", [20.0, 5.0, 0.5])
def test_is_box_near_crop_edge_matches_reference(atol):
    g = torch.Generator().manual_seed(2)
    orig_box = [0, 0, 200, 150]
    crops = [[0, 0, 200, 150], [0, 0, 110, 85], [90, 65, 200, 150], [45, 30, 155, 115]]
    for crop_box in crops:
        crop_w, crop_h = crop_box[2] - crop_box[0], crop_box[3] - crop_box[1]
        corner = torch.randint(0, 20, (200, 2), generator=g)
        far = torch.stack(
            [
                crop_w - torch.randint(1, 20, (200,), generator=g),
                crop_h - torch.randint(1, 20, (200,), generator=g),
            ],
            dim=1,
        )
        boxes = torch.cat([corner, far], dim=1)  # (200, 4) crop frame
        expected = ref.is_box_near_crop_edge(boxes, crop_box, orig_box, atol=atol)
        got = is_box_near_crop_edge(boxes, crop_box, orig_box, atol=atol)
        assert got.dtype == torch.bool and torch.equal(got, expected)
    empty = torch.zeros(0, 4, dtype=torch.int64)
    assert is_box_near_crop_edge(empty, crops[1], orig_box).shape == (0,)


# ---------------------------------------------------------------------------- stability.py


@pytest.mark.parametrize("size", SIZES)
def test_stability_score_is_bit_identical(size):
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(8, *size, generator=g) * 3
    logits[0] = -10.0  # both masks empty: NaN
    logits[1] = 10.0  # both full: 1
    for threshold, offset in [(0.0, 1.0), (0.5, 0.25), (-1.0, 0.0)]:
        got = stability_score(logits, threshold, offset)
        expected = ref.calculate_stability_score(logits, threshold, offset)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)


def test_stability_score_does_not_overflow_wide_rows():
    w = 40_000  # a full row no longer fits in int16
    logits = torch.full((1, 2, w), 5.0)
    logits[0, 0, : w // 4] = 0.5  # inside the outer mask only
    got = stability_score(logits, 0.0, 1.0)
    expected = torch.tensor([(2 * w - w // 4) / (2 * w)], dtype=torch.float32)
    assert torch.equal(got, expected)


# ---------------------------------------------------------------------------- grids.py


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 32, 33, 64])
def test_build_point_grid(n):
    got = build_point_grid(n)
    assert got.shape == (n * n, 2)
    np.testing.assert_array_equal(got, ref.build_point_grid(n))


@pytest.mark.parametrize("args", [(32, 0, 1), (32, 1, 2), (32, 3, 2), (16, 2, 3), (5, 2, 2)])
def test_build_all_layer_point_grids(args):
    got, expected = build_all_layer_point_grids(*args), ref.build_all_layer_point_grids(*args)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_generate_crop_boxes():
    sizes = [(1, 1), (1, 17), (17, 1), (480, 640), (1024, 768), (333, 517), (1500, 2250)]
    for im_size in sizes:
        for n_layers in range(4):
            for overlap_ratio in [0.0, 512 / 1500, 0.1, 0.25, 0.3]:
                got = generate_crop_boxes(im_size, n_layers, overlap_ratio)
                assert got == ref.generate_crop_boxes(im_size, n_layers, overlap_ratio)


# ---------------------------------------------------------------------------- regions.py


def _reference_regions(mask, area_thresh, mode):
    return ref.remove_small_regions(mask, area_thresh, mode)


@pytest.mark.parametrize("size", SIZES + [(64, 80)])
@pytest.mark.parametrize("mode", ["holes", "islands"])
def test_remove_small_regions_matches_reference(size, mode):
    masks = all_masks(*size, seed=6).numpy()
    for area_thresh in [0, 1, 2, 3.5, 10, 100]:
        for mask in masks:
            expected, expected_changed = _reference_regions(mask, area_thresh, mode)
            got, changed = remove_small_regions(mask, area_thresh, mode)
            assert changed == expected_changed
            assert got.dtype == bool
            np.testing.assert_array_equal(got, expected)
            if not changed:
                assert got is mask


def test_remove_small_regions_keeps_largest_island_like_opencv():
    # Every island is small and the two largest tie: OpenCV numbers regions by 2x2 block, so
    # the island at (row 1, column 0) comes before the one at (row 0, column 5).
    mask = np.zeros((6, 8), dtype=bool)
    mask[0, 5:7] = True
    mask[1, 0:2] = True
    mask[4, 3] = True
    got, changed = remove_small_regions(mask, 10, "islands")
    assert changed
    assert got.sum() == 2 and got[1, 0] and got[1, 1]
    expected, _ = _reference_regions(mask, 10, "islands")
    np.testing.assert_array_equal(got, expected)


def test_remove_small_regions_ties_on_random_masks():
    rng = np.random.default_rng(8)
    for _ in range(200):
        h, w = rng.integers(1, 24, size=2)
        mask = rng.random((h, w)) < 0.15  # many tiny islands of equal size
        expected, expected_changed = _reference_regions(mask, 1000, "islands")
        got, changed = remove_small_regions(mask, 1000, "islands")
        assert changed == expected_changed
        np.testing.assert_array_equal(got, expected)


def test_remove_small_regions_rejects_unknown_mode():
    with pytest.raises(ValueError, match="holes"):
        remove_small_regions(np.zeros((3, 3), dtype=bool), 5, "both")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("count", [0, 1, 300, 5000])  # torchvision loops per group above 4000
def test_batched_nms_matches_torchvision(count, device):
    from torchvision.ops import batched_nms as torchvision_batched_nms

    from segany.masks.nms import batched_nms

    generator = torch.Generator().manual_seed(count)
    corners = torch.rand(count, 2, generator=generator) * 500
    sizes = torch.rand(count, 2, generator=generator) * 80 + 1
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(count, generator=generator)
    groups = torch.randint(0, 4, (count,), generator=generator)
    boxes, scores, groups = boxes.to(device), scores.to(device), groups.to(device)
    expected = torchvision_batched_nms(boxes, scores, groups, 0.5)
    kept = batched_nms(boxes, scores, groups, 0.5)
    assert kept.dtype == torch.int64 and kept.device == boxes.device
    assert torch.equal(kept, expected)
    assert count < 300 or 0 < len(kept) < count


def test_mask_generation_does_not_import_torchvision():
    # Importing torchvision costs ~160 MB of memory (it pulls in torch._dynamo); segany loads
    # only its NMS kernel. Checked in a fresh interpreter, where nothing imported it before.
    code = (
        "import sys, numpy as np, segany\n"
        "model = segany.build_sam('test_tiny', pretrained=False)\n"
        "records = segany.AutomaticMaskGenerator(model, points_per_side=4, pred_iou_thresh=0,\n"
        "    stability_score_thresh=0).generate(np.zeros((64, 64, 3), np.uint8))\n"
        "assert records, 'no masks'\n"
        "print('torchvision' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
