"""The project's integrity under races and outside changes, on SQLite and PostgreSQL: one image
per file content (a unique index; the migration merges the duplicates older projects hold),
upload as insert-or-get, a delete that cannot orphan a concurrent upload of the same bytes,
imported files re-checked on use (re-hashed when edited in place, their annotations flagged
when the picture changed size; 410 naming the image when the file is gone)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from postgres import postgres_server  # noqa: F401  (fixture)
from segany.errors import ConflictError
from segany.project.config import ProjectConfig
from segany.project.storage import repository
from segany.project.storage.database import create_database
from segany.project.storage.migrate import upgrade
from segany.project.workspace import Project
from server_helpers import scene_png

SHA = "ab" * 32


@pytest.fixture
def project(db_url, tmp_path):
    """The project of the test's data dir and database (as `serve`'s app opens it)."""
    project = Project.open(ProjectConfig(tmp_path / "data", db_url))
    yield project
    project.close()


# ---- the unique content hash ------------------------------------------------------------------


def test_the_migration_merges_duplicate_images_into_the_first(db_url, tmp_path):
    database = create_database(db_url or f"sqlite:///{tmp_path / 'project.db'}")
    upgrade(database, "0001")  # a project made before the hash was unique
    images = sa.table(
        "images",
        *(sa.column(c) for c in ("id", "file_name", "stored_path", "sha256", "width", "height")),
        *(sa.column(c) for c in ("created_at", "reviewed", "position")),
    )
    annotation_columns = ["image_id", "rle_counts", "height", "width", "area", "bbox_x"]
    annotation_columns += ["bbox_y", "bbox_w", "bbox_h", "source", "accepted", "author"]
    annotation_columns += ["created_at", "updated_at"]
    annotations = sa.table("annotations", *(sa.column(c) for c in annotation_columns))
    now = sa.func.current_timestamp()
    with database.engine.begin() as connection:
        for image_id, sha, reviewed in [
            ("second", SHA, True),
            ("first", SHA, False),
            ("other", "cd" * 32, False),
        ]:
            connection.execute(
                images.insert().values(
                    id=image_id, file_name=f"{image_id}.png", stored_path=f"/x/{image_id}.png",
                    sha256=sha, width=4, height=3, created_at=now, reviewed=reviewed,
                    position={"first": 0, "second": 1, "other": 2}[image_id],
                )
            )  # fmt: skip
        for image_id in ("first", "second", "second", "other"):
            connection.execute(
                annotations.insert().values(
                    image_id=image_id, rle_counts="c", height=3, width=4, area=0, bbox_x=0,
                    bbox_y=0, bbox_w=0, bbox_h=0, source="manual", accepted=True, author="",
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
    upgrade(database)
    with database.session() as session:
        kept = repository.all_images(session)
        assert [image.id for image in kept] == ["first", "other"]
        assert kept[0].reviewed  # one of the merged images was reviewed
        assert len(repository.list_annotations(session, "first")) == 3
        assert len(repository.list_annotations(session, "other")) == 1
        with pytest.raises(ConflictError):  # the index refuses a second image of one content
            repository.add_image(
                session, file_name="again.png", stored_path="/x/again.png", sha256=SHA,
                width=4, height=3,
            )  # fmt: skip
        again = repository.NewImage("again.png", "/x/again.png", SHA.upper(), 4, 3)
        image, created = repository.add_image_or_get(session, again)
        assert (image.id, created) == ("first", False)
    database.dispose()


def test_identical_uploads_at_once_make_one_image(project):
    data = scene_png(3)
    results: list = []
    barrier = threading.Barrier(4)

    def upload() -> None:
        barrier.wait()
        results.append(project.add_upload(data, "same.png"))

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({image.id for image, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len(project.stored_images()) == 1


def test_a_delete_never_orphans_an_upload_of_the_same_bytes(project, monkeypatch):
    """The upload starts just after the delete committed, before it removed the file: the
    upload must not find the file in place, point a new row at it, and lose it to the
    delete's unlink (it waits for the delete, then writes the file again)."""
    data = scene_png(4)
    image, _ = project.add_upload(data, "a.png")
    delete_row = repository.delete_image
    uploaded: list = []

    def delete_then_race(session, image_id):
        row = delete_row(session, image_id)  # committed
        racer = threading.Thread(target=lambda: uploaded.append(project.add_upload(data, "b.png")))
        racer.start()
        racer.join(timeout=1.0)  # without the files lock it finishes here, before the unlink
        delete_then_race.racer = racer
        return row

    monkeypatch.setattr(repository, "delete_image", delete_then_race)
    project.delete_image(image.id)
    delete_then_race.racer.join()
    ((again, created),) = uploaded
    assert created and again.id != image.id
    assert Path(again.stored_path).read_bytes() == data


