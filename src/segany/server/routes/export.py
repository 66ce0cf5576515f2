"""Export of the whole project as a training set (see `segany.project.export`)."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from segany.formats.manifest import MANIFEST_FILE, read_manifest
from segany.project.export import FORMATS, export_project
from segany.project.storage import repository
from segany.server.routes.common import state

router = APIRouter(tags=["export"])


@router.get("/export", response_class=FileResponse)
def export(request: Request, format: str = Query("coco", pattern="^(" + "|".join(FORMATS) + ")$")):
    """A download: the COCO instances file (`coco`, `coco-polygons`), or a zip of the SA-1B
    JSON files (`sa1b`) or PNG mask folders (`png`), each with manifest.json."""
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
    _absolute_manifest(main / MANIFEST_FILE)
    archive = folder / f"segany-{format}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(main.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(main).as_posix())
    return FileResponse(
        archive, media_type="application/zip", filename=archive.name, background=cleanup
    )


def _absolute_manifest(manifest: Path) -> None:
    """Make the manifest's image paths absolute: written relative to this temporary folder,
    they would point nowhere from the folder the download is unpacked in."""
    entries = read_manifest(manifest)
    document = json.loads(manifest.read_text(encoding="utf-8"))
    for item in document["images"]:
        item["path"] = str(entries[item["file_name"]].path)
    manifest.write_text(json.dumps(document, indent=0), encoding="utf-8")
