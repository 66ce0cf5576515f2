"""segany.track: the Tracker interface on both trackers (the image-model tracker with the
built-in model, SAM 2's memory tracker with random weights), and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import segany
from segany.errors import ConfigError, NotFoundError, PromptError
from segany.track import ObjectPrompt, build_tracker
from segany.track.image_tracker import ImageTracker
from segany.track.sam2_tracker import Sam2VideoTracker
from track_helpers import centre_click, moving_blobs, sequence_of

FRAMES = 6


@pytest.fixture(scope="module")
def video():
    return moving_blobs(FRAMES, size=(96, 128), objects=2)


@pytest.fixture(scope="module")
def image_tracker():
    # the built-in model's encoder at 256 px: the same weights, 4x less work for the tests
    return build_tracker(segany.build_sam("segany-tiny-v2"), image_size=256)


@pytest.fixture(scope="module")
def sam2_tracker():
    model = segany.build_sam("sam2.1_hiera_t", pretrained=False, seed=0, image_size=64)
    return build_tracker(model)


@pytest.fixture(params=["image", "sam2"])
def tracker(request, image_tracker, sam2_tracker):
    return image_tracker if request.param == "image" else sam2_tracker


def test_build_tracker_picks_by_model(image_tracker, sam2_tracker):
    assert isinstance(image_tracker, ImageTracker)
    assert isinstance(sam2_tracker, Sam2VideoTracker)
    assert image_tracker.model.image_size == 256
    with pytest.raises(ConfigError, match="unknown image-tracker option"):
        build_tracker(image_tracker.model, lost_threshold=0.2)
    with pytest.raises(ConfigError, match="unknown SAM 2 tracker option"):
        build_tracker(sam2_tracker.predictor.model, image_size=128)
    with pytest.raises(ConfigError, match="needs a segany model"):
        build_tracker(object())
    with pytest.raises(ConfigError, match="lost_below"):
        build_tracker(image_tracker.model, lost_below=1.5)


def _prompt_two(session, ids, frame):
    for obj in (1, 2):
        session.add_prompt(ObjectPrompt(frame, obj, points=centre_click(ids[frame] == obj)))


def test_forward_backward_two_objects(tracker, video):
    frames, ids = video
    session = tracker.open(sequence_of(frames))
    k = 2
    _prompt_two(session, ids, k)
    forward = list(session.propagate(start=k))
    assert [r.frame for r in forward] == list(range(k, FRAMES))
    backward = list(session.propagate(start=k, reverse=True))
    assert [r.frame for r in backward] == list(range(k, -1, -1))
    for result in forward + backward:
        assert set(result.masks) == {1, 2} == set(result.scores)
        for obj in (1, 2):
            mask = result.masks[obj]
            assert mask.shape == (96, 128) and mask.dtype == bool
            assert 0.0 <= result.scores[obj] <= 1.0
        assert not (result.masks[1] & result.masks[2]).any()  # no pixel in two objects
    # defaults: from the earliest prompted frame forward, the latest backward; max_frames
    assert [r.frame for r in session.propagate(max_frames=2)] == [k, k + 1]
    assert [r.frame for r in session.propagate(reverse=True, max_frames=1)] == [k]
    assert [r.frame for r in session.propagate(start=0, reverse=True)] == [0]
    session.close()


def test_remove_object_and_correction(tracker, video):
    frames, ids = video
    session = tracker.open(sequence_of(frames))
    _prompt_two(session, ids, 0)
    session.remove_object(2)
    results = list(session.propagate())
    assert all(set(r.masks) == {1} for r in results)
    with pytest.raises(NotFoundError, match="object 2 is not in this session"):
        session.remove_object(2)
    # a correction on frame 3 (a box round object 1) answers on that frame, and propagation
    # resumes from it
    ys, xs = np.nonzero(ids[3] == 1)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
    corrected = session.add_prompt(ObjectPrompt(3, 1, box=box))
    assert corrected.frame == 3 and set(corrected.masks) == {1}
    resumed = list(session.propagate(start=3))
    assert [r.frame for r in resumed] == [3, 4, 5]
    np.testing.assert_array_equal(resumed[0].masks[1], corrected.masks[1])


@pytest.mark.parametrize(
    ("prompt", "error", "message"),
    [
        (ObjectPrompt(FRAMES, 1, points=[[10, 10, 1]]), PromptError, "sequence has 6 frames"),
        (ObjectPrompt(-1, 1, points=[[10, 10, 1]]), PromptError, "sequence has 6 frames"),
        (ObjectPrompt(0, 0, points=[[10, 10, 1]]), PromptError, "0 is the background"),
        (ObjectPrompt(0, -3, points=[[10, 10, 1]]), PromptError, "ids start at 1"),
        (ObjectPrompt(0, True, points=[[10, 10, 1]]), PromptError, "must be an int"),
        (ObjectPrompt(0, 1), PromptError, "neither points nor a box"),
        (ObjectPrompt(0, 1, points=[[10, 10]]), PromptError, r"shape \(N, 3\)"),
        (ObjectPrompt(0, 1, points=[[10, 10, 2]]), PromptError, "label must be 1"),
        (ObjectPrompt(0, 1, points=[["a", 1, 1]]), PromptError, "must be numbers"),
        (ObjectPrompt(0, 1, points=[[np.nan, 1, 1]]), PromptError, "finite"),
        (ObjectPrompt(0, 1, points=[[500, 10, 1]]), PromptError, "outside the 128x96 frame"),
        (ObjectPrompt(0, 1, box=[10, 10, 5, 20]), PromptError, "x0 < x1"),
        (ObjectPrompt(0, 1, box=[1, 2, 3]), PromptError, "4 numbers"),
        (ObjectPrompt(0, 1, box=[200, 200, 300, 300]), PromptError, "outside the 128x96"),
        ({"frame": 0, "object": 1}, PromptError, "ObjectPrompt"),
    ],
)
def test_bad_prompts(tracker, video, prompt, error, message):
    session = tracker.open(sequence_of(video[0]))
    with pytest.raises(error, match=message):
        session.add_prompt(prompt)


def test_bad_propagation(tracker, video):
    # checked when propagate is called, before any frame is tracked
    session = tracker.open(sequence_of(video[0]))
    with pytest.raises(PromptError, match="no object has a prompt"):
        session.propagate()
    session.add_prompt(ObjectPrompt(0, 1, points=[[40, 40, 1]]))
    with pytest.raises(PromptError, match="cannot start at frame 9"):
        session.propagate(start=9)
    with pytest.raises(ConfigError, match="max_frames must be >= 1"):
        session.propagate(max_frames=0)
    with pytest.raises(PromptError, match="object id 0 is not allowed"):
        session.remove_object(0)
