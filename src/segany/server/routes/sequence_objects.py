"""A sequence's objects, prompts and masks.

    GET    /api/sequences/{id}/objects                    [ObjectOut, ...]
    POST   /api/sequences/{id}/objects   {"object_id"?, "name"?, "category_id"?}   201
    PATCH  /api/sequences/{id}/objects/{object_id}   {"name"?, "category_id"?}
    DELETE /api/sequences/{id}/objects/{object_id}       204 (its prompts and masks too)
    POST   /api/sequences/{id}/prompt   {"frame", "object_id", "points", "box"}
           -> the frame's masks at once (every object's), as GET .../frames/{n}/masks
    GET    /api/sequences/{id}/frames/{n}/masks          {"frame", "masks": [FrameMaskOut]}
    GET    /api/sequences/{id}/timeline    per object, the frame ranges where it is present

Points [x, y, label] and boxes [x0, y0, x1, y1] are pixels of the sequence's frames.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from segany.project.storage import sequence_masks as masks_repo
from segany.project.storage import sequences as repo
from segany.project.storage.sequence_models import MAX_OBJECT_ID
from segany.server.auth import current_user
from segany.server.prompt_fields import Box, Points, check_on_image, check_prompt_count
from segany.server.routes.common import state
from segany.server.schemas import Rle

router = APIRouter(tags=["sequences"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectIn(Strict):
    """object_id: 1..255 (0 is the background), default the lowest free one."""

    object_id: int | None = Field(default=None, ge=1, le=MAX_OBJECT_ID)
    name: str | None = Field(default=None, max_length=200)
    category_id: int | None = None


class ObjectPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    category_id: int | None = None


class ObjectOut(BaseModel):
    object_id: int
    name: str
    category_id: int | None


class PromptIn(Strict):
    """A prompt for one object on one frame; `object_id` 1..255 (added if new)."""

    frame: int = Field(ge=0)
    object_id: int = Field(ge=1, le=MAX_OBJECT_ID)
    points: Points = []
    box: Box | None = None


class FrameMaskOut(BaseModel):
    """One object's mask on the frame (COCO RLE of the frame's size); source "prompt" where a
    person prompted it on this frame, else "tracked"."""

    object_id: int
    rle: Rle
    score: float | None
    area: int
    bbox: tuple[float, float, float, float]
    source: str


class FramePrompt(BaseModel):
    """The prompt a person gave an object on the frame (the last one given there)."""

    object_id: int
    points: list[tuple[float, float, int]] | None
    box: tuple[float, float, float, float] | None


class FrameMasks(BaseModel):
    frame: int
    masks: list[FrameMaskOut]
    prompts: list[FramePrompt]


class PromptOut(FrameMasks):
    stopped_job: str | None  # the propagation this prompt stopped (propagate again to resume)


class ObjectTimeline(BaseModel):
    """ranges: [first, last] frames (inclusive) where the object has a mask; prompted: the
    frames where a person prompted it."""

    object_id: int
    ranges: list[tuple[int, int]]
    prompted: list[int]


class Timeline(BaseModel):
    frame_count: int
    objects: list[ObjectTimeline]


def object_out(row: Any) -> dict[str, Any]:
    return {"object_id": row.object_id, "name": row.name, "category_id": row.category_id}


def mask_out(row: Any) -> dict[str, Any]:
    return {
        "object_id": row.object_id,
        "rle": row.rle,
        "score": row.score,
        "area": row.area,
        "bbox": row.bbox,
        "source": row.source,
    }


@router.get("/sequences/{sequence_id}/objects", response_model=list[ObjectOut])
def list_objects(request: Request, sequence_id: str):
    with state(request).project.db.session() as session:
        return [object_out(row) for row in repo.list_objects(session, sequence_id)]


@router.post("/sequences/{sequence_id}/objects", status_code=201, response_model=ObjectOut)
def add_object(request: Request, sequence_id: str, body: ObjectIn):
    with state(request).project.db.session() as session:
        row = repo.add_object(
            session,
            sequence_id,
            object_id=body.object_id,
            name=body.name,
            category_id=body.category_id,
        )
    return object_out(row)


@router.patch("/sequences/{sequence_id}/objects/{object_id}", response_model=ObjectOut)
def patch_object(request: Request, sequence_id: str, object_id: int, body: ObjectPatch):
    """Rename the object or change its category (null clears it)."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    with state(request).project.db.session() as session:
        return object_out(repo.update_object(session, sequence_id, object_id, **changes))


