"""/auto as jobs over HTTP, on SQLite and PostgreSQL: POST .../auto/jobs -> 202 and an id,
GET /api/auto/jobs/{id} -> progress, then the masks the synchronous POST .../auto gives;
DELETE cancels; one live job per image (409), a cap per worker (429), unknown ids 404."""

from __future__ import annotations

import threading
import time

import pytest

from postgres import postgres_server  # noqa: F401  (fixture)
from server_helpers import scene_png
from test_server_api import MASK_KEYS, refused, upload


@pytest.fixture
def server(serve):
    return serve


JOB_KEYS = {"id", "image_id", "state", "done_steps", "total_steps", "masks", "error"}


def follow(client, job_id: str, until, seconds: float = 600) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(f"/api/auto/jobs/{job_id}")
        assert response.status_code == 200, response.text
        view = response.json()
        assert set(view) == JOB_KEYS
        if until(view):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.05)


def test_a_job_reports_progress_and_ends_with_the_masks(server):
    client = server()
    image = upload(client, scene_png(1))
    response = client.post(f"/api/images/{image['id']}/auto/jobs")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["image_id"] == image["id"] and job["state"] in ("queued", "running")
    seen = []
    view = follow(client, job["id"], lambda v: seen.append(v["done_steps"]) or v["state"] == "done")
    assert view["error"] is None and view["total_steps"] > 3
    assert view["done_steps"] == view["total_steps"] and seen == sorted(seen)
    # As the synchronous POST .../auto answers (test_server_api.test_auto_proposals).
    masks = view["masks"]
    assert len(masks) >= 3 and all(set(m) == MASK_KEYS | {"stability"} for m in masks)
    assert [m["score"] for m in masks] == sorted((m["score"] for m in masks), reverse=True)
    # Finished: the image may start another job; a finished job is forgotten on DELETE.
    assert client.delete(f"/api/auto/jobs/{job['id']}").json()["state"] == "done"
    refused(client.get(f"/api/auto/jobs/{job['id']}"), 404, "no Auto job")


@pytest.fixture
def held(monkeypatch):
    """The jobs' work replaced by one that steps only when the test says (`held.step()`), so
    that a job is certainly running or queued when the test looks."""
    from segany.server.routes import auto

    allowed = threading.Semaphore(0)
    stop = threading.Event()

    def propose(service, image, existing, on_step):
        for done in range(1000):
            on_step(done, 1000)
            while not allowed.acquire(timeout=0.05):
                if stop.is_set():
                    return []
        return []

    monkeypatch.setattr(auto, "propose", propose)
    yield allowed
    stop.set()


def test_delete_cancels_a_running_job(server, held):
    client = server()
    image = upload(client, scene_png(1))
    job = client.post(f"/api/images/{image['id']}/auto/jobs").json()
    held.release()
    follow(client, job["id"], lambda v: v["done_steps"] >= 1)
    response = client.delete(f"/api/auto/jobs/{job['id']}")
    assert response.status_code == 200 and response.json()["state"] in ("running", "cancelled")
    held.release()
    view = follow(client, job["id"], lambda v: v["state"] != "running", 60)
    assert view["state"] == "cancelled" and view["masks"] is None
    again = client.post(f"/api/images/{image['id']}/auto/jobs")  # the image is free again
    assert again.status_code == 202, again.text


def test_jobs_are_bounded_one_per_image_and_a_few_per_worker(server, held):
    client = server()
    images = [upload(client, scene_png(seed)) for seed in range(5)]
    first = client.post(f"/api/images/{images[0]['id']}/auto/jobs").json()
    detail = refused(client.post(f"/api/images/{images[0]['id']}/auto/jobs"), 409, "already")
    assert first["id"] in detail
    refused(client.post(f"/api/images/{images[0]['id']}/auto"), 409, "already")
    for image in images[1:4]:
        assert client.post(f"/api/images/{image['id']}/auto/jobs").status_code == 202
    refused(client.post(f"/api/images/{images[4]['id']}/auto/jobs"), 429, "at most 4")
    client.delete(f"/api/auto/jobs/{first['id']}")
    held.release()
    follow(client, first["id"], lambda v: v["state"] == "cancelled", 60)
    assert client.post(f"/api/images/{images[4]['id']}/auto/jobs").status_code == 202


@pytest.mark.parametrize("job_id", ["nope", "0" * 32, "a" * 31 + "g"])
def test_unknown_jobs_and_images_are_404(server, job_id):
    client = server()
    refused(client.get(f"/api/auto/jobs/{job_id}"), 404, "no Auto job")
    refused(client.delete(f"/api/auto/jobs/{job_id}"), 404, "no Auto job")
    refused(client.post("/api/images/missing/auto/jobs"), 404, "missing")
