"""The image-model tracker with the built-in model: it follows objects (a floor no random
model reaches), loses an object that leaves and finds it again, holds bounded state, and a
correction click refines the tracked mask (never losing the object)."""

from __future__ import annotations

import numpy as np
import pytest

import segany
from segany.data.textures import fractal_noise
from segany.evaluation.metrics import click_from_error
from segany.track import ObjectPrompt, build_tracker
from track_helpers import centre_click, iou, moving_blobs, sequence_of


@pytest.fixture(scope="module")
def model():
    return segany.build_sam("segany-tiny-v2")


def _track(tracker, frames, ids, objects, frame=0):
    session = tracker.open(sequence_of(frames))
    for obj in objects:
        session.add_prompt(ObjectPrompt(frame, obj, points=centre_click(ids[frame] == obj)))
    return session, list(session.propagate())


def test_follows_two_crossing_objects(model):
    frames, ids = moving_blobs(10, size=(120, 160), objects=2, seed=1)
    _, results = _track(build_tracker(model), frames, ids, (1, 2))
    scores = {obj: [iou(r.masks[obj], ids[r.frame] == obj) for r in results] for obj in (1, 2)}
    assert np.mean(scores[1]) >= 0.75 and np.mean(scores[2]) >= 0.75
    assert min(min(s) for s in scores.values()) >= 0.5


def test_lost_then_found(model):
    hidden = (4, 5, 6)
    frames, ids = moving_blobs(10, size=(120, 160), objects=1, seed=2, hidden=hidden)
    _, results = _track(build_tracker(model), frames, ids, (1,))
    for r in results:
        truth = ids[r.frame] == 1
        if r.frame in hidden:
            assert r.masks[1].sum() <= 0.1 * (ids[0] == 1).sum(), r.frame  # gone: (almost) empty
        elif r.frame >= 8:
            assert iou(r.masks[1], truth) >= 0.6, r.frame  # found again
    # the confidence says when it is lost
    lost_below = build_tracker(model).config.lost_below
    assert all((r.scores[1] < lost_below) == (r.frame in hidden) for r in results)


def test_state_is_bounded(model):
    frames, ids = moving_blobs(9, size=(96, 128), objects=1, seed=3)
    tracker = build_tracker(model, history_frames=2, image_size=256)
    session = tracker.open(sequence_of(frames))
    session.add_prompt(ObjectPrompt(0, 1, points=centre_click(ids[0] == 1)))
    sizes = []
    for _ in session.propagate():
        sizes.append(session.state_bytes())
        assert len(session.history[1]) <= 2 and len(session.states) == 1
    low = session.grid.low
    # after the history filled: the same arrays, histories within 2 frames of packed bits
    assert max(sizes[2:]) - min(sizes[2:]) <= 2 * (low[0] * low[1] // 8)


def _two_parts(frames: int, seed: int, colour_b=(40, 90, 230), size=(120, 160)):
    """(T, H, W, 3) uint8 frames of a red ellipse A with an ellipse B of `colour_b` (RGB)
    touching its right side, both moving, over a textured background; (T, H, W) bool masks
    of A and of B."""
    rng = np.random.default_rng(seed)
    height, width = size
    ground = fractal_noise(rng, height, width, cells=6)[..., None]
    background = (60 + 80 * ground * np.array([0.8, 1.0, 0.7])).astype(np.float32)
    grain = fractal_noise(rng, height, width, cells=16)[..., None] - 0.5
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    video = np.zeros((frames, height, width, 3), np.uint8)
    part_a = np.zeros((frames, height, width), bool)
    part_b = np.zeros_like(part_a)
    for t in range(frames):
        cx, cy = 55 + 2 * t, 60 + t
        part_a[t] = ((xs - cx) / 22) ** 2 + ((ys - cy) / 18) ** 2 <= 1
        part_b[t] = (((xs - cx - 30) / 16) ** 2 + ((ys - cy) / 14) ** 2 <= 1) & ~part_a[t]
        image = background.copy()
        for part, colour in ((part_a[t], (220, 60, 40)), (part_b[t], colour_b)):
            image[part] = (np.array(colour, np.float32) + 50 * grain)[part]
        video[t] = np.clip(image, 0, 255).astype(np.uint8)
    return video, part_a, part_b


def _corrected(model, video, part_a, truth, w):
    """Track A from a click on frame 0, then correct frame w with the evaluation's click
    (deepest in the largest error to `truth`) and propagate from w: (masks before by frame,
    the click, the corrected frame's mask, masks after by frame)."""
    session = build_tracker(model).open(sequence_of(video))
    session.add_prompt(ObjectPrompt(0, 1, points=centre_click(part_a[0])))
    before = {r.frame: r.masks[1] for r in session.propagate()}
    click = click_from_error(before[w], truth[w])
    corrected = session.add_prompt(ObjectPrompt(w, 1, points=np.array([click], float)))
    after = {r.frame: r.masks[1] for r in session.propagate(start=w)}
    return before, click, corrected.masks[1], after


def test_background_click_beside_the_object_keeps_it(model):
    """B looks like A but is background; the tracked mask spills onto it, and the correction
    is a background click there. The decoder, with no foreground click, segments nothing:
    that must not replace the tracked mask (the object stays, on the frame and after it)."""
    video, part_a, part_b = _two_parts(8, seed=6, colour_b=(220, 60, 40))
    w = 4
    before, click, mask, after = _corrected(model, video, part_a, part_a, w)
    assert click[2] == 0 and part_b[w][click[1], click[0]]  # on the spill, outside A
    assert sorted(after) == [4, 5, 6, 7]
    after[w] = mask
    for t, mask in after.items():
        assert np.count_nonzero(mask & part_a[t]) >= 0.8 * part_a[t].sum(), t  # not lost
        assert iou(mask, part_a[t]) >= iou(before[t], part_a[t]) - 0.01, t


def test_foreground_click_on_a_missed_part_adds_it(model):
    """The object is A + B (two colours); tracked from a click on A, B is partly missed. A
    foreground click on B raises the IoU on the frame, and the frames after keep the gain."""
    video, part_a, part_b = _two_parts(6, seed=5)
    truth = part_a | part_b
    w = 3
    before, click, mask, after = _corrected(model, video, part_a, truth, w)
    assert click[2] == 1 and part_b[w][click[1], click[0]]
    assert iou(mask, truth[w]) > iou(before[w], truth[w]) + 0.05
    assert sorted(after) == [3, 4, 5]
    for t, mask in after.items():
        assert np.count_nonzero(mask & part_a[t]) >= 0.8 * part_a[t].sum(), t
        assert iou(mask, truth[t]) > iou(before[t], truth[t]), t
