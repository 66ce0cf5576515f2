"""Annotations of an image: accepted masks with a category, a source and an author."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from segany.errors import NotFoundError
from segany.formats.polygons import mask_to_polygons
from segany.formats.segmentation import to_binary_mask
from segany.project.storage import repository
from segany.server.auth import current_user
from segany.server.routes.common import state
from segany.server.schemas import AnnotationIn, AnnotationOut, AnnotationPatch

router = APIRouter(tags=["annotations"])


def annotation_out(annotation: Any) -> dict[str, Any]:
    rle = annotation.rle
    return {
        "id": annotation.id,
        "image_id": annotation.image_id,
        "category_id": annotation.category_id,
        "rle": rle,
        "polygons": mask_to_polygons(to_binary_mask(rle)),
        "area": annotation.area,
        "bbox": list(annotation.bbox),
        "score": annotation.score,
        "source": annotation.source,
        "accepted": annotation.accepted,
        "stale": annotation.stale,
        "author": annotation.author,
        "created_at": annotation.created_at.isoformat(),
        "updated_at": annotation.updated_at.isoformat(),
    }


@router.get("/images/{image_id}/annotations", response_model=list[AnnotationOut])
def list_annotations(request: Request, image_id: str):
    with state(request).project.db.session() as session:
        rows = repository.list_annotations(session, image_id)
    return [annotation_out(a) for a in rows]


@router.post("/images/{image_id}/annotations", status_code=201, response_model=AnnotationOut)
def add_annotation(
    request: Request, image_id: str, body: AnnotationIn, author: str = Depends(current_user)
):
    """Store a mask (a COCO RLE of the image's size). Committed before the answer: an
    acknowledged annotation survives a crash of the server."""
    with state(request).project.db.session() as session:
        annotation = repository.add_annotation(
            session,
            image_id,
            body.rle.model_dump(),
            category_id=body.category_id,
            source=body.source,
            accepted=body.accepted,
            score=body.score,
            author=author,
        )
    return annotation_out(annotation)


def _owned(session: Any, image_id: str, annotation_id: int) -> Any:
    """The annotation, if it belongs to the image (else 404: ids are not guessable across)."""
    annotation = repository.get_annotation(session, annotation_id)
    if annotation.image_id != image_id:
        raise NotFoundError(f"image {image_id} has no annotation {annotation_id}")
    return annotation


@router.patch("/images/{image_id}/annotations/{annotation_id}", response_model=AnnotationOut)
def patch_annotation(request: Request, image_id: str, annotation_id: int, body: AnnotationPatch):
    """Change the category (null clears it), the accepted flag or the mask."""
    changes: dict[str, Any] = {}
    given = body.model_fields_set
    if "category_id" in given:
        changes["category_id"] = body.category_id
    if body.accepted is not None:
        changes["accepted"] = body.accepted
    if body.rle is not None:
        changes["rle"] = body.rle.model_dump()
    with state(request).project.db.session() as session:
        _owned(session, image_id, annotation_id)
        annotation = repository.update_annotation(session, annotation_id, **changes)
    return annotation_out(annotation)


@router.delete("/images/{image_id}/annotations/{annotation_id}", status_code=204)
def delete_annotation(request: Request, image_id: str, annotation_id: int) -> Response:
    with state(request).project.db.session() as session:
        _owned(session, image_id, annotation_id)
        repository.delete_annotation(session, annotation_id)
    return Response(status_code=204)
