"""The annotation server's HTTP API (its contract, as the route modules implement it) through
FastAPI's TestClient, every test on SQLite and on a real PostgreSQL: the two fixed-shape calls
(upload, predict), images, categories, annotations, proposals, export and import; bad input of
every kind is a 4xx that says what is wrong, and the server serves on afterwards; the token."""

from __future__ import annotations

import io
import json
import os
import struct
import time
import zipfile
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from postgres import postgres_server  # noqa: F401  (fixture)
from segany.cli.main import main
from segany.errors import ConfigError
from segany.formats.manifest import read_manifest
from segany.registry import DEFAULT_MODEL
from segany.server.settings import Limits, ServerSettings
from server_helpers import SAMPLE_POINT, png_bytes, sample_png, scene_png

MASK_KEYS = {"rle", "polygons", "score", "area", "bbox"}
IMAGE_ITEM_KEYS = {"id", "file_name", "width", "height", "encoded", "annotations", "reviewed"}
ANNOTATION_KEYS = {
    "id", "image_id", "category_id", "rle", "polygons", "area", "bbox", "score", "source",
    "accepted", "stale", "author", "created_at", "updated_at",
}  # fmt: skip
SCENE_H, SCENE_W = 96, 128  # scene_png's default size


# ---- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def client(serve) -> TestClient:
    return serve()


def upload(client: TestClient, data: bytes, name: str = "scene.png", status=(201,)) -> dict:
    """POST the file; `status`: the answers allowed (201 new, 200 the same bytes again)."""
    response = client.post("/api/images", files={"file": (name, data, "image/png")})
    assert response.status_code in status, response.text
    return response.json()


def predict(client: TestClient, image_id: str, status: int = 200, **body) -> dict:
    response = client.post(f"/api/images/{image_id}/predict", json=body)
    assert response.status_code == status, response.text
    return response.json()


def decode(rle: dict) -> np.ndarray:
    """(H, W) bool mask of an API RLE."""
    coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(coded).astype(bool)


