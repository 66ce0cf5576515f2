"""The annotator's sequences (videos and volumes) through the HTTP API, on SQLite and on a real
PostgreSQL: upload and import, frames served as images, bounds refused before decoding, objects,
the guards every upload passes, export (DAVIS PNGs read back with PIL, YouTube-VIS's layout,
COCO per frame through pycocotools). Prompting and propagation: test_sequence_tracking.py."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from postgres import postgres_server  # noqa: F401  (fixture)
from segany.server import sequence_sessions
from segany.server.settings import Limits
from sequence_helpers import (
    FRAMES,
    HEIGHT,
    WIDTH,
    StampTracker,
    decode,
    mp4_bytes,
    square_frames,
    upload_video,
    wait_job,
)
from server_helpers import LOCAL_URL, png_bytes

ITEM_KEYS = {
    "id", "name", "kind", "frame_count", "width", "height", "fps", "axis", "objects", "job",
}  # fmt: skip


@pytest.fixture
def client(serve, monkeypatch):
    monkeypatch.setattr(sequence_sessions, "default_tracker_factory", lambda m: StampTracker())
    return serve()


def refused(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    for word in words:
        assert word.lower() in detail.lower(), f"{word!r} not in {detail!r}"
    return detail


def test_upload_list_frames_and_delete(client, tmp_path):
    frames = square_frames()
    item = upload_video(client, frames)
    assert set(item) == ITEM_KEYS
    assert (item["kind"], item["frame_count"], item["width"], item["height"]) == (
        "video",
        FRAMES,
        WIDTH,
        HEIGHT,
    )
    assert item["objects"] == 0 and item["job"] is None and item["fps"] == pytest.approx(10)
    again = client.post("/api/sequences", files={"file": ("b.mp4", mp4_bytes(frames))})
    assert (again.status_code, again.json()["id"]) == (200, item["id"])  # stored once
    assert [s["id"] for s in client.get("/api/sequences").json()["sequences"]] == [item["id"]]

    base = f"/api/sequences/{item['id']}"
    jpeg = client.get(f"{base}/frames/3")
    assert jpeg.headers["content-type"] == "image/jpeg"
    picture = np.asarray(Image.open(io.BytesIO(jpeg.content)).convert("RGB"))
    assert picture.shape == (HEIGHT, WIDTH, 3)
    distance = [np.abs(picture.astype(int) - frame).mean() for frame in frames]
    assert int(np.argmin(distance)) == 3 and distance[3] < 4  # the frame, not another
    png = client.get(f"{base}/frames/{FRAMES - 1}", params={"format": "png"})
    assert Image.open(io.BytesIO(png.content)).format == "PNG"
    refused(client.get(f"{base}/frames/{FRAMES}"), 422, "past the end", str(FRAMES))
    refused(client.get(f"{base}/frames/{FRAMES}/masks"), 422, "past the end")
    empty = {"frame": 0, "masks": [], "prompts": []}
    assert client.get(f"{base}/frames/0/masks").json() == empty
    refused(client.get("/api/sequences/nope"), 404, "nope")

    stored = list((tmp_path / "data" / "sequences").iterdir())
    assert len(stored) == 1
    assert client.delete(base).status_code == 204
    refused(client.get(base), 404)
    assert not stored[0].exists()  # the uploaded file went with it


def test_bad_files_are_refused_with_what_is_wrong(serve, tmp_path):
    client = serve(limits=Limits(upload_bytes=200_000, sequence_frames=6))
    corrupt = client.post("/api/sequences", files={"file": ("bad.mp4", b"\x00" * 5000)})
    refused(corrupt, 422, "bad.mp4")
    refused(client.post("/api/sequences", files={"file": ("notes.txt", b"hi")}), 422, "video")
    long = client.post("/api/sequences", files={"file": ("long.mp4", mp4_bytes(square_frames(8)))})
    refused(long, 413, "8 frames", "limit")
    huge = client.post("/api/sequences", files={"file": ("huge.mp4", b"\x00" * 300_000)})
    refused(huge, 413, "200,000")  # the body-size guard, as for images
    zipped = client.post("/api/sequences", files={"file": ("frames.zip", b"PK\x03\x04 broken")})
    refused(zipped, 422, "zip")
    assert client.get("/api/sequences").json() == {"sequences": []}
    assert "sequences/" not in corrupt.json()["detail"]  # no server path in the answer
    assert not [p for p in (tmp_path / "data" / "sequences").iterdir()]  # none kept


def test_frame_size_is_bounded_before_decoding(serve):
    client = serve(limits=Limits(sequence_frame_pixels=100 * 100))
    response = client.post("/api/sequences", files={"file": ("a.mp4", mp4_bytes(square_frames(2)))})
    refused(response, 413, "160 x 120", "10,000 pixels")


def test_import_a_folder_of_frames_and_only_under_the_roots(client, tmp_path):
    folder = tmp_path / "data" / "import" / "shots"
    folder.mkdir(parents=True)
    frames = square_frames(4)
    for index, frame in enumerate(frames):
        (folder / f"shot_{index + 1}.png").write_bytes(png_bytes(frame))
    response = client.post("/api/sequences/import", json={"path": str(folder)})
    assert response.status_code == 201, response.text
    item = response.json()
    assert (item["frame_count"], item["name"]) == (4, "shots")
    served = client.get(f"/api/sequences/{item['id']}/frames/2", params={"format": "png"})
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(served.content))), frames[2])
    outside = client.post("/api/sequences/import", json={"path": str(tmp_path)})
    refused(outside, 422, "outside the import folders")
    missing = client.post("/api/sequences/import", json={"path": str(folder / "none")})
    refused(missing, 404, "nothing to import")


def test_objects_ids_names_and_categories(client):
    sequence_id = upload_video(client)["id"]
    base = f"/api/sequences/{sequence_id}/objects"
    category = client.post("/api/categories", json={"name": "car"}).json()
    first = client.post(base, json={"name": "red car", "category_id": category["id"]})
    assert first.status_code == 201
    assert first.json() == {"object_id": 1, "name": "red car", "category_id": category["id"]}
    assert client.post(base, json={}).json()["object_id"] == 2  # the lowest free id
    assert client.post(base, json={"object_id": 255}).status_code == 201
    refused(client.post(base, json={"object_id": 2}), 409, "already has an object 2")
    refused(client.post(base, json={"object_id": 0}), 422, "object_id")
    refused(client.post(base, json={"object_id": 256}), 422, "object_id")
    refused(client.post(base, json={"category_id": 999}), 404, "999")
    patched = client.patch(f"{base}/2", json={"name": "bike", "category_id": category["id"]})
    assert patched.json() == {"object_id": 2, "name": "bike", "category_id": category["id"]}
    assert client.patch(f"{base}/2", json={"category_id": None}).json()["category_id"] is None
    refused(client.patch(f"{base}/7", json={"name": "x"}), 404, "no object 7")
    assert client.delete(f"{base}/255").status_code == 204
    assert [o["object_id"] for o in client.get(base).json()] == [1, 2]
    assert client.get(f"/api/sequences/{sequence_id}").json()["objects"] == 2


def test_uploads_pass_the_same_guards_as_images(serve):
    client = serve(token="s3cret")
    data = mp4_bytes(square_frames(2))
    refused(client.post("/api/sequences", files={"file": ("a.mp4", data)}), 401, "token")
    good = {"Authorization": "Bearer s3cret"}
    foreign = client.post(
        "/api/sequences", files={"file": ("a.mp4", data)}, headers={**good, "Host": "evil.test"}
    )
    refused(foreign, 400, "evil.test")
    cross = client.post(
        "/api/sequences",
        files={"file": ("a.mp4", data)},
        headers={**good, "Origin": "http://evil.test"},
    )
    refused(cross, 403, "cross-origin")
    assert client.get("/api/sequences", headers=good).json() == {"sequences": []}
    own = client.post(
        "/api/sequences", files={"file": ("a.mp4", data)}, headers={**good, "Origin": LOCAL_URL}
    )
    assert own.status_code == 201


def _tracked(client) -> tuple[str, dict]:
    """A video with two objects prompted on frame 0 and propagated: (id, its timeline)."""
    sequence_id = upload_video(client)["id"]
    base = f"/api/sequences/{sequence_id}"
    car = client.post("/api/categories", json={"name": "square"}).json()["id"]
    client.post(f"{base}/objects", json={"object_id": 1, "category_id": car})
    for object_id, point in ((1, [35, 55, 1]), (2, [120, 100, 1])):
        answer = client.post(
            f"{base}/prompt", json={"frame": 0, "object_id": object_id, "points": [point]}
        )
        assert answer.status_code == 200, answer.text
    job = client.post(f"{base}/propagate", json={}).json()
    assert wait_job(client, job["id"])["state"] == "done"
    return sequence_id, client.get(f"{base}/timeline").json()


def test_export_davis_ytvis_and_coco(client, tmp_path):
    sequence_id, timeline = _tracked(client)
    assert [o["ranges"] for o in timeline["objects"]] == [[[0, FRAMES - 1]]] * 2
    base = f"/api/sequences/{sequence_id}"
    masks = {}  # frame -> object id -> (H, W) bool, as the API serves them
    for frame in range(FRAMES):
        stored = client.get(f"{base}/frames/{frame}/masks").json()["masks"]
        masks[frame] = {m["object_id"]: decode(m["rle"]) for m in stored}

    davis = client.get(f"{base}/export", params={"format": "davis"})
    assert davis.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(davis.content)) as zipped:
        names = sorted(zipped.namelist())
        assert names == [f"{i:05d}.png" for i in range(FRAMES)]
        for frame, name in enumerate(names):
            picture = Image.open(io.BytesIO(zipped.read(name)))
            assert picture.mode == "P" and picture.size == (WIDTH, HEIGHT)
            labels = np.asarray(picture)
            expected = np.zeros((HEIGHT, WIDTH), np.uint8)
            for object_id in sorted(masks[frame]):
                expected[masks[frame][object_id]] = object_id
            assert np.array_equal(labels, expected)
            assert set(np.unique(labels)) == {0, 1, 2}

    ytvis = client.get(f"{base}/export", params={"format": "ytvis"}).json()
    assert ytvis["videos"][0]["length"] == FRAMES
    assert len(ytvis["videos"][0]["file_names"]) == FRAMES
    by_object = {a["object_id"]: a for a in ytvis["annotations"]}
    assert sorted(by_object) == [1, 2]
    names = {c["id"]: c["name"] for c in ytvis["categories"]}
    assert names[by_object[1]["category_id"]] == "square"  # the project's category
    assert names[by_object[2]["category_id"]] == "object"  # uncategorised
    for object_id, annotation in by_object.items():
        assert len(annotation["segmentations"]) == FRAMES
        for frame, rle in enumerate(annotation["segmentations"]):
            assert np.array_equal(decode(rle), masks[frame][object_id])

    coco_file = tmp_path / "coco.json"
    coco_file.write_bytes(client.get(f"{base}/export", params={"format": "coco"}).content)
    coco = COCO(str(coco_file))
    assert len(coco.getImgIds()) == FRAMES
    assert len(coco.getAnnIds()) == 2 * FRAMES
    for annotation in coco.loadAnns(coco.getAnnIds(imgIds=[4])):  # frame 3
        mask = coco.annToMask(annotation).astype(bool)
        assert np.array_equal(mask, masks[3][annotation["object_id"]])
    json.loads(coco_file.read_text())  # one well-formed document
    refused(client.get(f"{base}/export", params={"format": "gif"}), 422, "format")


def nifti_bytes(tmp_path) -> tuple[bytes, np.ndarray]:
    """A (64, 48, 6) int16 NIfTI volume (a bright box through slices 1-4) and its affine."""
    import nibabel

    voxels = np.full((64, 48, 6), 100, dtype=np.int16)
    voxels[20:40, 10:30, 1:5] = 900
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = (-10.0, 5.0, 30.0)
    path = tmp_path / "scan.nii.gz"
    nibabel.save(nibabel.Nifti1Image(voxels, affine), str(path))
    return path.read_bytes(), affine


def test_a_volume_slices_prompts_and_exports_its_label_volume(client, tmp_path):
    import nibabel

    data, affine = nifti_bytes(tmp_path)
    response = client.post("/api/sequences", files={"file": ("scan.nii.gz", data)})
    assert response.status_code == 201, response.text
    item = response.json()
    assert (item["kind"], item["frame_count"], item["axis"]) == ("volume", 6, 2)
    assert {item["width"], item["height"]} == {64, 48}
    base = f"/api/sequences/{item['id']}"
    served = client.get(f"{base}/frames/2")
    assert served.headers["content-type"] == "image/png"  # lossless for volumes
    slice_ = np.asarray(Image.open(io.BytesIO(served.content)))
    assert slice_.shape[:2] == (item["height"], item["width"])
    box = [0, 0, item["width"] // 2, item["height"] // 2]
    client.post(f"{base}/prompt", json={"frame": 2, "object_id": 4, "box": box})
    job = client.post(f"{base}/propagate", json={"max_frames": 2}).json()
    assert wait_job(client, job["id"])["state"] == "done"

    exported = client.get(f"{base}/export", params={"format": "volume"})
    assert exported.status_code == 200, exported.text
    folder = tmp_path / "labels"
    with zipfile.ZipFile(io.BytesIO(exported.content)) as zipped:
        (name,) = zipped.namelist()
        assert name.endswith(".nii.gz")
        zipped.extractall(folder)
    labels = nibabel.load(str(folder / name))
    assert labels.shape == (64, 48, 6)
    assert np.allclose(labels.affine, affine)  # the input's geometry
    values = np.asarray(labels.dataobj)
    assert set(np.unique(values)) == {0, 4}
    assert sorted(np.nonzero(values.any(axis=(0, 1)))[0].tolist()) == [2, 3]  # tracked slices
    along_x = client.post("/api/sequences", files={"file": ("x.nii.gz", data)}, data={"axis": "0"})
    assert along_x.status_code == 201, along_x.text  # another axis: another sequence
    assert (along_x.json()["frame_count"], along_x.json()["axis"]) == (64, 0)
    assert client.delete(base).status_code == 204
    still = client.get(f"/api/sequences/{along_x.json()['id']}/frames/10")
    assert still.status_code == 200  # its file stays while another sequence reads it
    video = upload_video(client)["id"]
    refused(client.get(f"/api/sequences/{video}/export", params={"format": "volume"}), 422, "video")


def test_a_zip_of_frames_is_a_sequence(client):
    frames = square_frames(3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for index, frame in enumerate(frames):
            zipped.writestr(f"shots/f{index}.png", png_bytes(frame))
        zipped.writestr("__MACOSX/shots/._f0.png", b"junk")
    response = client.post("/api/sequences", files={"file": ("shots.zip", buffer.getvalue())})
    assert response.status_code == 201, response.text
    assert response.json()["frame_count"] == 3
    base = f"/api/sequences/{response.json()['id']}"
    served = client.get(f"{base}/frames/1", params={"format": "png"})
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(served.content))), frames[1])
    davis = client.get(f"{base}/export", params={"format": "davis"})
    with zipfile.ZipFile(io.BytesIO(davis.content)) as zipped:
        assert sorted(zipped.namelist()) == ["f0.png", "f1.png", "f2.png"]  # the frames' stems
