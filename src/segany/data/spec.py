"""Data specs: one string naming a dataset, as the `eval` and `train` commands take it.

synthetic:SPLIT:COUNT[:SIZE]    v1 scenes split_seeds(SPLIT, COUNT), SIZE x SIZE px (default
                                256), generated when indexed (the old test split: half of its
                                masks under 16 x 16 px, parts at their parent's centre)
scenes:SPLIT:COUNT[:SIZE]       v2 scenes, the yardstick: SceneConfig.v2(SIZE), SIZE default
                                512 (masks mostly at least 24 x 24 px, parts anywhere in their
                                parent, whole / part / sub-part nesting)
photo:SPLIT:COUNT[:SIZE]        the same v2 layouts (the same masks seed for seed) with
                                backgrounds and fills cropped from photographs of SPLIT's own
                                photos (see `segany.data.photos`; needs scikit-image)
drawn:SPLIT:COUNT               drawn scenes (`segany.data.drawn`): 640 x 480 pictures in the
                                README sample's style from a second generator, the check on
                                scenes the yardstick's generator never made
pool:PATH                       a scene pool folder made by `build_pool`
sa1b:DIR                        SA-1B JSON files: what `segany amg --format sa1b --out DIR`
                                wrote (images where DIR/manifest.json says), else Meta's
                                layout (each image beside its JSON)
sa1b:DIR:IMAGE_ROOT             SA-1B JSON files under DIR, file names relative to IMAGE_ROOT
coco:ANNOTATIONS.json           a COCO instances file `segany amg --format coco` wrote (images
                                where the manifest.json beside it says)
coco:ANNOTATIONS.json:IMAGE_DIR a COCO instances file and the folder its file names are in
folder:DIR                      a folder of image + PNG mask pairs
SPEC + SPEC [+ ...]             the datasets interleaved (sample i from dataset i % k), each
                                giving the same number of samples (e.g. for training on
                                "scenes:train:100000 + photo:train:100000")

Paths are separated by ":"; on Windows a drive letter ("C:\\data") stays part of its path.
Images are read upright (EXIF orientation applied) by every reader, as `segany amg` and
`segany predict` read them; see `segany.data.sample.read_rgb` for the one exception.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from segany.data.coco import CocoDataset
from segany.data.drawn import DrawnScenes
from segany.data.folder import MaskFolder
from segany.data.mixed import Interleaved
from segany.data.photos import photo_textures
from segany.data.pool import SceneDataset
from segany.data.sa1b import SA1BDataset
from segany.data.sample import DenseMasks, Sample
from segany.data.synthetic import SPLIT_OFFSETS, SceneConfig, make_scene, split_seeds
from segany.errors import ConfigError, DataError
from segany.formats.manifest import MANIFEST_FILE

DEFAULT_SIZE = 256  # synthetic: (v1)
V2_SIZE = 512  # scenes: and photo:
MIX_SEPARATOR = " + "

SPEC_FORMS = (
    "synthetic:SPLIT:COUNT[:SIZE] (SPLIT one of train, val, test; e.g. synthetic:test:200:256)",
    "scenes:SPLIT:COUNT[:SIZE] (v2 scenes, SIZE default 512; e.g. scenes:test:200)",
    "photo:SPLIT:COUNT[:SIZE] (v2 layouts with photo textures, SIZE default 512; e.g. "
    "photo:test:200)",
    "drawn:SPLIT:COUNT (640 x 480 pictures in the sample's style; e.g. drawn:test:30)",
    "pool:PATH",
    "sa1b:DIR (an amg output folder, or Meta's layout)",
    "sa1b:DIR:IMAGE_ROOT",
    "coco:ANNOTATIONS.json (written by segany amg, with its manifest.json)",
    "coco:ANNOTATIONS.json:IMAGE_DIR",
    "folder:DIR",
    "SPEC + SPEC (datasets interleaved; e.g. scenes:train:1000 + photo:train:1000)",
)


class SyntheticScenes:
    """Scenes `split_seeds(split, count)` under `config`, each made when indexed (a few tens of
    ms for a v1 scene at 256 x 256, about 0.1 s for a v2 one at 512, 0.2 s with photos; for
    training, pre-generate a pool with `build_pool` instead).

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
    if MIX_SEPARATOR in spec:
        return Interleaved([open_dataset(part.strip()) for part in spec.split(MIX_SEPARATOR)])
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        _bad(spec, "expected KIND:ARGUMENTS")
    if kind in ("synthetic", "scenes", "photo"):
        return _synthetic(spec, kind, rest)
    if kind == "drawn":
        return _drawn(spec, rest)
    if kind == "pool":
        return SceneDataset(rest)
    if kind == "sa1b":
        root, image_root = _one_or_two_paths(spec, rest)
        return SA1BDataset(root, image_root)
    if kind == "folder":
        return MaskFolder(rest)
    if kind == "coco":
        return _coco(spec, rest)
    _bad(spec, f"unknown kind {kind!r}")