def rect_rle(y0: int, y1: int, x0: int, x1: int, height=SCENE_H, width=SCENE_W) -> dict:
    """The API RLE of a filled rectangle (rows y0:y1, columns x0:x1)."""
    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    mask[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(mask)
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def refused(response, status: int, *words: str) -> str:
    """Check a refusal: the status, and a `detail` sentence that names the problem."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str), detail
    for word in words:
        assert word.lower() in detail.lower(), f"{word!r} not in {detail!r}"
    return detail


def assert_serving(client: TestClient) -> None:
    """The server still works after the refusals: an upload and a click are answered."""
    assert client.get("/health").json()["status"] == "ok"
    image = upload(client, scene_png(99), "after.png", status=(200, 201))
    answer = predict(client, image["id"], points=[[10, 10, 1]])
    assert len(answer["masks"]) == 3


def check_mask(mask: dict, height: int, width: int) -> np.ndarray:
    """The contract's Mask record, internally consistent; returns it decoded."""
    assert set(mask) == MASK_KEYS
    assert mask["rle"]["size"] == [height, width]
    decoded = decode(mask["rle"])
    assert mask["area"] == int(decoded.sum())
    ys, xs = np.nonzero(decoded)
    if len(xs):
        box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert mask["bbox"] == [int(v) for v in box]
    assert isinstance(mask["score"], float)
    for polygon in mask["polygons"]:
        assert len(polygon) >= 6 and len(polygon) % 2 == 0
        xy = np.asarray(polygon).reshape(-1, 2)  # (K, 2) xy pixels
        assert (xy >= 0).all() and (xy[:, 0] <= width).all() and (xy[:, 1] <= height).all()
    return decoded


# ---- the two fixed-shape calls ----------------------------------------------------------------


def test_upload_and_predict_follow_the_contract(client):
    data = sample_png()
    created = client.post("/api/images", files={"file": ("sample.png", data, "image/png")})
    assert created.status_code == 201
    image = created.json()
    assert set(image) == {"id", "width", "height"}
    assert (image["width"], image["height"]) == (640, 480)
    again = client.post("/api/images", files={"file": ("copy.png", data, "image/png")})
    assert (again.status_code, again.json()) == (200, image)  # the same bytes: stored once

    x, y = SAMPLE_POINT
    first = predict(client, image["id"], points=[[x, y, 1]])
    assert set(first) == {"masks", "previous", "cached"}
    assert first["cached"] is False
    assert len(first["masks"]) == 3
    scores = [m["score"] for m in first["masks"]]
    assert scores == sorted(scores, reverse=True)  # best first
    best = [check_mask(m, 480, 640) for m in first["masks"]][0]
    assert best[y, x], "the best mask does not cover the clicked point"
    assert 0.5 < scores[0] <= 1.5  # the shipped weights are sure of the sample's object

    second = predict(client, image["id"], points=[[x, y, 1]])
    assert second["cached"] is True
    assert second["masks"] == first["masks"]  # the same click, the same answer
    assert second["previous"] != first["previous"]  # every answer gets its own token

    # `previous` feeds the answer's logits back: TOKEN (the best) and TOKEN.i (the i-th).
    # A later edit gets the interactive rule's 4 candidates (segany.interactive).
    refined = predict(client, image["id"], points=[[x, y, 1]], previous=first["previous"])
    assert refined["cached"] is True and len(refined["masks"]) == 4
    assert refined["masks"] != first["masks"]
    assert check_mask(refined["masks"][0], 480, 640)[y, x], "the best contradicts the click"
    other = predict(client, image["id"], points=[[x, y, 1]], previous=first["previous"] + ".2")
    assert other["masks"] != refined["masks"]
    chained = predict(client, image["id"], points=[[x, y, 1], [50, 50, 0]],
                      previous=refined["previous"] + ".1")  # fmt: skip
    check_mask(chained["masks"][0], 480, 640)

    single = predict(client, image["id"], points=[[x, y, 1]], multimask=False)
    assert len(single["masks"]) == 1
    boxed = predict(client, image["id"], box=[150, 80, 440, 300], multimask=False)
    assert boxed["masks"][0]["area"] > 0

    # The annotator draws the RLE and asks without outlines: the same masks, polygons null.
    bare = predict(client, image["id"], points=[[x, y, 1]], polygons=False)
    assert [m["polygons"] for m in bare["masks"]] == [None] * 3
    without = [{k: v for k, v in m.items() if k != "polygons"} for m in first["masks"]]
    assert [{k: v for k, v in m.items() if k != "polygons"} for m in bare["masks"]] == without
    assert all(m["polygons"] for m in first["masks"])  # asked for by default


def test_health_info_and_pre_encoding(serve):
    client = serve(pre_encode=True)
    assert client.get("/health").json() == {"status": "ok", "model": DEFAULT_MODEL}
    info = client.get("/api/info").json()
    assert set(info) == {"model", "image_size", "version", "amg_defaults"}
    assert (info["model"], info["image_size"]) == (DEFAULT_MODEL, 512)
    assert info["amg_defaults"]["points_per_side"] > 0
    assert client.get("/").headers["content-type"].startswith("text/html")  # the annotator

    ids = [upload(client, scene_png(seed))["id"] for seed in range(3)]
    deadline = time.monotonic() + 120
    while (status := client.get("/api/encoding").json())["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == {"total": 3, "encoded": 3, "pending": 0}
    assert all(item["encoded"] for item in client.get("/api/images").json()["images"])
    # The first click on a pre-encoded image finds its embedding computed.
    assert predict(client, ids[2], points=[[5, 5, 1]])["cached"] is True


def test_previous_tokens_that_name_no_answer_are_refused(client):
    image = upload(client, scene_png(1))
    answer = predict(client, image["id"], points=[[10, 10, 1]])
    url = f"/api/images/{image['id']}/predict"
    cases = [
        ("../../../etc/passwd", "token from an earlier answer"),
        ("A" * 24, "no stored answer"),
        (answer["previous"] + ".7", "has 3 masks"),
        (answer["previous"] + ".x", "token from an earlier answer"),
        ("A" * 200, "previous"),
    ]
    for previous, words in cases:
        response = client.post(url, json={"points": [[10, 10, 1]], "previous": previous})
        refused(response, 422, words)
    assert_serving(client)


# ---- images -----------------------------------------------------------------------------------


def test_list_get_review_and_delete_images(client):
    ids = [upload(client, scene_png(seed), f"scene-{seed}.png")["id"] for seed in range(3)]
    page = client.get("/api/images").json()
    assert page["total"] == 3
    assert [item["id"] for item in page["images"]] == ids  # upload order
    for item, seed in zip(page["images"], range(3), strict=True):
        assert set(item) == IMAGE_ITEM_KEYS
        assert item["file_name"] == f"scene-{seed}.png"
        assert (item["width"], item["height"]) == (SCENE_W, SCENE_H)
        assert (item["encoded"], item["annotations"], item["reviewed"]) == (False, 0, False)
    second = client.get("/api/images", params={"offset": 1, "limit": 1}).json()
    assert (second["total"], [i["id"] for i in second["images"]]) == (3, ids[1:2])
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        refused(client.get("/api/images", params=params), 422, "query")

    annotation = {"rle": rect_rle(2, 10, 2, 10)}
    assert client.post(f"/api/images/{ids[0]}/annotations", json=annotation).status_code == 201
    predict(client, ids[0], points=[[5, 5, 1]])
    item = client.get(f"/api/images/{ids[0]}").json()
    assert (item["annotations"], item["encoded"]) == (1, True)

    patched = client.patch(f"/api/images/{ids[0]}", json={"reviewed": True})
    assert patched.status_code == 200 and patched.json()["reviewed"] is True
    assert client.get(f"/api/images/{ids[0]}").json()["reviewed"] is True
    refused(client.patch(f"/api/images/{ids[0]}", json={"reviewed": "maybe"}), 422, "reviewed")
    refused(client.patch(f"/api/images/{ids[0]}", json={"position": 3}), 422, "position")

    assert client.delete(f"/api/images/{ids[0]}").status_code == 204
    refused(client.get(f"/api/images/{ids[0]}"), 404, ids[0])
    refused(client.get(f"/api/images/{ids[0]}/annotations"), 404, ids[0])
    refused(client.delete(f"/api/images/{ids[0]}"), 404, ids[0])
    assert [i["id"] for i in client.get("/api/images").json()["images"]] == ids[1:]


def test_the_served_file_is_the_upright_image(client):
    # A 60 x 30 JPEG whose EXIF says "rotate 90 degrees clockwise to show": upright 30 x 60.
    pixels = np.zeros((30, 60, 3), dtype=np.uint8)
    pixels[:, :20] = (250, 20, 20)
    pixels[:, 20:] = (20, 20, 250)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif, quality=95)
    image = upload(client, buffer.getvalue(), "rotated.jpg")
    assert (image["width"], image["height"]) == (30, 60)

    served = client.get(f"/api/images/{image['id']}/file")
    assert served.status_code == 200
    assert served.headers["content-type"] in ("image/png", "image/jpeg")
    with Image.open(io.BytesIO(served.content)) as shown:
        assert shown.size == (30, 60)
        assert shown.getexif().get(0x0112, 1) == 1  # nothing left for the browser to rotate
        shown_pixels = np.asarray(shown.convert("RGB")).astype(int)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue())))
    assert np.abs(shown_pixels - np.asarray(upright).astype(int)).mean() < 8

    # Clicks are in the served (upright) frame: y = 55 exists only there.
    answer = predict(client, image["id"], points=[[25, 55, 1]])
    assert answer["masks"][0]["rle"]["size"] == [60, 30]
    refused(client.post(f"/api/images/{image['id']}/predict", json={"points": [[55, 25, 1]]}),
            422, "outside", "30x60")  # fmt: skip
    png = client.get(f"/api/images/{upload(client, scene_png(3))['id']}/file")
    assert png.headers["content-type"] == "image/png" and png.content == scene_png(3)


