"""`open_sequence`: any input `segany track` takes, as a `FrameSequence`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from segany.errors import ConfigError, ImageError
from segany.sequences.base import FrameSequence
from segany.sequences.folder import FRAME_EXTENSIONS, FolderSequence, frame_files
from segany.sequences.video import VIDEO_EXTENSIONS, VideoSequence

NIFTI_EXTENSIONS = (".nii", ".nii.gz")
TIFF_EXTENSIONS = (".tif", ".tiff")
KINDS = ("video", "volume")


def _folder_is_dicom(folder: Path) -> bool:
    from segany.sequences.dicom import is_dicom_file

    if frame_files(folder):
        return False
    return any(is_dicom_file(folder / n) for n in os.listdir(folder) if not n.startswith("."))


def open_sequence(
    path: str | os.PathLike,
    *,
    axis: int | None = None,
    window: str | Sequence[float] | None = None,
    kind: str | None = None,
) -> FrameSequence:
    """Open `path` as a sequence, its frames decoded when read:

    - a video file (.mp4 .m4v .webm .avi .mov .mkv .mpg .mpeg .ogv; PyAV): kind "video",
      `fps` from the stream;
    - a folder of frames (.jpg .jpeg .png .tif .tiff .bmp) in natural name order
      ("2.png" before "10.png"), `name(i)` the file's stem;
    - a DICOM series folder (.dcm files, or files with the DICOM preamble; pydicom): a volume;
    - a multi-page TIFF: pictures as a video, a 16-bit or 32-bit grey stack as a volume
      (`kind="volume"` reads an 8-bit grey stack as a volume);
    - a NIfTI volume (.nii, .nii.gz; nibabel).

    Volumes (kind "volume", `volume` a `VolumeInfo`) are sliced along `axis` (default: NIfTI
    and DICOM 2, the last; TIFF 0, its pages) and windowed to 8 bits by `window`: (center,
    width), "C,W", a preset ("ct-soft" 40/400, "ct-lung" -600/1500, "ct-bone" 400/1800,
    "ct-brain" 40/80) or None/"auto"/"mr" for the 0.5-99.5 percentile window of a strided
    sample. Frame pixels map to voxels as `segany.sequences.layout` says.

    Raises `ImageError` for a missing, empty, unreadable or unknown input, `ConfigError` for an
    option that does not fit it (`axis` or `window` for a video, an axis out of range, a bad
    window, a kind other than "video"/"volume", or a missing extra: segany[video] for video
    files, segany[volume] for NIfTI and DICOM).
    """
    if kind is not None and kind not in KINDS:
        raise ConfigError(f'kind must be "video", "volume" or None, got {kind!r}')
    if not isinstance(path, str | os.PathLike):
        raise ImageError(f"a sequence is opened from a path, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise ImageError(
            f"input not found: {path} (give a video file, a folder of frames, a TIFF, a NIfTI "
            "file or a DICOM series folder)"
        )
    lower = path.name.lower()
    if path.is_dir():
        if _folder_is_dicom(path):
            from segany.sequences.dicom import open_dicom

            _expect(kind, "volume", f"{path} is a DICOM series")
            return open_dicom(path, axis, window)
        _video_only(path, axis, window, kind, "a folder of frames")
        return FolderSequence(path)
    if lower.endswith(NIFTI_EXTENSIONS):
        from segany.sequences.nifti import open_nifti

        _expect(kind, "volume", f"{path} is a NIfTI volume")
        return open_nifti(path, axis, window)
    if lower.endswith(TIFF_EXTENSIONS):
        from segany.sequences.tiff import open_tiff

        return open_tiff(path, axis, window, kind)
    if lower.endswith(VIDEO_EXTENSIONS):
        _video_only(path, axis, window, kind, "a video file")
        return VideoSequence(path)
    if path.suffix.lower() == ".dcm":
        raise ImageError(f"{path} is one DICOM file: give the folder of its series")
    known = (*VIDEO_EXTENSIONS, *TIFF_EXTENSIONS, *NIFTI_EXTENSIONS)
    raise ImageError(
        f"cannot tell what {path} is from its suffix: give a video ({' '.join(VIDEO_EXTENSIONS)})"
        f", a TIFF, a NIfTI (.nii, .nii.gz), a folder of frames ({' '.join(FRAME_EXTENSIONS)}) "
        f"or a DICOM series folder; known suffixes: {', '.join(known)}"
    )


def _expect(kind: str | None, wanted: str, what: str) -> None:
    if kind is not None and kind != wanted:
        raise ConfigError(f'{what}, read as kind "{wanted}"; leave kind out or give "{wanted}"')


def _video_only(path: Path, axis: int | None, window: object, kind: str | None, what: str) -> None:
    _expect(kind, "video", f"{path} is {what}")
    if axis is not None or window is not None:
        raise ConfigError(f"{path} is {what}: axis and window apply to volumes only")
