"""Which images a run segments: the INPUT files and folders turned into a sorted job list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from segany.errors import ConfigError, ImageError
from segany.formats.image import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ImageJob:
    """One image to segment.

    image_id: 1-based position in the run's sorted job list (the same inputs give the same
        ids); path: the file to read; name: the image's name in the outputs, relative to the
        folder it was found in ("sub/a.jpg"), or the file name for a file given directly;
        key: name without its suffix ("sub/a"), from which output paths are made.
    """

    image_id: int
    path: Path
    name: str
    key: str


def folder_images(folder: Path, exclude: Path | None = None) -> list[tuple[Path, str]]:
    """(path, name relative to `folder` in POSIX form) of every image file under `folder`
    (IMAGE_EXTENSIONS, any depth), hidden files and folders and anything under `exclude`
    left out, sorted by name."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if _is_hidden(relative) or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue  # hidden: also the temporary files of an interrupted write
        if exclude is not None and path.resolve().is_relative_to(exclude):
            continue  # never segment our own outputs (overlays, PNG masks) on a rerun
        if path.is_file():
            found.append((path, relative.as_posix()))
    return sorted(found, key=lambda item: item[1])


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def find_images(inputs: Sequence[Path], exclude: Path | None = None) -> list[ImageJob]:
    """Jobs for image files and folders (searched recursively for IMAGE_EXTENSIONS, hidden
    files skipped), sorted by name and numbered 1, 2, ...

    A file given directly is kept whatever its suffix (if it is no image, the run reports it).
    Files under `exclude` (the output folder) are left out. `ImageError` for an input that
    does not exist; `ConfigError` when two images would write the same outputs.
    """
    exclude = exclude.resolve() if exclude is not None else None
    candidates: list[tuple[Path, str]] = []
    for given in inputs:
        path = Path(given).expanduser()
        if path.is_dir():
            candidates.extend(folder_images(path, exclude))
        elif path.is_file():
            candidates.append((path, path.name))
        else:
            raise ImageError(f"input not found: {path} (give image files or folders)")

    by_key: dict[str, tuple[Path, str]] = {}
    seen: set[Path] = set()
    for path, name in candidates:
        resolved = path.resolve()
        if resolved in seen:
            continue  # the same file named twice (directly and through its folder)
        seen.add(resolved)
        key = str(PurePosixPath(name).with_suffix(""))
        if key in by_key:
            raise ConfigError(
                f"{by_key[key][0]} and {path} would both write the outputs named {key!r}; "
                "rename one, or segment them in separate runs"
            )
        by_key[key] = (path, name)
    return [
        ImageJob(image_id=i, path=path, name=name, key=key)
        for i, (key, (path, name)) in enumerate(sorted(by_key.items()), start=1)
    ]
