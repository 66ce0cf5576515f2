"""SAM 2's tracker behind `segany.track` gives VideoPredictor's own masks, frame for frame
(random-weight sam2.1_hiera_t at a small input size)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import segany
from segany.track import ObjectPrompt, build_tracker
from segany.video.predictor import VideoPredictor
from track_helpers import centre_click, moving_blobs, sequence_of

FRAMES = 6


@pytest.fixture(scope="module")
def model():
    return segany.build_sam("sam2.1_hiera_t", pretrained=False, seed=1, image_size=64)


def _direct(model, folder, steps):
    """Run `steps` through VideoPredictor itself -> {(pass, frame): {id: (H, W) bool}}."""
    predictor = VideoPredictor(
        model, non_overlap_masks=True, add_all_frames_to_correct_as_cond=True
    )
    state = predictor.init_state(str(folder))
    out = {}
    for n, step in enumerate(steps):
        if step[0] == "prompt":
            _, frame, obj, points, box = step
            xy = None if points is None else points[:, :2]
            labels = None if points is None else points[:, 2].astype(np.int32)
            predictor.add_new_points_or_box(state, frame, obj, points=xy, labels=labels, box=box)
        else:
            _, start, reverse = step
            for frame, ids, logits in predictor.propagate_in_video(state, start, reverse=reverse):
                out[(n, frame)] = {i: (logits[k, 0] > 0).numpy() for k, i in enumerate(ids)}
    return out


def _ours(model, frames, steps):
    session = build_tracker(model).open(sequence_of(frames))
    out = {}
    for n, step in enumerate(steps):
        if step[0] == "prompt":
            _, frame, obj, points, box = step
            session.add_prompt(ObjectPrompt(frame, obj, points=points, box=box))
        else:
            _, start, reverse = step
            for result in session.propagate(start=start, reverse=reverse):
                out[(n, result.frame)] = result.masks
                for score in result.scores.values():
                    assert 0.0 <= score <= 1.0
    return out


@torch.inference_mode()
def test_same_masks_as_video_predictor(model, tmp_path):
    frames, ids = moving_blobs(FRAMES, size=(64, 80), objects=2, seed=3)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{i:05d}.png")
    ys, xs = np.nonzero(ids[1] == 2)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    steps = [
        ("prompt", 1, 1, centre_click(ids[1] == 1), None),
        ("prompt", 1, 2, None, box),
        ("propagate", 1, False),
        ("propagate", 1, True),
        # a correction on a tracked frame, then propagation from it
        ("prompt", 4, 1, np.array([[30.0, 20.0, 0.0], *centre_click(ids[4] == 1)]), None),
        ("propagate", 4, False),
    ]
    theirs = _direct(model, tmp_path, steps)
    ours = _ours(model, frames, steps)
    assert sorted(ours) == sorted(theirs)
    assert [f for n, f in sorted(ours) if n == 3] == [0, 1]
    for key, masks in theirs.items():
        assert set(ours[key]) == set(masks)
        for obj, mask in masks.items():
            np.testing.assert_array_equal(ours[key][obj], mask, err_msg=f"{key} object {obj}")
