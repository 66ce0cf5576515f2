"""Drawn scenes (`segany.data.drawn`, the `drawn:` spec): the second generator, in the style of
the README's sample, that checks the model on pictures the yardstick's generator never made."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from segany.cli.main import main
from segany.data.drawn import HEIGHT, MAX_PART_SHARE, MIN_AREA, WIDTH, DrawnScenes, make_drawn_scene
from segany.data.spec import SPEC_FORMS, open_dataset
from segany.errors import DataError

SEEDS = range(12)


@pytest.fixture(scope="module")
def scenes():
    return [make_drawn_scene(seed) for seed in SEEDS]


def test_drawn_scenes_are_deterministic():
    first, again = make_drawn_scene(5), make_drawn_scene(5)
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.masks, again.masks)
    assert np.array_equal(first.parent, again.parent) and first.kinds == again.kinds
    assert not np.array_equal(first.image, make_drawn_scene(6).image)


def test_drawn_masks_nest_in_their_parents(scenes):
    for scene in scenes:
        assert scene.image.shape == (HEIGHT, WIDTH, 3) and scene.image.dtype == np.uint8
        count = len(scene.masks)
        assert scene.masks.shape == (count, HEIGHT, WIDTH) and len(scene.kinds) == count
        assert count >= 2
        for i, parent in enumerate(scene.parent):
            area = scene.masks[i].sum()
            assert area >= MIN_AREA
            if parent >= 0:
                assert parent < i and scene.kinds[parent] not in ("ground",)
                whole = scene.masks[parent]
                assert not (scene.masks[i] & ~whole).any()  # a part stays inside its shape
                assert area <= MAX_PART_SHARE * whole.sum()


def test_drawn_scenes_have_what_the_yardstick_lacks(scenes):
    kinds = [kind for scene in scenes for kind in scene.kinds]
    objects = sum(int((scene.parent < 0).sum()) for scene in scenes)
    assert "ground" in kinds and objects > 3 * (len(kinds) - objects)  # few parts
    # Shapes occlude one another: some object is cut by a later one (its mask has fewer pixels
    # than its convex outline would).
    occluded = 0
    for scene in scenes:
        for i in np.nonzero(scene.parent < 0)[0]:
            filled = ndimage.binary_fill_holes(scene.masks[i])
            occluded += filled.sum() > scene.masks[i].sum() + MIN_AREA
    assert occluded > 0


def test_drawn_masks_lie_on_the_painted_shapes(scenes):
    # Away from its outline, a shape without parts is one flat colour, and a ring just outside
    # it is not that colour everywhere: the masks sit where the image was painted.
    checked = 0
    for scene in scenes:
        for i, kind in enumerate(scene.kinds):
            if kind == "ground" or (scene.parent == i).any():
                continue
            inner = ndimage.binary_erosion(scene.masks[i], iterations=3)
            if inner.sum() < 50:
                continue
            pixels = scene.image[inner].astype(np.float32)
            assert pixels.std(axis=0).max() < 1.0, (i, kind)
            ring = ndimage.binary_dilation(scene.masks[i], iterations=3) & ~scene.masks[i]
            outside = scene.image[ring].astype(np.float32)
            assert np.abs(outside - pixels.mean(axis=0)).max() > 20
            checked += 1
    assert checked >= 20


def test_drawn_edges_are_antialiased():
    scene = make_drawn_scene(0)
    colours = {tuple(c) for c in scene.image.reshape(-1, 3)[::97]}
    # Flat fills and a smooth gradient, but edge pixels blend neighbours: many distinct colours.
    assert len(colours) > 200


def test_drawn_spec():
    dataset = open_dataset("drawn:val:2")
    assert isinstance(dataset, DrawnScenes) and len(dataset) == 2
    sample = dataset[1]
    assert sample.image.shape == (HEIGHT, WIDTH, 3) and sample.name.startswith("drawn:val:")
    assert sample.masks.size == (HEIGHT, WIDTH) and sample.parent is not None
    assert not np.array_equal(open_dataset("drawn:test:1")[0].image, dataset[0].image)
    assert any(form.startswith("drawn:") for form in SPEC_FORMS)


@pytest.mark.parametrize("spec", ["drawn:val", "drawn:nope:2", "drawn:val:0", "drawn:val:2:512"])
def test_bad_drawn_specs(spec):
    with pytest.raises(DataError, match="bad data spec"):
        open_dataset(spec)


def test_eval_on_drawn_scenes(capsys):
    command = ["eval", "--model", "test_tiny", "--random-weights", "--quiet", "--json"]
    assert main([*command, "--data", "drawn:val:1", "--max-masks", "2", "--max-clicks", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"] == "drawn:val:1" and report["masks"] == 2
