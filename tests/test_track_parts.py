"""The image-model tracker's pure parts: optical flow and motion, the low-resolution grid,
overlaps, the mask history, the frames a propagation visits."""

from __future__ import annotations

import numpy as np
import pytest

from segany.errors import ConfigError, PromptError
from segany.track.flow import fit_motion, grey_frame, rescale_affine, sample_points, track_points
from segany.track.geometry import Grid, deepest, expand_box, interior_points, mask_box
from segany.track.overlap import exclusive
from segany.track.span import frame_order
from segany.track.state import MaskHistory


def _textured(height=120, width=160, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (height // 8, width // 8), dtype=np.uint8)
    return np.kron(coarse, np.ones((8, 8), np.uint8))  # blocks: corners to follow


def test_flow_follows_a_shift_and_drops_what_it_cannot():
    grey = _textured()
    moved = np.roll(grey, (3, 5), axis=(0, 1))  # down 3, right 5
    mask = np.zeros(grey.shape, bool)
    mask[30:90, 40:120] = True
    points = sample_points(grey, mask, 40)
    assert (
        10 <= len(points) <= 40 and mask[points[:, 1].astype(int), points[:, 0].astype(int)].all()
    )
    src, dst = track_points(grey, moved, points, fb_threshold=1.0)
    assert len(src) >= len(points) // 2
    motion = fit_motion(src, dst)
    np.testing.assert_allclose(motion.affine, [[1, 0, 5], [0, 1, 3]], atol=0.1)
    # a frame of noise: no point survives the forward-backward check, the motion is none
    noise = np.random.default_rng(1).integers(0, 255, grey.shape, dtype=np.uint8)
    src, dst = track_points(grey, noise, points, fb_threshold=1.0)
    assert len(src) <= len(points) // 4
    assert fit_motion(src[:0], dst[:0]).affine.tolist() == [[1, 0, 0], [0, 1, 0]]


def test_motion_fits_a_similarity_and_refuses_wild_scale():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (30, 2)).astype(np.float32)
    angle, scale = np.deg2rad(4.0), 1.1
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = (src @ rot.T + [2.0, -1.0]).astype(np.float32)
    motion = fit_motion(src, dst)
    np.testing.assert_allclose(motion.affine[:, :2], rot, atol=1e-3)
    assert motion.inliers.all()
    wild = fit_motion(src, src * 2.0)  # doubling in a frame: only the median shift is kept
    np.testing.assert_allclose(wild.affine[:, :2], np.eye(2))
    # a shift on one grid is the proportional shift on a grid twice as fine
    shift = np.array([[1.0, 0, 3.0], [0, 1.0, -2.0]])
    np.testing.assert_allclose(rescale_affine(shift, (2.0, 2.0)), [[1, 0, 6], [0, 1, -4]])


def test_grey_frame_scales_the_long_side():
    rgb = np.zeros((480, 960, 3), np.uint8)
    assert grey_frame(rgb, 640).shape == (320, 640)
    assert grey_frame(rgb[:100, :200], 640).shape == (100, 200)


def test_grid_maps_frames_to_the_low_resolution_square():
    grid = Grid(frame=(480, 640), image_size=512, low=(256, 256))
    assert grid.input_size == (384, 512)
    assert grid.scale == pytest.approx((0.4, 0.4))
    assert grid.valid == (192, 256)
    np.testing.assert_allclose(grid.frame_to_low([[640, 480]]), [[256, 192]])
    np.testing.assert_allclose(grid.low_to_input([[256, 192]]), [[512, 384]])
    assert grid.valid_mask().sum() == 192 * 256


def test_boxes_and_points_of_masks():
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:20] = True
    assert mask_box(mask).tolist() == [10, 5, 20, 15]
    assert mask_box(mask & False) is None
    assert expand_box(np.array([10.0, 5, 20, 15]), 0.1, 1.0, (20, 30)).tolist() == [8, 3, 22, 17]
    centre = interior_points(mask, 1, 1.0)
    np.testing.assert_allclose(centre, [[14.5, 9.5]], atol=1.0)
    candidates = np.array([[10.5, 5.5], [15.0, 10.0], [25.0, 10.0]])
    assert deepest(candidates, mask, 2, 1.0).tolist() == [[15.0, 10.0], [10.5, 5.5]]


def test_exclusive_gives_each_pixel_to_one_object():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :, :3] = True
    masks[1, :, 1:] = True
    by_object = exclusive(masks, np.array([0.2, 0.9]))
    assert not (by_object[0] & by_object[1]).any()
    assert by_object[1, :, 1:].all() and by_object[0, :, 0].all()
    by_pixel = np.zeros((2, 4, 4), np.float32)
    by_pixel[0, :2] = 5.0  # object 0 surer in the top half, object 1 in the bottom half
    by_pixel[1, 2:] = 5.0
    split = exclusive(masks, by_pixel)
    assert split[0, :2, :3].all() and split[1, 2:, 1:].all()
    assert (split.sum(axis=0) == masks.any(axis=0)).all()


def test_mask_history_is_bounded_and_exact():
    rng = np.random.default_rng(0)
    history = MaskHistory(3)
    masks = [rng.random((64, 64)) > 0.5 for _ in range(5)]
    for frame, mask in enumerate(masks):
        history.put(frame, mask, frame / 10)
    assert len(history) == 3 and history.get(0) is None and history.get(1) is None
    mask, score = history.get(4)
    np.testing.assert_array_equal(mask, masks[4])
    assert score == pytest.approx(0.4)
    assert history.nbytes() <= 3 * (64 * 64 // 8 + 64)
    MaskHistory(0).put(0, masks[0], 1.0)  # capacity 0 keeps nothing, quietly


def test_frame_order():
    assert frame_order(10, None, False, None, [3, 5], [3, 7]) == [3, 4, 5, 6, 7, 8, 9]
    assert frame_order(10, None, True, None, [3, 5], [3, 7]) == [7, 6, 5, 4, 3, 2, 1, 0]
    assert frame_order(10, 8, False, 5, [0], [0]) == [8, 9]
    assert frame_order(10, 2, True, 2, [0], [0]) == [2, 1]
    with pytest.raises(PromptError, match="cannot start at frame 10"):
        frame_order(10, 10, False, None, [0], [0])
    with pytest.raises(PromptError, match="must be an int"):
        frame_order(10, 1.5, False, None, [0], [0])
    with pytest.raises(ConfigError, match="max_frames"):
        frame_order(10, 0, False, -1, [0], [0])
