"""Health, model information and pre-encoding progress."""

from __future__ import annotations

from fastapi import APIRouter, Request

import segany
from segany.server.routes.common import state
from segany.server.schemas import EncodingStatus, Info

router = APIRouter(tags=["system"])
api_router = APIRouter(tags=["system"])


@router.get("/health")
def health(request: Request) -> dict[str, str]:
    """200 while the server is up (no token needed: for load balancers and scripts)."""
    return {"status": "ok", "model": state(request).model.name}


@api_router.get("/info", response_model=Info)
def info(request: Request):
    model = state(request).model.model
    return {
        "model": model.spec.name,
        "image_size": model.spec.image_size,
        "version": segany.__version__,
        "amg_defaults": dict(model.spec.amg_defaults),
    }


@api_router.get("/encoding", response_model=EncodingStatus)
def encoding(request: Request):
    """How many of the project's images have their embedding computed."""
    app = state(request)
    images = app.project.stored_images()
    encoded = sum(app.model.is_encoded(image) for image in images)
    return {"total": len(images), "encoded": encoded, "pending": len(images) - encoded}
