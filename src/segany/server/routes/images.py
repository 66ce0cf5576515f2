"""Images: upload, list, get, the upright file, review flag, delete, import a server folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from segany.project.image_files import upright_file
from segany.project.storage import repository
from segany.project.workspace import stored
from segany.server.routes.common import image_item, state
from segany.server.schemas import (
    ImageCreated,
    ImageItem,
    ImagePage,
    ImagePatch,
    ImportRequest,
    ImportResult,
)
from segany.server.upload_reader import read_upload

router = APIRouter(tags=["images"])


@router.post("/images", status_code=201, response_model=ImageCreated)
async def upload_image(request: Request, response: Response, file: Annotated[UploadFile, File()]):
    """Add an image (PNG, JPEG, TIFF, WebP; EXIF orientation applied). The same file uploaded
    twice is stored once: the second answer is 200 with the first one's id."""
    app = state(request)
    data = await read_upload(file, app.settings.limits.upload_bytes)
    image, created = await run_in_threadpool(
        app.project.add_upload, data, file.filename or "upload"
    )
    if created and app.encoder is not None:
        app.encoder.wake()
    if not created:
        response.status_code = 200
    return {"id": image.id, "width": image.width, "height": image.height}


@router.get("/images", response_model=ImagePage)
def list_images(
    request: Request, offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=500)
):
    """The project's images in the annotator's order, with their status."""
    with state(request).project.db.session() as session:
        page = repository.list_images(session, offset=offset, limit=limit)
    items = [image_item(request, item.image, item.annotation_count) for item in page.items]
    return {"total": page.total, "images": items}


@router.get("/images/{image_id}", response_model=ImageItem)
def get_image(request: Request, image_id: str):
    with state(request).project.db.session() as session:
        image = repository.get_image(session, image_id)
        count = len(repository.list_annotations(session, image_id))
    return image_item(request, image, count)


@router.get("/images/{image_id}/file", response_class=Response)
def image_file(request: Request, image_id: str):
    """The image as the API's coordinates refer to it: upright (EXIF applied)."""
    app = state(request)
    image = app.project.usable_image(image_id)
    if app.encoder is not None:  # the person opens it: encode the images after it next
        app.encoder.focus(stored(image))
    data, media_type = upright_file(Path(image.stored_path))
    return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=3600"})


@router.patch("/images/{image_id}", response_model=ImageItem)
def patch_image(request: Request, image_id: str, patch: ImagePatch):
    with state(request).project.db.session() as session:
        image = repository.update_image(session, image_id, reviewed=patch.reviewed)
        count = len(repository.list_annotations(session, image_id))
    return image_item(request, image, count)


@router.delete("/images/{image_id}", status_code=204)
def delete_image(request: Request, image_id: str) -> Response:
    """Remove the image and its annotations, its uploaded file (an imported one stays) and
    its cached embedding."""
    app = state(request)
    image = app.project.delete_image(image_id)
    app.model.forget(stored(image))  # its embedding and pixels, in memory and on disk
    return Response(status_code=204)


@router.post("/import", response_model=ImportResult)
def import_folder(request: Request, body: ImportRequest):
    """Add the images of a server folder (under the configured import roots), in place."""
    app = state(request)
    summary = app.project.import_folder(body.path)
    if summary.added and app.encoder is not None:
        app.encoder.wake()
    return {
        "added": len(summary.added),
        "skipped": summary.skipped,
        "ids": summary.added,
        "errors": summary.errors,
    }
