"""Export of the whole project as a training set (see `segany.project.export`)."""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from segany.formats.manifest import MANIFEST_FILE, ManifestEntry, read_manifest, write_manifest
from segany.project.export import FORMATS, export_project
from segany.project.storage import repository
from segany.server.routes.common import state

router = APIRouter(tags=["export"])
log = logging.getLogger("segany.server")
IMAGES_FOLDER = "images"  # where a zip download holds the image files


@router.get("/export", response_class=FileResponse)
def export(request: Request, format: str = Query("coco", pattern="^(" + "|".join(FORMATS) + ")$")):
    """A download: the COCO instances file (`coco`, `coco-polygons`), or a zip of the SA-1B
    JSON files (`sa1b`) or PNG mask folders (`png`), each with manifest.json and the image
    files under images/ (the manifest's paths are relative to the download, never the
    server's)."""
    app = state(request)
    folder = Path(tempfile.mkdtemp(prefix="segany-export-"))
    cleanup = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
    try:
        with app.project.db.session() as session:
            categories = repository.list_categories(session)
            main = export_project(
                repository.iter_project(session), categories, folder / "export", format
            )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no response will clean it up
        raise
    if format.startswith("coco"):
        return FileResponse(
            main,
            media_type="application/json",
            filename=f"segany-{format}.json",
            background=cleanup,
        )
    images = _relative_manifest(main / MANIFEST_FILE)
    archive = folder / f"segany-{format}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(main.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(main).as_posix())
        for name, source in images:
            try:  # image files are already compressed: stored as they are
                zipped.write(source, name, compress_type=zipfile.ZIP_STORED)
            except OSError as error:  # a moved imported file: the rest of the export stands
                log.warning("export: %s is not in the download (%s)", source, error)
    return FileResponse(
        archive, media_type="application/zip", filename=archive.name, background=cleanup
    )


def _relative_manifest(manifest: Path) -> list[tuple[str, Path]]:
    """Point the manifest's images at `images/NAME` inside the download (a server's paths
    mean nothing on the machine that unpacks it, and tell that machine about the server);
    returns (name in the zip, server file) for each image to add."""
    entries = read_manifest(manifest)
    inside = [
        ManifestEntry(e.image_id, e.file_name, manifest.parent / IMAGES_FOLDER / e.file_name)
        for e in entries.values()
    ]
    write_manifest(manifest, inside)
    return [(f"{IMAGES_FOLDER}/{e.file_name}", e.path) for e in entries.values()]
