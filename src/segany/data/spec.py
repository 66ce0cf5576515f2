"""Data specs: one string naming a dataset, as the `eval` and `train` commands take it.

synthetic:SPLIT:COUNT[:SIZE]    scenes split_seeds(SPLIT, COUNT), SIZE x SIZE px (default 256),
                                generated when indexed
pool:PATH                       a scene pool folder made by `build_pool`
sa1b:DIR                        a folder of SA-1B image + JSON pairs
coco:ANNOTATIONS.json:IMAGE_DIR a COCO instances file and the folder its file names are in
folder:DIR                      a folder of image + PNG mask pairs
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from segany.data.coco import CocoDataset
from segany.data.folder import MaskFolder
from segany.data.pool import SceneDataset
from segany.data.sa1b import SA1BDataset
from segany.data.sample import DenseMasks, Sample
from segany.data.synthetic import SPLIT_OFFSETS, SceneConfig, make_scene, split_seeds
from segany.errors import ConfigError, DataError

DEFAULT_SIZE = 256

SPEC_FORMS = (
    "synthetic:SPLIT:COUNT[:SIZE] (SPLIT one of train, val, test; e.g. synthetic:test:200:256)",
    "pool:PATH",
    "sa1b:DIR",
    "coco:ANNOTATIONS.json:IMAGE_DIR",
    "folder:DIR",
)


class SyntheticScenes:
    """Scenes `split_seeds(split, count)` under `config`, each made when indexed (a few tens of
    ms at 256 x 256; for training, pre-generate a pool with `build_pool` instead).

    `dataset[i]` is a `Sample` with dense masks and `parent` set, named "SPLIT:SEED" as a pool's
    samples are.
    """

    def __init__(self, split: str, count: int, config: SceneConfig | None = None) -> None:
        self.split = split
        self.seeds = split_seeds(split, count)
        self.config = SceneConfig() if config is None else config

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> Sample:
        seed = self.seeds[index]  # range indexing: negative indices work, IndexError past the end
        scene = make_scene(seed, self.config)
        masks = DenseMasks(scene.masks)
        return Sample(
            image=scene.image, masks=masks, name=f"{self.split}:{seed}", parent=scene.parent
        )


def open_dataset(spec: str) -> Sequence[Sample]:
    """The dataset a spec names (see the module docstring): a sequence of `Sample`s.

    Raises `DataError` for a spec of no known form, with the accepted forms, and for a dataset
    that is missing or unreadable.
    """
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        _bad(spec, "expected KIND:ARGUMENTS")
    if kind == "synthetic":
        return _synthetic(spec, rest)
    if kind == "pool":
        return SceneDataset(rest)
    if kind == "sa1b":
        return SA1BDataset(rest)
    if kind == "folder":
        return MaskFolder(rest)
    if kind == "coco":
        annotations, sep, images = rest.partition(":")
        if not sep or not annotations or not images:
            _bad(spec, "coco needs an annotation file and an image folder")
        return CocoDataset(annotations, images)
    _bad(spec, f"unknown kind {kind!r}")


def _synthetic(spec: str, rest: str) -> SyntheticScenes:
    parts = rest.split(":")
    if len(parts) not in (2, 3):
        _bad(spec, "synthetic takes SPLIT:COUNT or SPLIT:COUNT:SIZE")
    split = parts[0]
    if split not in SPLIT_OFFSETS:
        _bad(spec, f"unknown split {split!r}")
    count = _positive_int(spec, parts[1], "COUNT")
    size = _positive_int(spec, parts[2], "SIZE") if len(parts) == 3 else DEFAULT_SIZE
    try:
        config = SceneConfig(height=size, width=size)
        return SyntheticScenes(split, count, config)
    except ConfigError as e:
        raise DataError(f"data spec {spec!r}: {e}") from None


def _positive_int(spec: str, text: str, what: str) -> int:
    if not text.isdigit() or int(text) < 1:
        _bad(spec, f"{what} must be a positive integer, got {text!r}")
    return int(text)


def _bad(spec: str, why: str) -> NoReturn:
    forms = "\n  ".join(SPEC_FORMS)
    raise DataError(f"bad data spec {spec!r}: {why}. Accepted forms:\n  {forms}")
