"""Sequences (videos and volumes): upload, import, list, get, delete, and their frames as images.

    POST   /api/sequences                 multipart `file` (+ form `axis` for volumes) -> 201
    POST   /api/sequences/import          {"path", "axis"} a server file or folder -> 201
    GET    /api/sequences                 {"sequences": [SequenceItem, ...]}
    GET    /api/sequences/{id}            SequenceItem
    DELETE /api/sequences/{id}            204
    GET    /api/sequences/{id}/frames/{n}?format=jpeg|png   the frame as an image file

Uploads pass the same guards as image uploads (Host/Origin, token, body size: `Limits.
upload_bytes`); the frame count and frame size are bounded by `Limits.sequence_frames` and
`Limits.sequence_frame_pixels`, read from the file's headers before a frame is decoded.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from segany.project.storage import sequences as repo
from segany.server.routes.common import state

router = APIRouter(tags=["sequences"])


class SequenceItem(BaseModel):
    """A video or volume: `frame_count` frames of `width` x `height` pixels; `objects` tracked
    in it; `job`: the id of its propagation running in this worker, if any."""

    id: str
    name: str
    kind: Literal["video", "volume"]
    frame_count: int
    width: int
    height: int
    fps: float | None
    axis: int | None
    objects: int
    job: str | None


class SequenceList(BaseModel):
    sequences: list[SequenceItem]


class SequenceImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096)
    axis: int | None = Field(default=None, ge=0, le=2)


def sequence_item(request: Request, row: Any, objects: int) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "frame_count": row.frame_count,
        "width": row.width,
        "height": row.height,
        "fps": row.fps,
        "axis": row.axis,
        "objects": objects,
        "job": state(request).sequences.live_job(row.id),
    }


def _count_objects(request: Request, sequence_id: str) -> int:
    with state(request).project.db.session() as session:
        return len(repo.list_objects(session, sequence_id))


@router.post("/sequences", status_code=201, response_model=SequenceItem)
async def upload_sequence(
    request: Request,
    response: Response,
    file: Annotated[UploadFile, File()],
    axis: Annotated[int | None, Form(ge=0, le=2)] = None,
):
    """Add a video (mp4, webm, avi, mov, mkv), a multi-page TIFF, a NIfTI volume (.nii,
    .nii.gz; `axis`: the array axis to slice along) or a zip of frames or of a DICOM series.
    The same file again: 200 with the first one."""
    service = state(request).sequences
    row, created = await service.upload(file, axis)
    if not created:
        response.status_code = 200
    count = await run_in_threadpool(_count_objects, request, row.id)
    return sequence_item(request, row, count)


@router.post("/sequences/import", status_code=201, response_model=SequenceItem)
def import_sequence(request: Request, response: Response, body: SequenceImport):
    """Add a server file or folder (frames, or a DICOM series) under the import roots, in
    place; the same path again: 200 with the first one."""
    row, created = state(request).sequences.import_path(body.path, body.axis)
    if not created:
        response.status_code = 200
    return sequence_item(request, row, _count_objects(request, row.id))


@router.get("/sequences", response_model=SequenceList)
def list_sequences(request: Request):
    with state(request).project.db.session() as session:
        rows = repo.list_sequences(session)
    return {"sequences": [sequence_item(request, row, count) for row, count in rows]}


@router.get("/sequences/{sequence_id}", response_model=SequenceItem)
def get_sequence(request: Request, sequence_id: str):
    row = state(request).sequences.row(sequence_id)
    return sequence_item(request, row, _count_objects(request, sequence_id))


@router.delete("/sequences/{sequence_id}", status_code=204)
def delete_sequence(request: Request, sequence_id: str) -> Response:
    """Remove the sequence with its objects and masks, and its uploaded file."""
    state(request).sequences.delete(sequence_id)
    return Response(status_code=204)


@router.get("/sequences/{sequence_id}/frames/{frame}", response_class=Response)
def frame_image(
    request: Request,
    sequence_id: str,
    frame: int,
    format: Literal["jpeg", "png"] | None = Query(None),
):
    """Frame (or slice) `frame` as the masks' coordinates refer to it: JPEG by default for a
    video, PNG (lossless) for a volume. 422 past the last frame."""
    service = state(request).sequences
    row = service.check_frame(service.row(sequence_id), frame)
    chosen = format or ("png" if row.kind == "volume" else "jpeg")
    data, media_type = service.frames.frame(sequence_id, frame, chosen)
    return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=3600"})