# ---- categories and annotations ---------------------------------------------------------------


def test_categories_crud(client):
    assert client.get("/api/categories").json() == []
    cat = client.post("/api/categories", json={"name": "cat", "color": "#ff8800"})
    assert cat.status_code == 201
    cat = cat.json()
    assert set(cat) == {"id", "name", "color"} and (cat["name"], cat["color"]) == ("cat", "#ff8800")
    dog = client.post("/api/categories", json={"name": "dog"}).json()
    assert dog["name"] == "dog"
    refused(client.post("/api/categories", json={"name": "cat"}), 409, "cat")
    refused(client.patch(f"/api/categories/{dog['id']}", json={"name": "cat"}), 409, "cat")
    refused(client.post("/api/categories", json={"name": ""}), 422, "name")
    refused(client.post("/api/categories", json={"name": "x", "color": "red"}), 422, "color")
    refused(client.patch(f"/api/categories/{dog['id']}", json={"color": "#12345"}), 422, "color")

    renamed = client.patch(
        f"/api/categories/{dog['id']}", json={"name": "hound", "color": "#00ff00"}
    )
    assert renamed.status_code == 200
    assert renamed.json() == {"id": dog["id"], "name": "hound", "color": "#00ff00"}
    names = [c["name"] for c in client.get("/api/categories").json()]
    assert sorted(names) == ["cat", "hound"]

    # Deleting a category leaves its annotations, uncategorised.
    image = upload(client, scene_png(1))
    url = f"/api/images/{image['id']}/annotations"
    made = client.post(url, json={"rle": rect_rle(0, 5, 0, 5), "category_id": cat["id"]}).json()
    assert made["category_id"] == cat["id"]
    assert client.delete(f"/api/categories/{cat['id']}").status_code == 204
    refused(client.delete(f"/api/categories/{cat['id']}"), 404, str(cat["id"]))
    refused(client.patch(f"/api/categories/{cat['id']}", json={"name": "x"}), 404, str(cat["id"]))
    assert [a["category_id"] for a in client.get(url).json()] == [None]
    assert [c["name"] for c in client.get("/api/categories").json()] == ["hound"]