def _coco(spec: str, rest: str) -> CocoDataset:
    annotations, images = _one_or_two_paths(spec, rest)
    if images is None and not (Path(annotations).parent / MANIFEST_FILE).is_file():
        _bad(
            spec,
            f"no IMAGE_DIR given and no {MANIFEST_FILE} beside {annotations} (segany amg "
            "--format coco writes one); name the folder the file names are relative to",
        )
    return CocoDataset(annotations, images)


def _one_or_two_paths(spec: str, rest: str) -> tuple[str, str | None]:
    """PATH or PATH:PATH, each non-empty; `DataError` otherwise."""
    paths = _split_paths(rest)
    if len(paths) > 2 or not all(paths):
        _bad(spec, "expected one path, or two separated by ':'")
    return paths[0], paths[1] if len(paths) == 2 else None


def _split_paths(text: str, drives: bool = os.name == "nt") -> list[str]:
    """`text` split at ":", except, with `drives` (on Windows), the colon of a drive letter
    ("C:\\x", "C:/x") at the start of a path. Not on POSIX, where "a:/x" is the folder "a"
    and the absolute path "/x"."""
    paths: list[str] = []
    for part in text.split(":"):
        drive = paths and len(paths[-1]) == 1 and paths[-1].isalpha()
        if drives and drive and part.startswith(("\\", "/")):
            paths[-1] += ":" + part
        else:
            paths.append(part)
    return paths


def _synthetic(spec: str, kind: str, rest: str) -> SyntheticScenes:
    """synthetic: (v1), scenes: (v2) and photo: (v2 with photo textures) specs."""
    parts = rest.split(":")
    if len(parts) not in (2, 3):
        _bad(spec, f"{kind} takes SPLIT:COUNT or SPLIT:COUNT:SIZE")
    split = parts[0]
    if split not in SPLIT_OFFSETS:
        _bad(spec, f"unknown split {split!r}")
    count = _positive_int(spec, parts[1], "COUNT")
    default = DEFAULT_SIZE if kind == "synthetic" else V2_SIZE
    size = _positive_int(spec, parts[2], "SIZE") if len(parts) == 3 else default
    try:
        if kind == "synthetic":
            config = SceneConfig(height=size, width=size)
        else:
            config = SceneConfig.v2(size, "photo" if kind == "photo" else "procedural")
        scenes = SyntheticScenes(split, count, config)
    except ConfigError as e:
        raise DataError(f"data spec {spec!r}: {e}") from None
    if kind == "photo":
        photo_textures(split)  # now, so that a missing scikit-image is reported before any work
    return scenes


def _drawn(spec: str, rest: str) -> DrawnScenes:
    parts = rest.split(":")
    if len(parts) != 2:
        _bad(spec, "drawn takes SPLIT:COUNT")
    if parts[0] not in SPLIT_OFFSETS:
        _bad(spec, f"unknown split {parts[0]!r}")
    return DrawnScenes(parts[0], _positive_int(spec, parts[1], "COUNT"))


def _positive_int(spec: str, text: str, what: str) -> int:
    if not text.isdigit() or int(text) < 1:
        _bad(spec, f"{what} must be a positive integer, got {text!r}")
    return int(text)


def _bad(spec: str, why: str) -> NoReturn:
    forms = "\n  ".join(SPEC_FORMS)
    raise DataError(f"bad data spec {spec!r}: {why}. Accepted forms:\n  {forms}")
