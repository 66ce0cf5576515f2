"""Categories: the labels annotations carry (number keys pick them in the annotator)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from segany.project.storage import repository
from segany.server.routes.common import state
from segany.server.schemas import CategoryIn, CategoryOut, CategoryPatch

router = APIRouter(tags=["categories"])


def category_out(category) -> dict:
    return {"id": category.id, "name": category.name, "color": category.color}


@router.get("/categories", response_model=list[CategoryOut])
def list_categories(request: Request):
    with state(request).project.db.session() as session:
        return [category_out(c) for c in repository.list_categories(session)]


@router.post("/categories", status_code=201, response_model=CategoryOut)
def add_category(request: Request, body: CategoryIn):
    with state(request).project.db.session() as session:
        return category_out(repository.add_category(session, body.name, body.color))


@router.patch("/categories/{category_id}", response_model=CategoryOut)
def patch_category(request: Request, category_id: int, body: CategoryPatch):
    with state(request).project.db.session() as session:
        changes = body.model_dump(exclude_unset=True)
        return category_out(repository.update_category(session, category_id, **changes))


@router.delete("/categories/{category_id}", status_code=204)
def delete_category(request: Request, category_id: int) -> Response:
    with state(request).project.db.session() as session:
        repository.delete_category(session, category_id)
    return Response(status_code=204)
