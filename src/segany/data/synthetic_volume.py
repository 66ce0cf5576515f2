"""Synthetic volumes with ground truth: the 3-D side of the trackers' yardstick (issue 26).

A volume is a grey 3-D image, like a CT or MR scan: smooth "tissue" whose brightness drifts
across space, holding 1-3 blobs (ellipsoids in random orientations whose surfaces a smooth
random field bends) brighter or darker than what surrounds them, each with its own texture,
the whole slightly blurred (partial volume) and noisy. Each blob runs through many slices,
growing and shrinking from slice to slice as an organ or a lesion does.

Arrays are (D, H, W): slice i is `image[i]`, an (H, W) picture, x along W and y along H.
Every volume is a pure function of its seed and shape; seeds from
`segany.data.synthetic_video.HELD_OUT_START` up are the yardstick's (the generator takes no
photos, so the seed ranges only keep tuning and reporting apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from segany.errors import ConfigError, DataError
from segany.sequences import ArraySequence, FrameSequence, VolumeInfo

_MAX_OVERLAP = 0.05  # share of a new blob that may lie in earlier ones
_TRIES = 5  # places tried for a blob before it is left out


@dataclass(frozen=True)
class SyntheticVolume:
    """image: (D, H, W) uint8 grey; labels: (D, H, W) uint8 blob ids (0 background, 1..K);
    objects: (1, .., K); spacing: voxel size (mm) along D, H, W."""

    seed: int
    image: np.ndarray
    labels: np.ndarray
    objects: tuple[int, ...]
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __len__(self) -> int:
        return self.image.shape[0]

    @property
    def prompt_slices(self) -> dict[int, int]:
        """id -> the slice where the blob's cross-section is largest (where it is clicked)."""
        return {k: int(np.argmax((self.labels == k).sum(axis=(1, 2)))) for k in self.objects}

    def sequence(self) -> FrameSequence:
        """The slices along D as a volume `FrameSequence` (an `ArraySequence`), with a
        `VolumeInfo` whose affine scales voxels by `spacing`."""
        affine = np.diag([*self.spacing, 1.0])
        info = VolumeInfo(
            format="nifti", shape=self.image.shape, axis=0, affine=affine, spacing=self.spacing
        )
        return ArraySequence(self.image, kind="volume", volume=info)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], cells: int) -> np.ndarray:
    """`shape` float32 in [0, 1]: random values on a lattice of `cells` + 1 points per axis,
    interpolated with smooth steps between them (a smooth random field), one axis at a time."""
    field = rng.random(tuple(cells + 1 for _ in shape), dtype=np.float32)
    for axis, size in enumerate(shape):
        t = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(cells / size)
        i = np.minimum(t.astype(np.int64), cells - 1)
        weights = np.zeros((size, cells + 1), dtype=np.float32)  # (size, cells + 1)
        f = t - i
        f = f * f * (3 - 2 * f)  # smooth-step: no creases at the lattice planes
        weights[np.arange(size), i] = 1 - f
        weights[np.arange(size), i + 1] = f
        field = np.moveaxis(np.tensordot(weights, field, axes=([1], [axis])), 0, axis)
    return np.ascontiguousarray(field)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) rotation of (d, h, w) vectors: a random turn within the slices, then a tilt of
    up to 0.5 rad about a random in-slice axis (so a blob's long axis stays near D)."""
    spin = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(spin), np.sin(spin)
    turn = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    axis = np.array([0.0, *_unit(rng.uniform(0, 2 * np.pi))])
    tilt = rng.uniform(0, 0.5)
    cross = np.array(
        [[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]]
    )  # (3, 3): cross @ v = axis x v
    lean = np.eye(3) + np.sin(tilt) * cross + (1 - np.cos(tilt)) * cross @ cross  # Rodrigues
    return lean @ turn


def _unit(angle: float) -> tuple[float, float]:
    return float(np.cos(angle)), float(np.sin(angle))


def _blob(
    rng: np.random.Generator, shape: tuple[int, int, int]
) -> tuple[tuple[slice, ...], np.ndarray]:
    """One blob: (the (D, H, W) window it lies in, its (d, h, w) bool voxels there)."""
    dims = np.asarray(shape, dtype=np.float64)
    radii = dims * rng.uniform(0.08, 0.22, 3)
    radii[0] = dims[0] * rng.uniform(0.15, 0.3)  # long across the slices: seen in many
    centre = dims * rng.uniform(0.3, 0.7, 3)
    reach = 1.3 * radii.max()
    lo = np.maximum(np.floor(centre - reach), 0).astype(int)
    hi = np.minimum(np.ceil(centre + reach) + 1, dims).astype(int)
    window = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    # (d, 1, 1), (1, h, 1), (1, 1, w): voxel offsets from the centre along D, H, W.
    axes = [
        (np.arange(a, b, dtype=np.float32) - np.float32(c)).reshape([-1 if i == j else 1
                                                                     for j in range(3)])
        for i, (a, b, c) in enumerate(zip(lo, hi, centre, strict=True))
    ]  # fmt: skip
    rotation = _rotation(rng).astype(np.float32)  # columns: the blob's axes in (d, h, w)
    distance = np.zeros(tuple(hi - lo), dtype=np.float32)  # 1 on the ellipsoid's surface
    for i in range(3):
        along = axes[0] * rotation[0, i] + axes[1] * rotation[1, i] + axes[2] * rotation[2, i]
        distance += (along / np.float32(radii[i])) ** 2
    bend = _smooth_field(rng, distance.shape, 4) - np.float32(0.5)
    distance += np.float32(rng.uniform(0.6, 1.2)) * bend
    return window, distance <= 1.0


def make_volume(seed: int, shape: tuple[int, int, int] = (200, 256, 256)) -> SyntheticVolume:
    """The volume of `seed` (an int >= 0), `shape` (D, H, W) voxels, each side >= 16.

    Raises `ConfigError` for a bad seed or shape, `DataError` when no blob fits."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be an int >= 0, got {seed!r}")
    if len(shape) != 3 or min(shape) < 16:
        raise ConfigError(f"shape must be (depth, height, width), each >= 16, got {shape!r}")
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    tissue = 60 + 80 * _smooth_field(rng, shape, 6)  # (D, H, W) float32
    labels = np.zeros(shape, dtype=np.uint8)
    count = 0
    for _ in range(int(rng.integers(1, 4))):
        for _ in range(_TRIES):
            window, inside = _blob(rng, shape)
            # Blobs barely touch: each stays (nearly) whole, as organs do.
            if np.count_nonzero(labels[window][inside]) <= _MAX_OVERLAP * inside.sum():
                break
        else:
            continue
        count += 1
        contrast = rng.uniform(30, 70) * rng.choice([-1.0, 1.0])
        texture = rng.uniform(5, 20) * (_smooth_field(rng, inside.shape, 8) - 0.5)
        region = tissue[window]
        region[inside] += np.float32(contrast) + texture[inside]
        labels[window][inside] = count
    if count == 0:
        raise DataError(f"volume seed {seed}: no blob fits; use another seed or a larger shape")
    image = ndimage.gaussian_filter(tissue, 0.7)  # partial volume: edges a voxel soft
    del tissue
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise *= np.float32(rng.uniform(3, 10))
    image += noise
    del noise
    image += np.float32(0.5)
    image = np.clip(image, 0, 255, out=image).astype(np.uint8)
    return SyntheticVolume(int(seed), image, labels, tuple(range(1, count + 1)))