@router.delete("/sequences/{sequence_id}/objects/{object_id}", status_code=204)
def delete_object(request: Request, sequence_id: str, object_id: int) -> Response:
    """Forget the object: its prompts and masks on every frame (a running propagation of the
    sequence is stopped first)."""
    state(request).sequences.delete_object(sequence_id, object_id)
    return Response(status_code=204)


@router.post("/sequences/{sequence_id}/prompt", response_model=PromptOut)
def prompt(request: Request, sequence_id: str, body: PromptIn, author: str = Depends(current_user)):
    """Prompt an object on a frame: the frame's masks (every object's) once the tracker has
    answered, stored. A propagation of this sequence that is running is stopped first
    (`stopped_job`); propagate again from this frame to carry the correction on."""
    app = state(request)
    check_prompt_count(body.points, body.box, app.settings.limits.points)
    row = app.sequences.row(sequence_id)
    check_on_image(body.points, body.box, row.width, row.height)
    points = [list(point) for point in body.points] or None
    box = None if body.box is None else list(body.box)
    masks, stopped = app.sequences.prompt(
        sequence_id, body.frame, body.object_id, points, box, author
    )
    prompts = _frame_prompts(request, sequence_id, body.frame)
    masks_out = [mask_out(m) for m in masks]
    return {"frame": body.frame, "masks": masks_out, "prompts": prompts, "stopped_job": stopped}


@router.get("/sequences/{sequence_id}/frames/{frame}/masks", response_model=FrameMasks)
def frame_masks(request: Request, sequence_id: str, frame: int):
    """Every object's stored mask on the frame (an object absent there has none)."""
    service = state(request).sequences
    service.check_frame(service.row(sequence_id), frame)
    with state(request).project.db.session() as session:
        rows = masks_repo.frame_masks(session, sequence_id, frame)
    prompts = _frame_prompts(request, sequence_id, frame)
    return {"frame": frame, "masks": [mask_out(m) for m in rows], "prompts": prompts}


def _frame_prompts(request: Request, sequence_id: str, frame: int) -> list[dict[str, Any]]:
    with state(request).project.db.session() as session:
        rows = repo.frame_prompts(session, sequence_id, frame)
    prompts = []
    for row in rows:
        points, box = repo.prompt_fields(row)
        prompts.append({"object_id": row.object_id, "points": points, "box": box})
    return prompts


@router.get("/sequences/{sequence_id}/timeline", response_model=Timeline)
def timeline(request: Request, sequence_id: str):
    """Where each object is: runs of consecutive frames with a mask, and its prompted
    frames (every object listed, also one never tracked yet)."""
    with state(request).project.db.session() as session:
        row = repo.get_sequence(session, sequence_id)
        objects = repo.list_objects(session, sequence_id)
        present = masks_repo.timeline(session, sequence_id)
        prompts = repo.list_prompts(session, sequence_id)
    prompted: dict[int, list[int]] = {}
    for prompt_row in prompts:
        prompted.setdefault(prompt_row.object_id, []).append(prompt_row.frame)
    items = []
    for obj in objects:
        frames = [frame for frame, _ in present.get(obj.object_id, [])]
        items.append(
            {
                "object_id": obj.object_id,
                "ranges": _ranges(frames),
                "prompted": sorted(prompted.get(obj.object_id, [])),
            }
        )
    return {"frame_count": row.frame_count, "objects": items}


def _ranges(frames: list[int]) -> list[tuple[int, int]]:
    """Sorted frame numbers -> [first, last] runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for frame in frames:
        if runs and frame == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], frame)
        else:
            runs.append((frame, frame))
    return runs
