"""Prompts to masks (the assisted-manual stage); automatic proposals are in routes/auto.py."""

from __future__ import annotations

from fastapi import APIRouter, Request

from segany.project.workspace import stored
from segany.server.prompt_fields import check_on_image, check_prompt_count
from segany.server.routes.common import state
from segany.server.schemas import PredictRequest, PredictResponse

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
