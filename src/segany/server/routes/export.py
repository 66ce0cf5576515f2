"""Export of the whole project as a training set (see `segany.server.export`)."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from segany.server.export import FORMATS, export_project
from segany.server.routes.common import state
from segany.server.storage import repository

router = APIRouter(tags=["export"])


@router.get("/export", response_class=FileResponse)
def export(request: Request, format: str = Query("coco", pattern="^(" + "|".join(FORMATS) + ")$")):
    """A download: the COCO instances file (`coco`, `coco-polygons`), or a zip of the SA-1B
    JSON files (`sa1b`) or PNG mask folders (`png`), each with manifest.json."""
    app = state(request)
    folder = Path(tempfile.mkdtemp(prefix="segany-export-"))
    cleanup = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
    with app.project.db.session() as session:
        categories = repository.list_categories(session)
        main = export_project(
            repository.iter_project(session), categories, folder / "export", format
        )
    if format.startswith("coco"):
        return FileResponse(
            main,
            media_type="application/json",
            filename=f"segany-{format}.json",
            background=cleanup,
        )
    archive = folder / f"segany-{format}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(main.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(main).as_posix())
    return FileResponse(
        archive, media_type="application/zip", filename=archive.name, background=cleanup
    )
