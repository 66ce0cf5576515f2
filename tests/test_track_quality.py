"""The image-model tracker with the built-in model: it follows objects (a floor no random
model reaches), loses an object that leaves and finds it again, and holds bounded state."""

from __future__ import annotations

import numpy as np
import pytest

import segany
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
