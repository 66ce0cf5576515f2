"""Pools of pre-generated synthetic scenes on disk, read back as a torch Dataset.

Generating scenes during training would take a large share of each step on a 2-core CPU
(../shared/PERFORMANCE.md), so a pool is made once and sampled from. A pool is a folder:

    pool.json     format, version, split, first seed, count and the SceneConfig
    images.npy    (N, H, W, 3) uint8
    labels.npy    (N, H, W) int16, the deepest mask covering each pixel (-1: none)
    offsets.npy   (N + 1,) int64: scene n's masks are rows offsets[n]:offsets[n + 1] of
    parent.npy    (T,) int16, the parent's index within its scene (-1: a whole object)
    kind.npy      (T,) int8,  level.npy (T,) int8  (see `synthetic.Scene`)
    seeds.npy     (N,) int64, the seed of each scene

Plain .npy files, not .npz, so that they are memory-mapped: DataLoader worker processes share
the page cache and a pool larger than memory still works. Masks are rebuilt from the label map
(~1 ms at 256 x 256), which stores a scene's ~20 nested masks in 2 bytes per pixel: a 256 x 256
scene takes 320 KB on disk, 10,000 of them 3.2 GB.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import torch.utils.data

from segany.data.sample import DenseMasks, Sample, read_json
from segany.data.synthetic import Scene, SceneConfig, make_scene, split_seeds
from segany.errors import ConfigError, DataError

POOL_FORMAT = "segany-scene-pool"
POOL_VERSION = 1


def build_pool(
    split: str,
    count: int,
    config: SceneConfig | None,
    path: str | Path,
    workers: int = 0,
    start: int = 0,
    overwrite: bool = False,
) -> Path:
    """Generate scenes `split_seeds(split, count, start)` into the pool folder `path`.

    `workers` > 1 generates in that many processes (the "spawn" start method: call this from
    under `if __name__ == "__main__":` in a script); the pool is the same for any `workers`.
    The folder is written as `PATH.partial` and renamed when complete, so an interrupted build
    never leaves a pool that looks finished. Returns `path`.
    """
    config = SceneConfig() if config is None else config
    path = Path(path)
    if count < 1:
        raise ConfigError(f"a pool needs at least one scene; got count={count}")
    seeds = split_seeds(split, count, start)
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists; remove it or pass overwrite=True")
    staging = path.with_name(path.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)

    h, w = config.height, config.width
    images = np.lib.format.open_memmap(
        staging / "images.npy", mode="w+", dtype=np.uint8, shape=(count, h, w, 3)
    )
    labels = np.lib.format.open_memmap(
        staging / "labels.npy", mode="w+", dtype=np.int16, shape=(count, h, w)
    )
    offsets, parent, kind, level = [0], [], [], []
    for n, scene in enumerate(_generate(seeds, config, workers)):
        images[n] = scene.image
        labels[n] = scene.labels
        offsets.append(offsets[-1] + len(scene))
        parent.append(scene.parent)
        kind.append(scene.kind)
        level.append(scene.level)
    images.flush()
    labels.flush()
    del images, labels  # close the memory maps before the folder is renamed

    np.save(staging / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    np.save(staging / "parent.npy", np.concatenate(parent).astype(np.int16))
    np.save(staging / "kind.npy", np.concatenate(kind).astype(np.int8))
    np.save(staging / "level.npy", np.concatenate(level).astype(np.int8))
    np.save(staging / "seeds.npy", np.asarray(seeds, dtype=np.int64))
    meta = {
        "format": POOL_FORMAT,
        "version": POOL_VERSION,
        "split": split,
        "start": start,
        "count": count,
        "config": asdict(config),
    }
    (staging / "pool.json").write_text(json.dumps(meta, indent=2) + "\n")
    if path.exists():
        shutil.rmtree(path)
    staging.rename(path)
    return path


def _generate(seeds: range, config: SceneConfig, workers: int) -> Iterator[Scene]:
    """Scenes of `seeds`, in order."""
    make = partial(make_scene, config=config)
    if workers <= 1:
        yield from map(make, seeds)
        return
    # spawn: forking a process that runs torch's thread pools can deadlock the children.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(make, seeds, chunksize=16)


class SceneDataset(torch.utils.data.Dataset):
    """A pool made by `build_pool`: `dataset[i]` is a `Sample` (dense masks, `parent` set) and
    `dataset.scene(i)` the `Scene` with its kind and level metadata.

    The image and label arrays are memory-mapped on first use in each process (never pickled
    into DataLoader workers).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if not (self.path / "pool.json").is_file():
            raise DataError(
                f"{self.path} is not a scene pool (no pool.json); make one with build_pool"
            )
        meta = read_json(self.path / "pool.json")
        if not isinstance(meta, dict) or meta.get("format") != POOL_FORMAT:
            raise DataError(f"{self.path}/pool.json is not a {POOL_FORMAT} description")
        if meta.get("version") != POOL_VERSION:
            raise DataError(
                f"{self.path} is a version {meta.get('version')} pool; this segany reads version "
                f"{POOL_VERSION}: rebuild it with build_pool"
            )
        self.split: str = meta["split"]
        try:
            self.config = SceneConfig(**meta["config"])
        except (KeyError, TypeError) as e:
            raise DataError(f"{self.path}/pool.json: unusable scene config ({e})") from None
        self.offsets = self._load("offsets.npy")
        self.parent = self._load("parent.npy")
        self.kind = self._load("kind.npy")
        self.level = self._load("level.npy")
        self.seeds = self._load("seeds.npy")
        if len(self.offsets) != len(self.seeds) + 1 or self.offsets[-1] != len(self.parent):
            raise DataError(f"{self.path}: index arrays disagree (an incomplete copy?)")
        self._images: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def _load(self, name: str, mmap: bool = False) -> np.ndarray:
        try:
            return np.load(self.path / name, mmap_mode="r" if mmap else None)
        except FileNotFoundError:
            raise DataError(f"{self.path}: {name} is missing (an incomplete copy?)") from None
        except Exception as e:  # ValueError, OSError, tokenize.TokenError, ...
            # numpy parses a damaged header with Python's tokenizer, so the errors vary widely.
            raise DataError(
                f"{self.path}: cannot read {name} ({type(e).__name__}: {e}); the pool is "
                "damaged, rebuild it with build_pool"
            ) from None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_images"] = state["_labels"] = None  # re-mapped in the receiving process
        return state

    def __len__(self) -> int:
        return len(self.seeds)

    def scene(self, index: int) -> Scene:
        if not -len(self) <= index < len(self):
            raise IndexError(f"scene {index} of a pool of {len(self)}")
        index %= len(self)
        if self._images is None or self._labels is None:
            self._images = self._load("images.npy", mmap=True)
            self._labels = self._load("labels.npy", mmap=True)
        rows = slice(self.offsets[index], self.offsets[index + 1])
        return Scene(
            image=np.array(self._images[index]),
            labels=np.array(self._labels[index]),
            parent=self.parent[rows],
            kind=self.kind[rows],
            level=self.level[rows],
        )

    def __getitem__(self, index: int) -> Sample:
        scene = self.scene(index)
        name = f"{self.split}:{int(self.seeds[index])}"
        masks = DenseMasks(scene.masks)
        return Sample(image=scene.image, masks=masks, name=name, parent=scene.parent)
