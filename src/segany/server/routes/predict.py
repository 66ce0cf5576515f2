"""Prompts to masks (the assisted-manual stage) and automatic proposals (semi-automatic)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from segany.errors import PromptError
from segany.project.storage import repository
from segany.project.workspace import stored
from segany.server.routes.common import state
from segany.server.schemas import PredictRequest, PredictResponse, ProposalsResponse

router = APIRouter(tags=["predict"])


@router.post("/images/{image_id}/predict", response_model=PredictResponse)
def predict(request: Request, image_id: str, body: PredictRequest):
    """Masks for points ([x, y, label], upright image pixels) and / or a box, best first (the
    interactive rule, `segany.interactive`; 3 for a first click or box, 4 for later edits;
    `multimask: false`: the single-mask output alone); `previous` (a token of an earlier
    answer) feeds its logits back; `polygons: false` leaves the outlines out."""
    app = state(request)
    if len(body.points) > app.settings.limits.points:
        raise PromptError(
            f"{len(body.points)} points in one request; at most {app.settings.limits.points}"
        )
    image = app.project.image(image_id)
    width, height = image.width, image.height
    for x, y, _ in body.points:
        if not (0 <= x <= width and 0 <= y <= height):
            raise PromptError(f"point ({x:g}, {y:g}) lies outside the {width}x{height} image")
    if body.box is not None:
        x0, y0, x1, y1 = body.box
        if not (0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height):
            raise PromptError(f"box {list(body.box)} reaches outside the {width}x{height} image")
    if not body.points and body.box is None:
        raise PromptError("give at least one point or a box")
    masks, token, cached = app.model.predict(
        stored(image),
        [list(p) for p in body.points],
        body.box,
        body.multimask,
        body.previous,
        body.polygons,
    )
    return {"masks": masks, "previous": token, "cached": cached}


@router.post("/images/{image_id}/auto", response_model=ProposalsResponse)
def proposals(request: Request, image_id: str):
    """Automatic masks for the image (the model's automatic-mask defaults), as suggestions:
    near-duplicates and masks the accepted annotations already cover are left out."""
    app = state(request)
    image = app.project.image(image_id)
    with app.project.db.session() as session:
        existing = [a.rle for a in repository.list_annotations(session, image_id) if a.accepted]
    return {"masks": app.model.proposals(stored(image), existing)}
