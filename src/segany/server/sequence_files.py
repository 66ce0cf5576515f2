"""Sequence files on the server: an upload streamed to DATA/sequences (bounded), a zip of frames
or of a DICOM series unpacked (bounded), a server path checked against the import roots, and
every one opened once to learn (and bound) its frame count and size before it is recorded.

Inputs are whatever `segany.sequences.open_sequence` reads: video files (mp4, webm, avi, mov,
mkv), multi-page TIFFs, NIfTI volumes (.nii, .nii.gz), folders of frames or of DICOM slices.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from fastapi import UploadFile

from segany.errors import FormatError, InvalidValueError, NotFoundError, SeganyError
from segany.formats.atomic import atomic_file
from segany.project.image_files import TooLargeError
from segany.project.storage.sequences import NewSequence
from segany.sequences.base import FrameSequence

log = logging.getLogger("segany.server")

SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".avi", ".mkv", ".tif", ".tiff", ".nii", ".nii.gz")
ZIP_SUFFIX = ".zip"  # a folder of frames, or a DICOM series, zipped
_CHUNK = 1 << 20
# An unpacked zip may hold at most this many times the upload limit (a zip bomb stops there).
UNPACK_RATIO = 4

Opener = Callable[..., FrameSequence]  # open_sequence(path, *, axis=None) -> FrameSequence


def default_opener(path: Path, *, axis: int | None = None) -> FrameSequence:
    from segany.sequences import open_sequence

    return open_sequence(path, axis=axis)


def suffix_of(name: str) -> str:
    """The file's kind by its name ('.nii.gz' whole); `FormatError` for one not read here."""
    lower = name.lower()
    for suffix in (*SUFFIXES, ZIP_SUFFIX):
        if lower.endswith(suffix):
            return suffix
    raise FormatError(
        f"{name}: not a video or volume file this server reads; send a video (mp4, webm, avi, "
        "mov, mkv), a multi-page TIFF, a NIfTI volume (.nii, .nii.gz) or a zip of frames or of "
        "a DICOM series"
    )


async def save_upload(file: UploadFile, folder: Path, limit: int) -> tuple[Path, str]:
    """Stream the upload to `folder` under its content's name (one file per content); returns
    (path, sha256). `TooLargeError` (413) past `limit` bytes; a zip is unpacked into a folder
    of the same name."""
    name = file.filename or "upload"
    suffix = suffix_of(name)
    folder.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    partial = folder / f".upload-{os.getpid()}-{id(file)}{suffix}"
    try:
        with open(partial, "wb") as out:
            while chunk := await file.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLargeError(f"{name}: the upload is over {limit:,} bytes")
                digest.update(chunk)
                out.write(chunk)
        sha256 = digest.hexdigest()
        if suffix == ZIP_SUFFIX:
            return _unpack(partial, folder / sha256[:32], limit * UNPACK_RATIO), sha256
        path = folder / f"{sha256[:32]}{suffix}"
        if not path.is_file():
            with atomic_file(path) as temporary:
                shutil.copyfile(partial, temporary)
        return path, sha256
    finally:
        partial.unlink(missing_ok=True)


def _unpack(archive: Path, target: Path, limit: int) -> Path:
    """The zip's files (folders flattened: every frame or slice sits side by side) into
    `target`; `TooLargeError` when they would take more than `limit` bytes."""
    if target.is_dir():
        return target
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if _wanted(m)]
            if sum(m.file_size for m in members) > limit:
                raise TooLargeError(f"the zip unpacks to over {limit:,} bytes")
            names = [PurePosixPath(m.filename).name for m in members]
            if len(set(names)) != len(names):
                raise FormatError("the zip holds two files of the same name in different folders")
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for member, name in zip(members, names, strict=True):
                with zipped.open(member) as source, open(partial / name, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
            partial.rename(target)
    except zipfile.BadZipFile as error:
        raise FormatError(f"the upload is not a readable zip file ({error})") from error
    if not members:
        raise FormatError("the zip holds no files")
    return target


def _wanted(member: zipfile.ZipInfo) -> bool:
    name = PurePosixPath(member.filename)
    hidden = any(part.startswith((".", "__MACOSX")) for part in name.parts)
    return not member.is_dir() and not hidden


def import_path(path_text: str, roots: tuple[Path, ...]) -> Path:
    """A server file or folder, resolved, if it lies under an import root; else
    `InvalidValueError`; `NotFoundError` when there is nothing there."""
    if "\x00" in path_text:
        raise InvalidValueError("the import path contains a NUL byte")
    path = Path(os.path.expanduser(path_text)).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise InvalidValueError(
            f"{path_text} is outside the import folders this server may read "
            f"({', '.join(map(str, roots))}); start it with --import-root to allow others"
        )
    if not path.exists():
        raise NotFoundError(f"nothing to import at {path_text}")
    if path.is_file():
        suffix_of(path.name)
    return path


def probe(
    path: Path,
    name: str,
    sha256: str,
    *,
    max_frames: int,
    max_pixels: int,
    axis: int | None = None,
    opener: Opener = default_opener,
) -> NewSequence:
    """Open the sequence at `path` and read its first frame: the row to record. Refused with
    `TooLargeError` (413) past `max_frames` frames or `max_pixels` pixels a frame (checked from
    the headers, before any frame is decoded); an unreadable file is a `FormatError` (422)."""
    try:
        sequence = opener(path, axis=axis)
    except SeganyError as error:  # said with the name the user knows, not the server's path
        raise type(error)(f"{name}: {str(error).replace(str(path), name)}") from error
    except Exception as error:  # a decoder's own error: the file is not what it claims to be
        log.info("cannot open %s: %r", path, error)
        raise FormatError(f"{name}: cannot be read as a video or volume ({error})") from error
    with sequence:
        count, height, width = len(sequence), sequence.height, sequence.width
        if count < 1:
            raise FormatError(f"{name}: holds no frames")
        if count > max_frames:
            raise TooLargeError(
                f"{name}: {count:,} frames, over this server's limit of {max_frames:,}"
            )
        if height * width > max_pixels:
            raise TooLargeError(
                f"{name}: frames of {width} x {height} pixels, over this server's limit of "
                f"{max_pixels:,} pixels a frame"
            )
        try:
            first = sequence.rgb(0)
        except SeganyError:
            raise
        except Exception as error:
            raise FormatError(f"{name}: its first frame cannot be decoded ({error})") from error
        if first.shape != (height, width, 3):
            raise FormatError(f"{name}: frame 0 is {first.shape}, not ({height}, {width}, 3)")
        volume = sequence.volume
        return NewSequence(
            name=name[:255],
            kind=sequence.kind,
            stored_path=str(path),
            sha256=sha256,
            frame_count=count,
            width=width,
            height=height,
            fps=sequence.fps,
            axis=None if volume is None else volume.axis,
        )
