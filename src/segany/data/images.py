"""Where a dataset's images are, from the `file_name` its annotations give: under a folder, or
where the manifest of a `segany amg` output folder says (`segany.formats.manifest`)."""

from __future__ import annotations

from pathlib import Path

from segany.errors import DataError, FormatError
from segany.formats.manifest import read_manifest


class ImageFolder:
    """Images named relative to one folder: `file_name` -> `root / file_name`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, file_name: str, where: Path) -> Path:
        """The image file `file_name` (named in `where`); a missing file is left to the reader
        to report."""
        return self.root / file_name


class ManifestImages:
    """Images listed in an amg manifest.

    Args:
        manifest: the manifest file.
        other_form: the data spec form that names the image folder instead (for messages, e.g.
            "sa1b:DIR:IMAGE_ROOT").

    Raises `DataError` if the manifest is unreadable or malformed.
    """

    def __init__(self, manifest: Path, other_form: str) -> None:
        self.manifest = Path(manifest)
        self.other_form = other_form
        try:
            self.entries = read_manifest(self.manifest)
        except FormatError as e:
            raise DataError(
                f"{e}. Delete it and run the automatic masks (run_amg, segany amg) on the same "
                f"images into the same output folder (done images are skipped, the manifest "
                f"rewritten), or give the image folder: "
                f"{other_form}"
            ) from None

    def path(self, file_name: str, where: Path) -> Path:
        """The image file `file_name` (named in `where`). Raises `DataError` if the manifest
        does not list it or the file is not where it says."""
        entry = self.entries.get(file_name)
        if entry is None:
            raise DataError(
                f"{where} names the image {file_name!r}, which {self.manifest} does not list. "
                "Run the automatic masks (run_amg, segany amg) on that image again into the same "
                "output folder (it is skipped as done and listed), or give the image folder: "
                f"{self.other_form}"
            )
        if not entry.path.is_file():
            raise DataError(
                f"image {file_name!r} not found at {entry.path}, where {self.manifest} says it "
                "is: were the images moved or deleted? Put them back, run the automatic masks "
                "(run_amg, segany amg) on them at their new place into the same output folder "
                "(done images are skipped, the manifest updated), or give the image folder: "
                f"{self.other_form}"
            )
        return entry.path
