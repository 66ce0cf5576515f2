"""Synthetic videos and volumes with ground truth (the sequence yardstick's data): determinism,
masks that agree with what is drawn, occlusion, prompt frames, sequences, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from segany.data.synthetic_video import (
    HELD_OUT_START,
    VideoConfig,
    held_out_seeds,
    make_video,
)
from segany.data.synthetic_volume import make_volume
from segany.errors import ConfigError, DataError
from segany.sequences import FrameSequence

SIZE = (96, 128)  # small frames keep every test fast


def test_same_seed_same_video_pixel_for_pixel():
    a = make_video(HELD_OUT_START, length=6, size=SIZE)
    b = make_video(HELD_OUT_START, length=6, size=SIZE)
    assert a.objects == b.objects and a.prompt_frames == b.prompt_frames
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.masks, b.masks)
    c = make_video(HELD_OUT_START + 1, length=6, size=SIZE)
    assert not np.array_equal(a.frames, c.frames)


def test_a_frame_rendered_alone_equals_the_same_frame_in_order():
    video = make_video(HELD_OUT_START + 2, length=8, size=SIZE)
    frames, masks = video.frames, video.masks
    again = make_video(HELD_OUT_START + 2, length=8, size=SIZE)
    np.testing.assert_array_equal(again.frame(5), frames[5])  # no state carried over frames
    np.testing.assert_array_equal(again.mask(3), masks[3])
    assert frames.shape == (8, *SIZE, 3) and frames.dtype == np.uint8
    assert masks.shape == (8, *SIZE) and masks.dtype == np.uint8


@pytest.mark.parametrize("seed", list(held_out_seeds(6)))
def test_ids_and_prompt_frames(seed):
    video = make_video(seed, length=10, size=SIZE)
    assert 1 <= len(video.objects) <= 3
    assert video.objects == tuple(range(1, len(video.objects) + 1))
    masks = video.masks
    assert set(np.unique(masks)) <= {0, *video.objects}
    assert set(video.prompt_frames) == set(video.objects)
    for k, first in video.prompt_frames.items():
        areas = (masks == k).sum(axis=(1, 2))
        assert areas[first] >= video.prompt_area  # something to click on
        assert (areas[:first] < video.prompt_area).all()  # and no earlier frame has it
        assert video.kinds[k] in VideoConfig().kinds


def test_masks_are_the_visible_part_of_each_silhouette():
    video = make_video(HELD_OUT_START + 3, length=5, size=SIZE)
    for t in range(len(video)):
        ids = video.mask(t)
        for k in video.objects:
            shape = video.silhouette(t, k)
            assert not ((ids == k) & ~shape).any()  # visible pixels lie inside the shape


def test_objects_occlude_each_other_and_move():
    hidden_somewhere, several = False, 0
    for seed in held_out_seeds(12):
        video = make_video(seed, length=24, size=SIZE)
        if len(video.objects) < 2:
            continue
        several += 1
        for t in range(len(video)):
            ids = video.mask(t)
            for k in video.objects:
                # Pixels of k's shape that another object paints over.
                if (video.silhouette(t, k) & (ids != k) & (ids != 0)).sum() > 20:
                    hidden_somewhere = True
        first, last = video.mask(0), video.mask(len(video) - 1)
        assert not np.array_equal(first, last)
    assert several >= 3  # the seeds make multi-object videos
    assert hidden_somewhere


def test_the_background_pans():
    config = VideoConfig(num_objects=(1, 1), pan_speed=(0.02, 0.02), noise_std=(0, 0))
    video = make_video(HELD_OUT_START, length=3, size=SIZE, config=config)
    a, b = video.frame(0), video.frame(1)
    still = (video.mask(0) == 0) & (video.mask(1) == 0)
    assert (a != b)[still].mean() > 0.3  # the background itself moved


def test_sequences_array_and_lazy():
    video = make_video(HELD_OUT_START + 4, length=4, size=SIZE)
    for lazy in (False, True):
        sequence = video.sequence(lazy=lazy)
        assert isinstance(sequence, FrameSequence)
        assert len(sequence) == 4 and (sequence.height, sequence.width) == SIZE
        assert sequence.kind == "video"
        np.testing.assert_array_equal(sequence.rgb(2), video.frame(2))


def test_tuning_and_held_out_seeds_use_different_photos():
    assert held_out_seeds(3) == range(HELD_OUT_START, HELD_OUT_START + 3)
    assert held_out_seeds(2, start=5)[0] == HELD_OUT_START + 5
    tuning = make_video(0, length=2, size=SIZE)
    assert len(tuning.objects) >= 1


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"seed": -1}, ConfigError, "seed"),
        ({"seed": 1.5}, ConfigError, "seed"),
        ({"length": 0}, ConfigError, "length"),
        ({"size": (16, 128)}, ConfigError, "size"),
        ({"size": (64,)}, ConfigError, "size"),
        ({"config": VideoConfig(object_size=(0.01, 0.01))}, DataError, "layout"),
    ],
)
def test_bad_arguments(kwargs, error, words):
    arguments = {"seed": HELD_OUT_START, "length": 2, "size": SIZE, **kwargs}
    with pytest.raises(error, match=words):
        make_video(**arguments)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_objects": (0, 2)},
        {"num_objects": (3, 2)},
        {"object_size": (0.0, 0.1)},
        {"speed": (0.2, 0.1)},
        {"scale_swing": 1.0},
        {"kinds": ("hexagon",)},
        {"distractors": (2, 1)},
        {"texture_contrast": 1.5},
    ],
)
def test_bad_config(kwargs):
    with pytest.raises(ConfigError):
        VideoConfig(**kwargs)


def test_frame_out_of_range():
    video = make_video(HELD_OUT_START, length=3, size=SIZE)
    with pytest.raises(DataError, match="out of range"):
        video.frame(3)
    with pytest.raises(DataError, match="no object"):
        video.silhouette(0, 9)


VOLUME = (24, 40, 48)  # (D, H, W)


def test_volume_determinism_and_labels():
    a, b = make_volume(HELD_OUT_START, VOLUME), make_volume(HELD_OUT_START, VOLUME)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.image.shape == VOLUME and a.image.dtype == np.uint8
    assert a.labels.shape == VOLUME and a.labels.dtype == np.uint8
    assert set(np.unique(a.labels)) == {0, *a.objects}
    assert not np.array_equal(a.image, make_volume(HELD_OUT_START + 1, VOLUME).image)


def test_volume_blobs_run_through_slices_and_stand_out():
    volume = make_volume(HELD_OUT_START + 2, VOLUME)
    for k, best in volume.prompt_slices.items():
        areas = (volume.labels == k).sum(axis=(1, 2))
        assert areas[best] == areas.max() > 0
        assert (areas > 0).sum() >= 4  # a blob, not a slice's spot
        inside = volume.image[volume.labels == k].astype(float).mean()
        outside = volume.image[volume.labels == 0].astype(float).mean()
        assert abs(inside - outside) > 10


def test_volume_sequence():
    volume = make_volume(HELD_OUT_START, VOLUME)
    sequence = volume.sequence()
    assert sequence.kind == "volume" and len(sequence) == VOLUME[0]
    assert sequence.volume is not None and sequence.volume.shape == VOLUME
    np.testing.assert_array_equal(sequence.rgb(3)[..., 1], volume.image[3])


@pytest.mark.parametrize(
    "kwargs", [{"seed": -2}, {"shape": (8, 40, 40)}, {"shape": (40, 40)}, {"seed": True}]
)
def test_volume_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        make_volume(**{"seed": 0, "shape": VOLUME, **kwargs})
