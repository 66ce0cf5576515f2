"""`VolumeSequence`: the slices of a 3-D volume as 8-bit frames, through an intensity window.

Slices are read from the file when asked (`VolumeReader`), windowed to uint8 grey and
replicated to RGB; the last few frames are kept. Frames and voxels map as
`segany.sequences.layout` says.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from segany.errors import ConfigError, ImageError
from segany.sequences.base import FrameSequence, VolumeInfo
from segany.sequences.layout import frame_order, frame_size, plane_index, plane_to_frame
from segany.sequences.window import apply_window, auto_window, parse_window

# The largest slice read (pixels): a header implying more is refused before any allocation.
MAX_SLICE_PIXELS = 2**26  # 8192 x 8192
# The most voxel bytes read into memory at once: a reader whose file cannot be sliced along
# an axis other than its own (a DICOM series, a TIFF stack) reads the whole volume for it.
MAX_VOLUME_BYTES = 2 * 2**30
# Voxels the automatic window looks at: a strided sample, never the whole volume.
_SAMPLE_SLICES = 16
_SAMPLE_PIXELS = 2**16


class VolumeReader(ABC):
    """Voxel values of a 3-D volume, `shape` as stored, read a plane at a time.

    `lazy_axis` is the axis whose planes are read alone (a file's own slices); planes along
    another axis come from the whole volume, read once (at most `MAX_VOLUME_BYTES`), unless
    the reader overrides `read_plane`.
    """

    shape: tuple[int, int, int]
    lazy_axis: int
    name: str = "volume"

    @abstractmethod
    def read_lazy(self, index: int) -> np.ndarray:
        """Plane `index` along `lazy_axis`: 2-D voxel values, the other axes in stored order."""

    def read_plane(self, axis: int, index: int) -> np.ndarray:
        """Plane `index` along `axis`: 2-D voxel values, the other axes in stored order."""
        if axis == self.lazy_axis:
            return self.read_lazy(index)
        return self.whole()[plane_index(axis, index)]

    def whole(self) -> np.ndarray:
        """The whole volume (read once, kept), `shape` as stored."""
        if getattr(self, "_whole", None) is None:
            nbytes = int(np.prod(self.shape, dtype=np.int64)) * 4
            if nbytes > MAX_VOLUME_BYTES:
                raise ConfigError(
                    f"slicing {self.name} along another axis than its own reads the whole "
                    f"volume ({nbytes / 2**30:.1f} GiB as float32), over the "
                    f"{MAX_VOLUME_BYTES / 2**30:.0f} GiB limit: slice it along axis "
                    f"{self.lazy_axis}, or convert it to NIfTI"
                )
            planes = [self.read_lazy(k) for k in range(self.shape[self.lazy_axis])]
            self._whole = np.stack(planes, axis=self.lazy_axis).astype(np.float32, copy=False)
        return self._whole

    def sample(self) -> np.ndarray:
        """A strided sample of the voxel values (up to 16 planes along `lazy_axis`, each
        subsampled to about 65k voxels), for the automatic window."""
        n = self.shape[self.lazy_axis]
        picks = np.unique(np.linspace(0, n - 1, min(n, _SAMPLE_SLICES)).round().astype(int))
        values = []
        for k in picks:
            plane = self.read_lazy(int(k))
            step = max(1, int(np.sqrt(plane.size / _SAMPLE_PIXELS)))
            values.append(np.asarray(plane[::step, ::step], dtype=np.float32).ravel())
        return np.concatenate(values)

    def close(self) -> None:
        """Release the file and the whole volume if it was read."""
        self._whole = None


def check_slice_size(name: str, shape: Sequence[int], axis: int) -> None:
    """`ImageError` if a plane along `axis` of `shape` has more than `MAX_SLICE_PIXELS` or none."""
    plane = [s for a, s in enumerate(shape) if a != axis]
    pixels = int(np.prod(plane, dtype=np.int64))
    if pixels == 0 or int(shape[axis]) == 0:
        raise ImageError(f"{name} is empty: shape {tuple(shape)}")
    if pixels > MAX_SLICE_PIXELS:
        raise ImageError(
            f"{name}'s slices along axis {axis} have {pixels} pixels ({plane[0]}x{plane[1]}), "
            f"over the {MAX_SLICE_PIXELS} pixel limit: choose another axis or crop the volume"
        )


class VolumeSequence(FrameSequence):
    """The planes of `reader` along `info.axis` as (H, W, 3) uint8 frames: voxel values through
    `window` ((center, width), a preset name or None for the 0.5-99.5 percentile window of a
    strided sample, see `segany.sequences.window`), grey replicated to RGB. `window` after
    opening is the (center, width) used. The last `cache_frames` frames are kept.
    """

    kind = "volume"

    def __init__(
        self,
        reader: VolumeReader,
        info: VolumeInfo,
        window: str | Sequence[float] | None = None,
        cache_frames: int = 4,
    ) -> None:
        super().__init__()
        self.reader = reader
        self.info = info  # the layout; `volume` is None when a stack is read as a video
        self.volume = info
        check_slice_size(reader.name, info.shape, info.axis)
        self._order = frame_order(info)
        self.height, self.width = frame_size(self._order, info.shape, info.axis)
        chosen = parse_window(window)
        self.window = chosen if chosen is not None else auto_window(reader.sample())
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_frames = max(1, cache_frames)

    def __len__(self) -> int:
        return int(self.info.shape[self.info.axis])

    def read_rgb(self, index: int) -> np.ndarray:
        rgb = self._cache.get(index)
        if rgb is not None:
            self._cache.move_to_end(index)
            return rgb
        plane = self.reader.read_plane(self.info.axis, index)
        grey = plane_to_frame(self._order, apply_window(plane, self.window))  # (H, W)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)  # (H, W, 3) uint8
        rgb.flags.writeable = False  # kept in the cache: a caller must copy to change it
        self._cache[index] = rgb
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)
        return rgb

    def close(self) -> None:
        self._cache.clear()
        self.reader.close()
