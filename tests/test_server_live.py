"""The real `segany serve`, a subprocess on loopback, on SQLite and on PostgreSQL (`--db`): an
acknowledged annotation survives `kill -9` of the server; 8 clients clicking at once on 8 images
get the answers one client gets alone (with 1 and with 2 worker processes); `--demo`."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from postgres import postgres_server  # noqa: F401  (fixture)
from server_helpers import SAMPLE_POINT, LiveServer, scene_png

CLIENTS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str | None:
    """None: the default SQLite file in the data dir; else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_server").new_database()


def upload(http: httpx.Client, data: bytes, name: str = "scene.png") -> str:
    response = http.post("/api/images", files={"file": (name, data, "image/png")})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def box_rle(height: int = 96, width: int = 128) -> dict:
    """The API RLE of the rectangle rows 10:30, columns 20:60 (800 pixels)."""
    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    mask[10:30, 20:60] = 1
    rle = mask_utils.encode(mask)
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


# ---- durability -------------------------------------------------------------------------------


def test_an_acknowledged_annotation_survives_kill_9(tmp_path, db_url):
    data = tmp_path / "data"
    server = LiveServer(data, "--no-pre-encode", db=db_url).start()
    try:
        with server.client() as http:
            image_id = upload(http, scene_png(1))
            body = {"rle": box_rle(), "source": "manual"}
            headers = {"X-Segany-User": "durable"}
            response = http.post(f"/api/images/{image_id}/annotations", json=body, headers=headers)
    finally:
        server.kill()  # at once: no graceful shutdown, no chance to flush anything later
    assert server.process.returncode == -9
    assert response.status_code == 201, response.text
    made = response.json()

    with LiveServer(data, "--no-pre-encode", db=db_url) as again, again.client() as http:
        listed = http.get(f"/api/images/{image_id}/annotations").json()
    assert [(a["id"], a["author"], a["area"]) for a in listed] == [(made["id"], "durable", 800)]
    assert listed[0]["rle"] == made["rle"] and listed[0]["created_at"] == made["created_at"]
    if db_url is None:
        assert (data / "segany.db").is_file()


# ---- concurrency ------------------------------------------------------------------------------


def clicks(index: int) -> tuple[list, list]:
    """Image `index`'s first click (one include point) and its second (one more exclude)."""
    first = [[30 + 9 * index, 40 + 4 * index, 1]]
    return first, [*first, [100 - 5 * index, 80 - 6 * index, 0]]


def click_twice(http: httpx.Client, image_id: str, index: int) -> list[dict]:
    """The first click, the second click refining the first's answer (`previous`), and the
    first click again; the three answers."""
    first, second = clicks(index)
    url = f"/api/images/{image_id}/predict"
    answers = []
    for points, previous in ((first, None), (second, 0), (first, None)):
        body = {"points": points}
        if previous is not None:
            body["previous"] = answers[previous]["previous"]
        response = http.post(url, json=body)
        response.raise_for_status()
        answers.append(response.json())
    return answers


def best(answer: dict) -> tuple:
    """What must not change with the load: the best mask and its score (rounded: a float's
    last bits are not part of the answer)."""
    mask = answer["masks"][0]
    return mask["rle"]["counts"], mask["area"], round(mask["score"], 5)


@pytest.fixture(scope="module")
def serial_answers(tmp_path_factory) -> list[list[tuple]]:
    """Per image, the answers of `click_twice` from a server that did nothing else meanwhile."""
    data = tmp_path_factory.mktemp("serial") / "data"
    with LiveServer(data, "--no-pre-encode") as server, server.client() as http:
        ids = [upload(http, scene_png(seed), f"{seed}.png") for seed in range(CLIENTS)]
        return [[best(a) for a in click_twice(http, i, n)] for n, i in enumerate(ids)]


@pytest.mark.parametrize("workers", [1, 2])
def test_eight_clients_clicking_at_once_get_the_serial_answers(
    tmp_path, db_url, workers, serial_answers
):
    args = ("--no-pre-encode", "--workers", str(workers))
    with LiveServer(tmp_path / "data", *args, db=db_url) as server:
        with server.client() as http:
            ids = [upload(http, scene_png(seed), f"{seed}.png") for seed in range(CLIENTS)]
        start = threading.Barrier(CLIENTS)
        answers: list[list[dict] | BaseException | None] = [None] * CLIENTS

        def client(n: int) -> None:
            try:
                with server.client() as http:  # a connection of its own, as a browser has
                    start.wait(timeout=60)
                    answers[n] = click_twice(http, ids[n], n)
            except BaseException as error:  # reported below, with the image it happened on
                answers[n] = error

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        health = httpx.get(f"{server.url}/health").json()
    failed = {n: repr(a) for n, a in enumerate(answers) if not isinstance(a, list)}
    assert not failed, f"{failed}\n{server.output()}"
    for n, got in enumerate(answers):
        # The first clicks computed the embeddings, all at once; the others found them cached.
        assert [a["cached"] for a in got] == [False, True, True], n
        assert [best(a) for a in got] == serial_answers[n], f"image {n}: another answer"
    assert health["status"] == "ok"


# ---- the demo ---------------------------------------------------------------------------------


def test_demo_loads_the_sample_images_and_categories(tmp_path, db_url):
    data = tmp_path / "data"
    with LiveServer(data, "--demo", "--no-pre-encode", db=db_url) as server:
        with server.client() as http:
            images = http.get("/api/images").json()
            categories = http.get("/api/categories").json()
            sample = next(i for i in images["images"] if i["file_name"] == "sample.png")
            x, y = SAMPLE_POINT
            answer = http.post(f"/api/images/{sample['id']}/predict", json={"points": [[x, y, 1]]})
    assert images["total"] == 4
    assert all((i["width"], i["height"]) == (640, 480) for i in images["images"])
    assert [c["name"] for c in categories] == ["object", "part", "background"]
    assert all(c["color"].startswith("#") for c in categories)
    assert answer.status_code == 200 and answer.json()["masks"][0]["score"] > 0.5
    assert "demo: 4 images added" in server.output()

    # A second start with --demo finds them there and adds nothing.
    with LiveServer(data, "--demo", "--no-pre-encode", db=db_url) as again:
        with again.client() as http:
            assert http.get("/api/images").json()["total"] == 4
            assert len(http.get("/api/categories").json()) == 3
    assert "demo: 0 images added" in again.output()
