"""Evaluation: data specs, the metric functions on hand-made masks, the Evaluator with fake
predictors, and `segany eval` end to end on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest

from segany.data import Sample
from segany.data.spec import SyntheticScenes, open_dataset
from segany.errors import DataError


def test_synthetic_spec_generates_the_split_scenes():
    dataset = open_dataset("synthetic:test:3:64")
    assert isinstance(dataset, SyntheticScenes)
    assert len(dataset) == 3
    sample = dataset[0]
    assert isinstance(sample, Sample)
    assert sample.image.shape == (64, 64, 3)
    assert sample.masks.size == (64, 64)
    assert sample.name == dataset[-3].name != dataset[1].name
    np.testing.assert_array_equal(sample.image, open_dataset("synthetic:test:1:64")[0].image)


def test_synthetic_spec_default_size():
    assert open_dataset("synthetic:val:1")[0].image.shape == (256, 256, 3)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "synthetic",
        "synthetic:",
        "synthetic:test",
        "synthetic:nope:2",
        "synthetic:test:0",
        "synthetic:test:x",
        "synthetic:test:2:-5",
        "synthetic:test:2:8",
        "synthetic:test:2:64:1",
        "unknown:path",
        "coco:annotations.json",
        "coco::images",
    ],
)
def test_bad_specs_name_the_accepted_forms(spec):
    with pytest.raises(DataError, match="synthetic:SPLIT:COUNT|too small"):
        open_dataset(spec)


@pytest.mark.parametrize("kind", ["pool", "sa1b", "folder"])
def test_missing_folders_are_data_errors(tmp_path, kind):
    with pytest.raises(DataError):
        open_dataset(f"{kind}:{tmp_path / 'missing'}")


def test_coco_spec_missing_annotation_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_dataset(f"coco:{tmp_path / 'missing.json'}:{tmp_path}")