def test_annotations_crud(client):
    image = upload(client, scene_png(1))
    other = upload(client, scene_png(2))
    category = client.post("/api/categories", json={"name": "disc"}).json()
    url = f"/api/images/{image['id']}/annotations"
    body = {
        "rle": rect_rle(10, 30, 20, 60),
        "category_id": category["id"],
        "source": "semi-auto",
        "accepted": False,
        "score": 0.75,
    }
    created = client.post(url, json=body, headers={"X-Segany-User": "alice"})
    assert created.status_code == 201, created.text
    made = created.json()
    assert set(made) == ANNOTATION_KEYS
    assert made["image_id"] == image["id"] and made["rle"] == body["rle"]
    assert (made["category_id"], made["score"]) == (category["id"], 0.75)
    assert (made["source"], made["accepted"]) == ("semi-auto", False)
    assert (made["author"], made["area"]) == ("alice", 20 * 40)
    assert list(made["bbox"]) == [20, 10, 40, 20]
    assert len(made["polygons"]) == 1
    created_at = datetime.fromisoformat(made["created_at"])
    assert created_at.tzinfo is not None
    assert datetime.fromisoformat(made["updated_at"]) >= created_at

    plain = client.post(url, json={"rle": rect_rle(0, 4, 0, 4)}).json()
    assert (plain["author"], plain["source"], plain["accepted"]) == ("anonymous", "manual", True)
    assert (plain["category_id"], plain["score"]) == (None, None)
    listed = client.get(url).json()
    assert [a["id"] for a in listed] == [made["id"], plain["id"]]
    assert listed[0] == made

    time.sleep(0.01)
    patched = client.patch(f"{url}/{made['id']}", json={"accepted": True, "category_id": None})
    assert patched.status_code == 200
    patched = patched.json()
    assert (patched["accepted"], patched["category_id"]) == (True, None)
    assert patched["created_at"] == made["created_at"]
    updated_at = datetime.fromisoformat(patched["updated_at"])
    assert updated_at > datetime.fromisoformat(made["updated_at"])
    reshaped = client.patch(f"{url}/{made['id']}", json={"rle": rect_rle(0, 2, 0, 3)}).json()
    assert (reshaped["area"], list(reshaped["bbox"])) == (6, [0, 0, 3, 2])
    assert reshaped["author"] == "alice"  # the creator stays the author

    # Refusals, each saying what is wrong.
    small = rect_rle(0, 4, 0, 4, height=50, width=50)
    refused(client.post(url, json={"rle": small}), 422, "50 x 50", "96 x 128")
    refused(client.post(url, json={"rle": {"size": [SCENE_H, SCENE_W], "counts": "!!"}}), 422)
    refused(client.post(url, json={"rle": rect_rle(0, 4, 0, 4), "source": "robot"}), 422, "source")
    refused(client.post(url, json={"rle": rect_rle(0, 4, 0, 4), "category_id": 999}), 404, "999")
    refused(client.post(url, json={"rle": rect_rle(0, 4, 0, 4), "colour": 1}), 422, "colour")
    long_name = {"X-Segany-User": "x" * 300}
    refused(client.post(url, json={"rle": rect_rle(0, 4, 0, 4)}, headers=long_name), 422, "200")
    # An annotation is reached only through its own image.
    other_url = f"/api/images/{other['id']}/annotations/{made['id']}"
    refused(client.patch(other_url, json={"accepted": False}), 404, str(made["id"]))
    refused(client.delete(other_url), 404, str(made["id"]))

    assert client.delete(f"{url}/{made['id']}").status_code == 204
    refused(client.delete(f"{url}/{made['id']}"), 404, str(made["id"]))
    assert [a["id"] for a in client.get(url).json()] == [plain["id"]]
    assert client.get(f"/api/images/{image['id']}").json()["annotations"] == 1


