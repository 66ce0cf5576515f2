"""Propagation as a background job, with progress and cancel (as /auto's jobs):

    POST   /api/sequences/{id}/propagate  {"start"?, "reverse"?, "max_frames"?}  -> 202 job
    GET    /api/track/jobs/{job}          {"state", "done_frames", "total_frames", "error"}
    DELETE /api/track/jobs/{job}          cancelled before its next frame (a finished job:
                                          forgotten)

Each tracked frame is one call on the compute thread at job priority (clicks go first) and is
stored (committed) before the next; the timeline and frame masks show the progress as it goes.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from segany.server.routes.common import state

router = APIRouter(tags=["sequences"])


class PropagateIn(BaseModel):
    """start: the first frame (default: the first prompted frame, the last one for reverse);
    reverse: towards frame 0; max_frames: stop after this many frames (start included)."""

    model_config = ConfigDict(extra="forbid")

    start: int | None = Field(default=None, ge=0)
    reverse: bool = False
    max_frames: int | None = Field(default=None, ge=1)


class TrackJobOut(BaseModel):
    """A propagation: done_frames of total_frames tracked and stored; error once failed."""

    id: str
    sequence_id: str
    state: Literal["queued", "running", "done", "cancelled", "failed"]
    done_frames: int
    total_frames: int
    error: str | None


def job_out(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": view["id"],
        "sequence_id": view["image_id"],  # AutoJobs' key: here the sequence's id
        "state": view["state"],
        "done_frames": view["done_steps"],
        "total_frames": view["total_steps"],
        "error": view["error"],
    }


@router.post("/sequences/{sequence_id}/propagate", status_code=202, response_model=TrackJobOut)
def propagate(request: Request, sequence_id: str, body: PropagateIn):
    """Track every prompted object forward (or backward) from `start`; follow the job with
    GET /api/track/jobs/{id}. 409 while the sequence is being propagated, 422 before any
    prompt or for a start past the end."""
    job = state(request).sequences.propagate(sequence_id, body.start, body.reverse, body.max_frames)
    return job_out(job.view())


@router.get("/track/jobs/{job_id}", response_model=TrackJobOut)
def get_job(request: Request, job_id: str):
    return job_out(state(request).sequences.jobs.get(job_id))


@router.delete("/track/jobs/{job_id}", response_model=TrackJobOut)
def cancel_job(request: Request, job_id: str):
    """Cancel a queued or running propagation (it stops before its next frame: poll until
    'cancelled'; the frames tracked so far stay stored), or forget a finished one."""
    return job_out(state(request).sequences.jobs.cancel(job_id))