# ---- imported files changed outside segany ---------------------------------------------------


def _import(client: TestClient, root: Path) -> str:
    result = client.post("/api/import", json={"path": str(root)}).json()
    assert result["added"] == 1, result
    return result["ids"][0]


def _touch_later(path: Path) -> None:
    """Make sure the file's mtime moves even on a coarse-clock file system."""
    stamp = time.time_ns() + 2_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_an_imported_file_edited_in_place_is_rehashed(serve, tmp_path):
    root = tmp_path / "import"
    root.mkdir()
    picture = root / "p.png"
    picture.write_bytes(scene_png(5, height=96, width=128))
    client = serve(import_roots=(root,))
    image_id = _import(client, root)
    first = client.post(f"/api/images/{image_id}/predict", json={"points": [[60, 40, 1]]})
    assert first.status_code == 200 and not first.json()["cached"]
    mask = first.json()["masks"][0]["rle"]
    added = client.post(f"/api/images/{image_id}/annotations", json={"rle": mask})
    assert added.status_code == 201 and added.json()["stale"] is False

    edited = scene_png(6, height=64, width=80)  # another picture, another size
    picture.write_bytes(edited)
    _touch_later(picture)
    served = client.get(f"/api/images/{image_id}/file")
    assert served.status_code == 200 and served.content == edited
    item = client.get(f"/api/images/{image_id}").json()
    assert (item["width"], item["height"]) == (80, 64)
    (annotation,) = client.get(f"/api/images/{image_id}/annotations").json()
    assert annotation["stale"] is True  # drawn on the old picture
    # The new content has its own embedding: not the old one served under the old hash.
    again = client.post(f"/api/images/{image_id}/predict", json={"points": [[40, 30, 1]]})
    assert again.status_code == 200, again.text
    assert not again.json()["cached"]
    assert again.json()["masks"][0]["rle"]["size"] == [64, 80]
    # A new mask for the new picture clears the flag.
    redrawn = again.json()["masks"][0]["rle"]
    patched = client.patch(
        f"/api/images/{image_id}/annotations/{annotation['id']}", json={"rle": redrawn}
    )
    assert patched.status_code == 200 and patched.json()["stale"] is False


def test_a_moved_imported_file_is_410_naming_the_image(serve, tmp_path):
    root = tmp_path / "import"
    root.mkdir()
    (root / "gone.png").write_bytes(scene_png(7))
    client = serve(import_roots=(root,))
    image_id = _import(client, root)
    (root / "gone.png").rename(tmp_path / "elsewhere.png")
    for response in (
        client.get(f"/api/images/{image_id}/file"),
        client.post(f"/api/images/{image_id}/predict", json={"points": [[10, 10, 1]]}),
    ):
        assert response.status_code == 410, response.text
        assert image_id in response.json()["detail"] and "moved" in response.json()["detail"]
    upload = client.post("/api/images", files={"file": ("x.png", scene_png(8), "image/png")})
    assert upload.status_code == 201  # the rest keeps working
    listed = client.get("/api/images").json()
    assert listed["total"] == 2