def test_auto_proposals(client):
    image = upload(client, scene_png(1))
    response = client.post(f"/api/images/{image['id']}/auto")
    assert response.status_code == 200, response.text
    masks = response.json()["masks"]
    assert len(masks) >= 3
    for mask in masks:
        assert 0 <= mask.pop("stability") <= 1
        check_mask(mask, SCENE_H, SCENE_W)
    scores = [m["score"] for m in masks]
    assert scores == sorted(scores, reverse=True)
    refused(client.post("/api/images/nope/auto"), 404, "nope")


# ---- export and import ------------------------------------------------------------------------


def test_export_in_every_format(client, tmp_path):
    data = {name: scene_png(seed) for seed, name in enumerate(["a.png", "b.png", "c.png"])}
    ids = {name: upload(client, content, name)["id"] for name, content in data.items()}
    disc = client.post("/api/categories", json={"name": "disc"}).json()
    client.post("/api/categories", json={"name": "unused"})
    masks = {
        ("a.png", 0): rect_rle(10, 30, 20, 60),
        ("a.png", 1): rect_rle(40, 50, 40, 90),
        ("b.png", 0): rect_rle(0, 96, 0, 10),
    }
    posts = [
        ("a.png", {"rle": masks["a.png", 0], "category_id": disc["id"], "score": 0.5}),
        ("a.png", {"rle": masks["a.png", 1], "source": "auto"}),
        ("a.png", {"rle": rect_rle(0, 5, 0, 5), "accepted": False}),  # a rejected proposal
        ("b.png", {"rle": masks["b.png", 0]}),
    ]
    for name, body in posts:
        headers = {"X-Segany-User": "bob"}
        response = client.post(f"/api/images/{ids[name]}/annotations", json=body, headers=headers)
        assert response.status_code == 201
    names = {name: f"{ids[name]}_{name}" for name in data}  # the export's unique names

    coco_file = tmp_path / "coco.json"
    response = client.get("/api/export", params={"format": "coco"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    coco_file.write_bytes(response.content)
    coco = COCO(str(coco_file))
    by_name = {image["file_name"]: image for image in coco.dataset["images"]}
    assert set(by_name) == set(names.values())
    cats = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
    assert set(cats) == {"disc", "unused", "object"}  # "object": the uncategorised ones
    found = {}
    for name in data:
        coco_image = by_name[names[name]]
        assert (coco_image["width"], coco_image["height"]) == (SCENE_W, SCENE_H)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[coco_image["id"]]))
        for i, ann in enumerate(anns):
            found[name, i] = ann
            assert ann["author"] == "bob" and ann["iscrowd"] == 0
            expected = decode(masks[name, i])
            assert np.array_equal(coco.annToMask(ann).astype(bool), expected)
            assert ann["area"] == expected.sum()
    assert set(found) == set(masks)  # accepted annotations only
    assert found["a.png", 0]["category_id"] == cats["disc"]
    assert found["b.png", 0]["category_id"] == cats["object"]
    assert found["a.png", 1]["source"] == "auto"

    polygons_file = tmp_path / "polygons.json"
    polygons_file.write_bytes(client.get("/api/export?format=coco-polygons").content)
    polygons = COCO(str(polygons_file))
    exported = sorted(polygons.dataset["annotations"], key=lambda ann: ann["id"])
    assert len(exported) == len(masks)
    # Images in upload order, each image's annotations in the order they were made.
    for ann, key in zip(exported, sorted(masks), strict=True):
        assert polygons.imgs[ann["image_id"]]["file_name"] == names[key[0]]
        assert isinstance(ann["segmentation"], list)
        drawn, expected = polygons.annToMask(ann).astype(bool), decode(masks[key])
        assert (drawn & expected).sum() / (drawn | expected).sum() > 0.9

    sa1b = unzip(client, "sa1b", tmp_path / "sa1b")
    images = [f"images/{n}" for n in names.values()]  # the image files travel with the masks
    assert sorted(sa1b) == sorted(
        [*(f"{n}.json" for n in names.values()), "manifest.json", *images]
    )
    document = json.loads((tmp_path / "sa1b" / f"{names['a.png']}.json").read_text())
    assert document["image"]["file_name"] == names["a.png"]
    segments = [decode(a["segmentation"]) for a in document["annotations"]]
    assert [s.sum() for s in segments] == [decode(masks["a.png", i]).sum() for i in range(2)]
    assert [a["category"] for a in document["annotations"]] == ["disc", None]
    empty = json.loads((tmp_path / "sa1b" / f"{names['c.png']}.json").read_text())
    assert empty["annotations"] == []

    png = unzip(client, "png", tmp_path / "png")
    folder = tmp_path / "png" / names["a.png"]
    assert {"manifest.json", f"{names['a.png']}/0.png", f"{names['a.png']}/1.png"} <= set(png)
    with Image.open(folder / "0.png") as mask_png:
        assert np.array_equal(np.asarray(mask_png) > 0, decode(masks["a.png", 0]))
    assert (folder / "metadata.csv").read_text().splitlines()[1].startswith("0,disc,800,")

    # The manifest says where each exported image's file is, relative to the download (never
    # a server path): a training run on another machine finds them there.
    for export in ("sa1b", "png"):
        text = (tmp_path / export / "manifest.json").read_text()
        assert str(tmp_path / "data") not in text
        assert not any(Path(item["path"]).is_absolute() for item in json.loads(text)["images"])
        manifest = read_manifest(tmp_path / export / "manifest.json")
        assert set(manifest) == set(names.values())
        for name, content in data.items():
            path = manifest[names[name]].path
            assert path.is_file(), f"{export} manifest: {path} does not exist"
            assert path.read_bytes() == content

    refused(client.get("/api/export", params={"format": "yolo"}), 422, "format")


