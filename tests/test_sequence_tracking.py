"""Prompting and propagating a sequence through the HTTP API, on SQLite and PostgreSQL: a prompt
answers with the frame's masks at once; propagation is a job with progress and cancel that
stores every frame; a correction re-propagates from its frame; clicks are answered while a job
runs; acknowledged masks survive a restart, whose new session replays the stored prompts; bad
prompts are 4xx that say what is wrong. The mechanics run on a stand-in tracker with known
answers (sequence_helpers.StampTracker); the last test runs the real one on segany-tiny-v2."""

from __future__ import annotations

import time

import numpy as np
import pytest

from postgres import postgres_server  # noqa: F401  (fixture)
from segany.server import sequence_sessions
from sequence_helpers import (
    FRAMES,
    HEIGHT,
    STEP,
    WIDTH,
    StampTracker,
    decode,
    iou,
    square_mask,
    upload_video,
    wait_job,
)
from server_helpers import scene_png

POINT = [35, 55, 1]  # inside the square on frame 0


def use_stamp(monkeypatch, delay: float = 0.0) -> None:
    monkeypatch.setattr(
        sequence_sessions, "default_tracker_factory", lambda model: StampTracker(delay)
    )


def stamp_at(x: int, y: int, shift: int = 0) -> np.ndarray:
    """The stand-in's mask of a click at (x, y), moved `shift` px right."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y - 10 : y + 11, x - 10 : x + 11] = True
    return np.roll(mask, shift, axis=1)


def masks_on(client, sequence_id: str, frame: int) -> dict[int, dict]:
    answer = client.get(f"/api/sequences/{sequence_id}/frames/{frame}/masks").json()
    return {m["object_id"]: m for m in answer["masks"]}


def refused(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    for word in words:
        assert word.lower() in detail.lower(), f"{word!r} not in {detail!r}"


def test_prompt_propagate_correct_and_propagate_again(serve, monkeypatch):
    use_stamp(monkeypatch)
    client = serve()
    sequence_id = upload_video(client)["id"]
    base = f"/api/sequences/{sequence_id}"
    answer = client.post(f"{base}/prompt", json={"frame": 0, "object_id": 1, "points": [POINT]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["frame"], body["stopped_job"]) == (0, None)
    (mask,) = body["masks"]
    assert (mask["object_id"], mask["source"], mask["score"]) == (1, "prompt", 0.9)
    assert np.array_equal(decode(mask["rle"]), stamp_at(35, 55))
    assert mask["area"] == 21 * 21 and mask["bbox"] == [25, 45, 21, 21]
    assert client.get(f"{base}/objects").json()[0]["object_id"] == 1  # added by the prompt
    assert body["prompts"] == [{"object_id": 1, "points": [POINT], "box": None}]

    job = client.post(f"{base}/propagate", json={}).json()
    assert job["sequence_id"] == sequence_id and job["state"] in ("queued", "running")
    done = wait_job(client, job["id"])
    assert (done["state"], done["done_frames"], done["total_frames"]) == ("done", FRAMES, FRAMES)
    for frame in range(FRAMES):
        stored = masks_on(client, sequence_id, frame)[1]
        assert stored["source"] == ("prompt" if frame == 0 else "tracked")
        assert np.array_equal(decode(stored["rle"]), stamp_at(35, 55, STEP * frame))
    timeline = client.get(f"{base}/timeline").json()
    assert timeline == {
        "frame_count": FRAMES,
        "objects": [{"object_id": 1, "ranges": [[0, FRAMES - 1]], "prompted": [0]}],
    }

    # A correction on frame 4, then propagation from it: frames 4.. follow the correction,
    # frames before it keep what they had.
    fix = client.post(f"{base}/prompt", json={"frame": 4, "object_id": 1, "points": [[80, 60, 1]]})
    assert np.array_equal(decode(fix.json()["masks"][0]["rle"]), stamp_at(80, 60))
    again = client.post(f"{base}/propagate", json={"start": 4}).json()
    assert wait_job(client, again["id"])["total_frames"] == FRAMES - 4
    for frame in range(FRAMES):
        stored = decode(masks_on(client, sequence_id, frame)[1]["rle"])
        expected = stamp_at(80, 60, STEP * (frame - 4)) if frame >= 4 else None
        if expected is None:
            expected = stamp_at(35, 55, STEP * frame)
        assert np.array_equal(stored, expected), frame
    prompted = client.get(f"{base}/timeline").json()["objects"][0]["prompted"]
    assert prompted == [0, 4]

    back = client.post(f"{base}/propagate", json={"start": 3, "reverse": True, "max_frames": 2})
    assert wait_job(client, back.json()["id"])["total_frames"] == 2

    client.post(f"{base}/prompt", json={"frame": 2, "object_id": 2, "box": [100, 10, 130, 30]})
    assert sorted(masks_on(client, sequence_id, 2)) == [1, 2]
    assert client.delete(f"{base}/objects/2").status_code == 204
    assert sorted(masks_on(client, sequence_id, 2)) == [1]  # its masks went with it


def test_bad_prompts_and_propagations_are_refused(serve, monkeypatch):
    use_stamp(monkeypatch)
    client = serve()
    sequence_id = upload_video(client)["id"]
    url = f"/api/sequences/{sequence_id}/prompt"
    refused(client.post(f"/api/sequences/{sequence_id}/propagate", json={}), 422, "prompt")
    refused(client.post(url, json={"frame": 0, "object_id": 0, "points": [POINT]}), 422, "object")
    refused(client.post(url, json={"frame": 0, "object_id": 256, "points": [POINT]}), 422)
    refused(
        client.post(url, json={"frame": FRAMES, "object_id": 1, "points": [POINT]}),
        422,
        "past the end",
        f"{FRAMES} frames",
    )
    refused(client.post(url, json={"frame": 0, "object_id": 1}), 422, "point or a box")
    refused(client.post(url, json={"frame": 0, "object_id": 1, "points": [[500, 5, 1]]}), 422)
    refused(client.post(url, json={"frame": 0, "object_id": 1, "points": [[5, 5, 2]]}), 422)
    unknown = {"frame": 0, "object_id": 1, "points": [POINT]}
    refused(client.post("/api/sequences/nope/prompt", json=unknown), 404, "nope")
    assert client.get(f"/api/sequences/{sequence_id}/timeline").json()["objects"] == []
    client.post(url, json={"frame": 0, "object_id": 1, "points": [POINT]})
    refused(
        client.post(f"/api/sequences/{sequence_id}/propagate", json={"start": 99}),
        422,
        "past the end",
    )
    refused(client.get("/api/track/jobs/0123"), 404, "0123")


def test_cancel_stops_a_propagation_and_a_prompt_stops_it_too(serve, monkeypatch):
    use_stamp(monkeypatch, delay=0.3)
    client = serve()
    sequence_id = upload_video(client)["id"]
    base = f"/api/sequences/{sequence_id}"
    client.post(f"{base}/prompt", json={"frame": 0, "object_id": 1, "points": [POINT]})
    job = client.post(f"{base}/propagate", json={}).json()
    refused(client.post(f"{base}/propagate", json={}), 409, "already", job["id"])
    assert client.get(base).json()["job"] == job["id"]
    time.sleep(0.5)
    client.delete(f"/api/track/jobs/{job['id']}")
    ended = wait_job(client, job["id"])
    assert ended["state"] == "cancelled" and 0 < ended["done_frames"] < FRAMES
    ranges = client.get(f"{base}/timeline").json()["objects"][0]["ranges"]
    assert ranges == [[0, ended["done_frames"] - 1]]  # the frames tracked so far are kept

    second = client.post(f"{base}/propagate", json={}).json()
    time.sleep(0.4)
    fix = client.post(f"{base}/prompt", json={"frame": 1, "object_id": 1, "points": [[50, 60, 1]]})
    assert fix.json()["stopped_job"] == second["id"]
    assert client.get(f"/api/track/jobs/{second['id']}").json()["state"] == "cancelled"


def test_clicks_are_answered_while_a_propagation_runs(serve, monkeypatch):
    use_stamp(monkeypatch, delay=0.5)  # each frame holds the compute thread 0.5 s
    client = serve()
    image = client.post("/api/images", files={"file": ("a.png", scene_png(1))}).json()
    predict = f"/api/images/{image['id']}/predict"
    assert client.post(predict, json={"points": [[10, 10, 1]]}).status_code == 200  # encoded
    started = time.monotonic()
    client.post(predict, json={"points": [[30, 30, 1]]})
    alone = time.monotonic() - started  # a click with nothing else running
    sequence_id = upload_video(client)["id"]
    base = f"/api/sequences/{sequence_id}"
    client.post(f"{base}/prompt", json={"frame": 0, "object_id": 1, "points": [POINT]})
    job = client.post(f"{base}/propagate", json={}).json()
    time.sleep(0.7)
    started = time.monotonic()
    assert client.post(predict, json={"points": [[20, 20, 1]]}).status_code == 200
    waited = time.monotonic() - started
    view = client.get(f"/api/track/jobs/{job['id']}").json()
    assert view["state"] == "running", view  # the job was not over: the click went between
    # At most the frame running when it came (0.5 s), never the job's remaining 3 s.
    assert waited < alone + 1.5, f"a click took {waited:.1f} s ({alone:.1f} s alone)"
    client.delete(f"/api/track/jobs/{job['id']}")
    wait_job(client, job["id"])


def test_acknowledged_masks_survive_a_restart_and_prompts_are_replayed(serve, monkeypatch):
    use_stamp(monkeypatch)
    first = serve()
    sequence_id = upload_video(first)["id"]
    base = f"/api/sequences/{sequence_id}"
    first.post(f"{base}/prompt", json={"frame": 2, "object_id": 3, "points": [[60, 50, 1]]})
    second = serve()  # another process on the same data and database (a restart, a worker)
    assert masks_on(second, sequence_id, 2)[3]["source"] == "prompt"
    job = second.post(f"{base}/propagate", json={}).json()
    assert job["total_frames"] == FRAMES - 2  # from the first prompted frame
    assert wait_job(second, job["id"])["state"] == "done"
    last = decode(masks_on(second, sequence_id, FRAMES - 1)[3]["rle"])
    assert np.array_equal(last, stamp_at(60, 50, STEP * (FRAMES - 1 - 2)))
    # A third worker was never on frame 5: asked to start there, its new session starts at
    # the prompted frame 2 (the tracker's state is carried, not guessed) and says so.
    third = serve()
    resumed = third.post(f"{base}/propagate", json={"start": 5}).json()
    ended = wait_job(third, resumed["id"])
    assert (ended["state"], ended["total_frames"]) == ("done", FRAMES - 2)
    assert ended["done_frames"] == FRAMES - 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_default_model_tracks_a_moving_square(serve):
    """segany-tiny-v2 through `segany.track.build_tracker`: one click on frame 0, the square
    followed over the next frames."""
    client = serve()
    sequence_id = upload_video(client)["id"]
    base = f"/api/sequences/{sequence_id}"
    answer = client.post(f"{base}/prompt", json={"frame": 0, "object_id": 1, "points": [POINT]})
    assert answer.status_code == 200, answer.text
    assert iou(decode(answer.json()["masks"][0]["rle"]), square_mask(0)) > 0.7
    job = client.post(f"{base}/propagate", json={"max_frames": 4}).json()
    assert wait_job(client, job["id"], timeout=120)["state"] == "done"
    for frame in (1, 3):
        stored = decode(masks_on(client, sequence_id, frame)[1]["rle"])
        assert iou(stored, square_mask(frame)) > 0.7, frame
