"""Automatic proposals (the semi-automatic stage): `POST /api/images/{id}/auto` answers when
they are ready; the job form starts them, reports progress and can be cancelled:

    POST   /api/images/{id}/auto/jobs  -> 202 {"id", "state": "queued", ...}
    GET    /api/auto/jobs/{job}        -> {"state", "done_steps", "total_steps", "masks", "error"}
    DELETE /api/auto/jobs/{job}        -> cancelled at its next slice (a finished job: forgotten)

Both run the same sliced work (`segany.server.suggestions`) as jobs of `AutoJobs`, within its
bounds (429: too many jobs in this worker, 409: the image has one already).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from segany.project.storage import repository
from segany.project.workspace import stored
from segany.server.auto_jobs import AutoJob
from segany.server.routes.common import state
from segany.server.schemas import ProposalOut, ProposalsResponse
from segany.server.suggestions import propose

router = APIRouter(tags=["auto"])


class AutoJobOut(BaseModel):
    """An /auto job: done_steps of total_steps slices (an encoder pass, a batch of prompts, a
    merge; total 0 until the job has started), masks once done, error once failed."""

    id: str
    image_id: str
    state: Literal["queued", "running", "done", "cancelled", "failed"]
    done_steps: int
    total_steps: int
    masks: list[ProposalOut] | None
    error: str | None


def _start(request: Request, image_id: str) -> AutoJob:
    """A job computing the image's suggestions; the accepted annotations are read now."""
    app = state(request)
    image = stored(app.project.usable_image(image_id))
    with app.project.db.session() as session:
        existing = [a.rle for a in repository.list_annotations(session, image_id) if a.accepted]
    return app.auto_jobs.start(
        image_id, lambda on_step: propose(app.model, image, existing, on_step)
    )


@router.post("/images/{image_id}/auto", response_model=ProposalsResponse)
def proposals(request: Request, image_id: str):
    """Automatic masks for the image (the model's automatic-mask defaults), as suggestions:
    near-duplicates and masks the accepted annotations already cover are left out. Answers
    when they are ready (the job form below reports progress)."""
    job = _start(request, image_id)
    return {"masks": state(request).auto_jobs.wait(job)}


@router.post("/images/{image_id}/auto/jobs", status_code=202, response_model=AutoJobOut)
def start_job(request: Request, image_id: str) -> dict[str, Any]:
    """Start computing the image's suggestions; follow the job with GET /api/auto/jobs/{id}.
    Jobs live in the worker process that runs them (readable from the others while they are
    kept); 409 when the image has a job queued or running, 429 past the worker's limit."""
    return _start(request, image_id).view()


@router.get("/auto/jobs/{job_id}", response_model=AutoJobOut)
def get_job(request: Request, job_id: str) -> dict[str, Any]:
    """The job's state and progress; its masks once done (best first, as /auto answers)."""
    return state(request).auto_jobs.get(job_id)


@router.delete("/auto/jobs/{job_id}", response_model=AutoJobOut)
def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
    """Cancel a queued or running job (it stops before its next slice; poll until its state
    is 'cancelled'), or forget a finished one."""
    return state(request).auto_jobs.cancel(job_id)
