"""Prompts to masks (the assisted-manual stage) and automatic proposals (semi-automatic)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from segany.project.storage import repository
from segany.project.workspace import stored
from segany.server.prompt_fields import check_on_image, check_prompt_count
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
    check_prompt_count(body.points, body.box, app.settings.limits.points)
    image = app.project.usable_image(image_id)
    check_on_image(body.points, body.box, image.width, image.height)
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
    image = app.project.usable_image(image_id)
    with app.project.db.session() as session:
        existing = [a.rle for a in repository.list_annotations(session, image_id) if a.accepted]
    return {"masks": app.model.proposals(stored(image), existing)}
