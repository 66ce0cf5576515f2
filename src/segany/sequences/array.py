"""`ArraySequence`: a sequence held in memory, for tests, synthetic data and the yardstick."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from segany.errors import ConfigError, ImageError
from segany.sequences.base import FrameSequence, VolumeInfo
from segany.sequences.layout import check_axis, frame_order, frame_size


def _as_rgb(frame: np.ndarray, index: int) -> np.ndarray:
    """(H, W) grey or (H, W, 3) RGB uint8 -> (H, W, 3) uint8."""
    if frame.dtype != np.uint8:
        raise ImageError(f"frame {index} must be uint8, got {frame.dtype} (scale it to 0-255)")
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise ImageError(f"frame {index} must be (H, W) grey or (H, W, 3) RGB, got {frame.shape}")


def _fit_volume(volume: VolumeInfo, count: int, frame_shape: tuple[int, ...]) -> VolumeInfo:
    """`volume`, its frame order set where the frames array is the volume; `ConfigError` if
    its slices are not `count` frames of `frame_shape`[:2]."""
    shape = tuple(int(s) for s in volume.shape)
    if len(shape) != 3:
        raise ConfigError(f"a volume is 3-D, got shape {shape}")
    axis = check_axis(volume.axis, 3, default=0)
    if not volume.frame_order and axis == 0 and shape == (count, *frame_shape[:2]):
        volume = replace(volume, frame_order="yx")
    size = frame_size(frame_order(volume), shape, axis)
    if shape[axis] != count or size != tuple(frame_shape[:2]):
        raise ConfigError(
            f"the volume's slices along axis {axis} of {shape} are {shape[axis]} frames of "
            f"{size[1]}x{size[0]}, not {count} of {frame_shape[1]}x{frame_shape[0]}: fix its "
            'shape, axis or frame_order ("xy" or "yx")'
        )
    return volume


class ArraySequence(FrameSequence):
    """The frames of a (T, H, W, 3) or (T, H, W) uint8 array, or of a list of (H, W, 3) /
    (H, W) uint8 frames of one size. The frames are not copied: `rgb(i)` is a view of an
    (H, W, 3) frame (grey frames are replicated to RGB when read).

    names: one output stem per frame (default "00000", "00001", ...); kind: "video" or
    "volume"; volume: the `VolumeInfo` of a volume (optional, e.g. to write a label volume),
    whose slices along `volume.axis` must be these frames (their number and size are checked).
    A `volume` whose shape is the frames array's own, (T, H, W) sliced along axis 0 with no
    `frame_order`, is the array itself: its frame order is set to "yx" (frame k =
    array[k]), whatever the format's own (`segany.sequences.layout`).
    """

    def __init__(
        self,
        frames: np.ndarray | Sequence[np.ndarray],
        names: Sequence[str] | None = None,
        kind: str = "video",
        volume: VolumeInfo | None = None,
        fps: float | None = None,
    ) -> None:
        super().__init__()
        if isinstance(frames, np.ndarray):
            if frames.ndim not in (3, 4):
                raise ImageError(
                    f"frames must be a (T, H, W, 3) or (T, H, W) array, got shape {frames.shape}"
                )
            frames = list(frames)
        else:
            frames = [np.asarray(f) for f in frames]
        if not frames:
            raise ImageError("a sequence needs at least one frame, got none")
        first = frames[0]
        for i, frame in enumerate(frames):
            _as_rgb(frame, i)  # checks dtype and rank before anything is read
            if frame.shape[:2] != first.shape[:2]:
                raise ImageError(
                    f"frame {i} is {frame.shape[1]}x{frame.shape[0]} but frame 0 is "
                    f"{first.shape[1]}x{first.shape[0]}: every frame must have one size"
                )
        if kind not in ("video", "volume"):
            raise ConfigError(f'kind must be "video" or "volume", got {kind!r}')
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != len(frames):
                raise ConfigError(f"{len(names)} names given for {len(frames)} frames")
            if len(set(names)) != len(names):
                raise ConfigError("frame names must be unique (they name the output files)")
        self._frames = frames
        self._names = names
        self.kind = kind
        self.volume = None if volume is None else _fit_volume(volume, len(frames), first.shape)
        self.fps = fps
        self.height, self.width = int(first.shape[0]), int(first.shape[1])

    def __len__(self) -> int:
        return len(self._frames)

    def read_rgb(self, index: int) -> np.ndarray:
        return _as_rgb(self._frames[index], index)

    def name(self, index: int) -> str:
        index = self.check_index(index)
        return self._names[index] if self._names is not None else f"{index:05d}"