def unzip(client: TestClient, fmt: str, folder: Path) -> list[str]:
    """Download the `fmt` export, check it is a zip, extract it to `folder`; its member names."""
    response = client.get("/api/export", params={"format": fmt})
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        for member in archive.namelist():  # a zip may name ../x: none of ours does
            assert not member.startswith("/") and ".." not in Path(member).parts
        archive.extractall(folder)
        return archive.namelist()


def test_import_a_folder_under_an_import_root(serve, tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(scene_png(1))
    (root / "sub" / "b.png").write_bytes(scene_png(2))
    (root / "broken.png").write_bytes(scene_png(3)[:300])
    (root / "notes.txt").write_text("not an image")
    client = serve(import_roots=(root,))

    result = client.post("/api/import", json={"path": str(root)})
    assert result.status_code == 200, result.text
    result = result.json()
    assert (result["added"], result["skipped"], len(result["ids"])) == (2, 0, 2)
    assert len(result["errors"]) == 1 and "broken.png" in result["errors"][0]
    listed = client.get("/api/images").json()["images"]
    assert sorted(i["file_name"] for i in listed) == ["a.png", "sub/b.png"]
    assert all((i["width"], i["height"]) == (SCENE_W, SCENE_H) for i in listed)
    served = client.get(f"/api/images/{result['ids'][0]}/file").content
    assert served in (scene_png(1), scene_png(2))  # imported in place, served as they are
    predict(client, result["ids"][0], points=[[5, 5, 1]])

    again = client.post("/api/import", json={"path": str(root / "sub")}).json()
    assert (again["added"], again["skipped"]) == (0, 1)


def test_import_paths_outside_the_roots_are_refused(serve, tmp_path):
    root, outside = tmp_path / "photos", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(scene_png(5))
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "secret-link.png").symlink_to(outside / "secret.png")
    (root / "own.png").write_bytes(scene_png(6))
    client = serve(import_roots=(root,))

    for path in (
        f"{root}/..",
        f"{root}/../private",
        str(outside),
        "/etc",
        "../",
        f"{root}/escape",  # a symlink out of the root
        f"{root}/escape/..",
        "~",
    ):
        refused(client.post("/api/import", json={"path": path}), 422, "outside the import folders")
    refused(client.post("/api/import", json={"path": f"{root}/missing"}), 404, "not found")
    refused(client.post("/api/import", json={"path": f"{root}/x\x00y"}), 422, "NUL")
    refused(client.post("/api/import", json={"path": ""}), 422, "path")
    refused(client.post("/api/import", json={"folder": str(root)}), 422, "path")

    # Inside the root, a file that links out of it is not read either.
    result = client.post("/api/import", json={"path": str(root)}).json()
    assert result["added"] == 1
    assert [i["file_name"] for i in client.get("/api/images").json()["images"]] == ["own.png"]

    # Without --import-root only DATA/import is readable.
    default = serve()
    assert default.post("/api/import", json={"path": str(root)}).status_code == 422
    assert_serving(default)


# ---- bad input --------------------------------------------------------------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header (IHDR, CRC fixed) claims width x height pixels: a
    decompression bomb as far as a header-trusting reader can tell."""
    data = bytearray(png_bytes(np.zeros((8, 8, 3), dtype=np.uint8)))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def test_bad_uploads_are_refused(serve, tmp_path):
    client = serve(limits=Limits(upload_bytes=100_000))
    good = scene_png(1)
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    cases = [
        (b"hello, I am not an image", "notes.png", 422, ["not an image"]),
        (good[: len(good) // 2], "half.png", 422, ["truncated"]),
        (b"", "empty.png", 422, ["empty"]),
        (png_claiming(100_000, 100_000), "bomb.png", 413, ["bomb.png", "pixels"]),
        (png_claiming(9_000, 9_000), "big.png", 413, ["9000x9000", "limit"]),
        (os.urandom(150_000), "huge.png", 413, ["over 100,000 bytes"]),
        (gif.getvalue(), "anim.gif", 422, ["GIF", "not accepted"]),
    ]
    for data, name, status, words in cases:
        response = client.post("/api/images", files={"file": (name, data, "image/png")})
        refused(response, status, *words)
    refused(client.post("/api/images", json={"file": "a.png"}), 422, "file")
    refused(client.post("/api/images", content=good, headers={"content-type": "image/png"}), 422)
    refused(client.post("/api/images", files={"upload": ("a.png", good, "image/png")}), 422, "file")
    assert client.get("/api/images").json()["total"] == 0
    assert os.listdir(tmp_path / "data" / "images") == []  # nothing refused was stored
    assert_serving(client)


def test_a_low_pixel_limit_refuses_before_decoding(serve):
    client = serve(limits=Limits(image_pixels=SCENE_H * SCENE_W - 1))
    response = client.post("/api/images", files={"file": ("a.png", scene_png(1), "image/png")})
    refused(response, 413, f"{SCENE_W}x{SCENE_H}", "limit")
    assert upload(client, scene_png(1, 64, 64))["width"] == 64


def test_upload_file_names_never_reach_the_file_system(client, tmp_path):
    before = set(tmp_path.rglob("*"))
    names = ["../../../escape.png", "..\\..\\win.png", "/etc/passwd.png", "a/../../b.png", ".."]
    for seed, name in enumerate(names):
        image = upload(client, scene_png(seed), name)
        shown = client.get(f"/api/images/{image['id']}").json()["file_name"]
        assert "/" not in shown and "\\" not in shown
    data = tmp_path / "data"
    created = set(tmp_path.rglob("*")) - before
    assert all(path.is_relative_to(data) for path in created), created
    stored = sorted(p.name for p in (data / "images").iterdir())
    assert len(stored) == len(names) and all(len(p.split(".")[0]) == 32 for p in stored)
    assert not Path("/etc/passwd.png").exists()


def test_bad_predict_requests_are_refused(client):
    image = upload(client, scene_png(1))
    url = f"/api/images/{image['id']}/predict"
    as_json = {"content-type": "application/json"}
    raw = [
        ('{"points": [[NaN, 1, 1]]}', ["finite"]),
        ('{"points": [[1, Infinity, 1]]}', ["finite"]),
        ('{"points": [[1, 1, 1]], "box": [0, 0, -Infinity, 5]}', ["finite"]),
        ('{"points": [[1, 1, 1]', ["JSON"]),
        ("not json at all", ["JSON"]),
        ("[]", ["body"]),
        ("", ["body"]),
    ]
    for text, words in raw:
        refused(client.post(url, content=text, headers=as_json), 422, *words)
    text_plain = {"content-type": "text/plain"}
    refused(client.post(url, content='{"points": [[1, 1, 1]]}', headers=text_plain), 422, "body")

    bodies = [
        ({"points": [[1, 1, 3]]}, ["label", "1", "0"]),
        ({"points": [[1, 1]]}, ["points"]),
        ({"points": [["a", 1, 1]]}, ["points"]),
        ({"points": [[SCENE_W + 0.5, 1, 1]]}, ["outside", f"{SCENE_W}x{SCENE_H}"]),
        ({"points": [[-1, 1, 1]]}, ["outside"]),
        ({"points": [[1, 1e300, 1]]}, ["outside"]),
        ({"box": [0, 0, SCENE_W + 1, 10]}, ["outside"]),
        ({"box": [10, 10, 5, 5]}, ["x1 >= x0"]),
        ({"box": [1, 2, 3]}, ["box"]),
        ({}, ["at least one point or a box"]),
        ({"points": []}, ["at least one point or a box"]),
        ({"points": [[1, 1, 1]], "multimask": "often"}, ["multimask"]),
        ({"points": [[1, 1, 1]], "polygons": "maybe"}, ["polygons"]),
        ({"points": [[1, 1, 1]], "clicks": 3}, ["clicks"]),
        ({"points": [[1, 1, 1]] * 100_000}, ["100000 points", "at most"]),
    ]
    for body, words in bodies:
        refused(client.post(url, json=body), 422, *words)
    refused(client.post("/api/images/nope/predict", json={"points": [[1, 1, 1]]}), 404, "nope")
    assert_serving(client)


def test_unknown_ids_are_404(client):
    image = upload(client, scene_png(1))
    ann = {"rle": rect_rle(0, 2, 0, 2)}
    calls = [
        ("GET", "/api/images/missing", None),
        ("GET", "/api/images/missing/file", None),
        ("PATCH", "/api/images/missing", {"reviewed": True}),
        ("DELETE", "/api/images/missing", None),
        ("POST", "/api/images/missing/predict", {"points": [[1, 1, 1]]}),
        ("POST", "/api/images/missing/auto", None),
        ("GET", "/api/images/missing/annotations", None),
        ("POST", "/api/images/missing/annotations", ann),
        ("PATCH", f"/api/images/{image['id']}/annotations/12345", {"accepted": False}),
        ("DELETE", f"/api/images/{image['id']}/annotations/12345", None),
        ("PATCH", "/api/categories/12345", {"name": "x"}),
        ("DELETE", "/api/categories/12345", None),
    ]
    for method, path, body in calls:
        response = client.request(method, path, json=body)
        refused(response, 404, "12345" if "12345" in path else "missing")
    refused(client.get("/api/nothing-here"), 404)
    # Ids of the wrong type are validation errors, not server errors.
    refused(client.delete(f"/api/images/{image['id']}/annotations/abc"), 422, "annotation_id")
    refused(client.delete("/api/categories/abc"), 422, "category_id")
    assert_serving(client)


# ---- access -----------------------------------------------------------------------------------


def test_a_token_guards_every_api_route(serve):
    client = serve(token="s3cret")
    assert client.get("/health").status_code == 200  # open: for load balancers and scripts
    # Every operation the OpenAPI schema lists under /api, with or without a body.
    operations = [
        (method.upper(), path)
        for path, methods in client.app.openapi()["paths"].items()
        if path.startswith("/api/")
        for method in methods
    ]
    assert len(operations) >= 19
    ids = {"image_id": "abc", "annotation_id": "1", "category_id": "1", "job_id": "1"}
    ids |= {"sequence_id": "abc", "frame": "0", "object_id": "1"}
    wrong = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
             {"Authorization": "Basic s3cret"}, {"Authorization": "Bearer s3cret2"}]  # fmt: skip
    for method, path in operations:
        for headers in wrong:
            response = client.request(method, path.format(**ids), headers=headers, json={})
            refused(response, 401, "token")
            assert response.headers["www-authenticate"] == "Bearer"
    good = {"Authorization": "Bearer s3cret"}
    assert client.get("/api/images", headers=good).json()["total"] == 0
    data = scene_png(1)
    created = client.post("/api/images", files={"file": ("a.png", data, "image/png")}, headers=good)
    assert created.status_code == 201
    assert client.get("/api/images", headers=good).json()["total"] == 1


def test_listening_beyond_loopback_needs_a_token(tmp_path):
    with pytest.raises(ConfigError, match="token"):
        ServerSettings(data_dir=tmp_path, host="0.0.0.0")
    with pytest.raises(ConfigError, match="token"):
        ServerSettings(data_dir=tmp_path, host="192.168.1.5", token="")
    assert ServerSettings(data_dir=tmp_path, host="0.0.0.0", token="s3cret").token == "s3cret"


def test_serve_beyond_loopback_without_a_token_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SEGANY_TOKEN", raising=False)
    argv = ["serve", "--host", "0.0.0.0", "--data", str(tmp_path / "data"), "--port", "1"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--token" in error and "0.0.0.0" in error
