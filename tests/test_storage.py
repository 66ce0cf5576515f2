"""The annotation server's storage, on SQLite and on a real PostgreSQL server: migrations (twice,
from two processes at once, and against the models), repository round trips, typed errors, and
that an acknowledged write survives its process being killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pycocotools import mask as mask_utils
from sqlalchemy import CheckConstraint, func, inspect, select

from postgres import postgres_server  # noqa: F401  (fixture)
from segany.errors import ConfigError, ConflictError, InvalidValueError, NotFoundError
from segany.project.storage import (
    Annotation,
    Base,
    Database,
    create_database,
    current_revision,
    downgrade,
    head_revision,
    normalize_url,
    sqlite_url,
    upgrade,
)
from segany.project.storage import repository as repo
from segany.project.storage.rle import check_rle, parse_counts

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"images", "categories", "annotations"}
H, W = 6, 8  # the test images' (EXIF-applied) frame


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """An empty database of each backend, its own per test."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "data" / "segany.db")
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def db(database_url) -> Database:
    """The database migrated to head."""
    upgrade(database_url)
    database = create_database(database_url)
    yield database
    database.dispose()


def box_rle(y0: int, y1: int, x0: int, x1: int, height: int = H, width: int = W) -> dict:
    """COCO compressed RLE of a filled rectangle (rows y0:y1, columns x0:x1)."""
    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    mask[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(mask)
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def add_test_image(session, name: str = "a.png", **kwargs):
    sha = kwargs.pop("sha256", f"{abs(hash(name)):064x}"[-64:])
    return repo.add_image(
        session,
        file_name=name,
        stored_path=f"/data/{name}",
        sha256=sha,
        width=W,
        height=H,
        **kwargs,
    )


def run_python(code: str, *args: str, **popen) -> subprocess.Popen:
    """A Python subprocess on this checkout's sources, one thread (the CI has 2 cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, text=True, **popen
    )


# ---- migrations -------------------------------------------------------------------------------


def test_upgrade_on_an_empty_database_twice(database_url):
    assert current_revision(database_url) is None
    upgrade(database_url)
    upgrade(database_url)  # a restart: nothing left to do
    assert current_revision(database_url) == head_revision()
    database = create_database(database_url)
    try:
        assert TABLES <= set(inspect(database.engine).get_table_names())
    finally:
        database.dispose()


def test_downgrade_to_base_and_up_again(database_url):
    upgrade(database_url)
    downgrade(database_url, "base")
    database = create_database(database_url)
    try:
        assert not TABLES & set(inspect(database.engine).get_table_names())
    finally:
        database.dispose()
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()


def test_a_migration_that_fails_midway_leaves_no_schema(database_url, monkeypatch):
    real_upgrade = command.upgrade

    def upgrade_then_crash(config, revision):
        real_upgrade(config, revision)  # every table created, the version stamped...
        raise KeyboardInterrupt  # ...and the process stopped before the commit

    monkeypatch.setattr(command, "upgrade", upgrade_then_crash)
    with pytest.raises(KeyboardInterrupt):
        upgrade(database_url)
    assert current_revision(database_url) is None
    database = create_database(database_url)
    try:
        assert not TABLES & set(inspect(database.engine).get_table_names())
    finally:
        database.dispose()
    monkeypatch.undo()
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()


def test_two_processes_migrate_at_once(database_url, tmp_path):
    go = tmp_path / "go"
    code = """
        import sys, time
        from pathlib import Path
        from segany.project.storage import upgrade
        print("ready", flush=True)
        while not Path(sys.argv[2]).exists():
            time.sleep(0.01)
        upgrade(sys.argv[1])
        print("migrated", flush=True)
    """
    workers = [run_python(code, database_url, str(go), stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for worker in workers:  # both imported everything: start them together
            assert worker.stdout.readline().strip() == "ready"
        go.touch()
        results = [worker.communicate(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0]
    assert all(out.strip() == "migrated" for out, _ in results)
    assert current_revision(database_url) == head_revision()


def test_migrations_match_the_models(db):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    # Autogenerate compares neither ON DELETE actions nor CHECK constraints: compare them here.
    inspector = inspect(db.engine)
    for name, table in Base.metadata.tables.items():
        reflected = {
            (tuple(fk["constrained_columns"]), fk["referred_table"], fk["options"].get("ondelete"))
            for fk in inspector.get_foreign_keys(name)
        }
        declared = {
            ((fk.parent.name,), fk.column.table.name, fk.ondelete) for fk in table.foreign_keys
        }
        assert reflected == declared, name
        checks = {ck["name"] for ck in inspector.get_check_constraints(name)}
        assert checks == {c.name for c in table.constraints if isinstance(c, CheckConstraint)}


def test_sqlite_connections_use_wal_full_sync_and_foreign_keys(tmp_path):
    database = create_database(sqlite_url(tmp_path / "segany.db"))
    try:
        with database.engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() > 0
    finally:
        database.dispose()


def test_urls_are_normalised_to_psycopg_and_others_refused():
    assert normalize_url("postgresql://u@h:5/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:////tmp/x.db").drivername == "sqlite"
    with pytest.raises(ConfigError, match="not supported"):
        normalize_url("mysql://u@h/d")
    with pytest.raises(ConfigError, match="cannot parse"):
        normalize_url("not a url")


# ---- images -----------------------------------------------------------------------------------


def test_image_round_trip_find_and_delete(db):
    with db.session() as session:
        image = add_test_image(session, sha256="AB" * 32)
        image_id = image.id
    assert len(image_id) == 12 and image.created_at.tzinfo is not None
    with db.session() as session:  # a new session reads what the first committed
        stored = repo.get_image(session, image_id)
        assert (stored.file_name, stored.stored_path, stored.sha256) == (
            "a.png",
            "/data/a.png",
            "ab" * 32,
        )
        assert (stored.width, stored.height, stored.reviewed) == (W, H, False)
        assert repo.find_image_by_sha256(session, "AB" * 32).id == image_id
        assert repo.find_image_by_sha256(session, "cd" * 32) is None
        assert repo.update_image(session, image_id, reviewed=True).reviewed
        assert repo.delete_image(session, image_id).stored_path == "/data/a.png"
    with db.session() as session:
        with pytest.raises(NotFoundError, match=image_id):
            repo.get_image(session, image_id)
        for call in (repo.delete_image, repo.list_annotations):
            with pytest.raises(NotFoundError):
                call(session, image_id)


def test_images_refuse_bad_values(db):
    with db.session() as session:
        with pytest.raises(InvalidValueError, match="sha256"):
            add_test_image(session, sha256="xyz")
        with pytest.raises(InvalidValueError, match="positive"):
            repo.add_image(
                session, file_name="a", stored_path="/a", sha256="0" * 64, width=0, height=3
            )
        assert repo.list_images(session).total == 0


def test_image_pages_counts_and_order(db):
    with db.session() as session:
        ids = [add_test_image(session, f"{i}.png").id for i in range(5)]
        repo.add_annotation(session, ids[1], box_rle(0, 2, 0, 2))
        repo.add_annotation(session, ids[1], box_rle(2, 4, 2, 4), source="auto", accepted=False)
        repo.add_annotation(session, ids[3], box_rle(0, 1, 0, 1))
        repo.update_image(session, ids[2], reviewed=True)
        repo.update_image(session, ids[4], position=-1)  # moved to the front
    with db.session() as session:
        page = repo.list_images(session, offset=0, limit=3)
        assert page.total == 5
        assert [s.image.id for s in page.items] == [ids[4], ids[0], ids[1]]
        assert [(s.annotation_count, s.accepted_count) for s in page.items] == [
            (0, 0),
            (0, 0),
            (2, 1),
        ]
        rest = repo.list_images(session, offset=3, limit=3)
        assert [s.image.id for s in rest.items] == [ids[2], ids[3]]
        assert [s.annotation_count for s in rest.items] == [0, 1]
        assert [s.image.reviewed for s in rest.items] == [True, False]
        unreviewed = repo.list_images(session, reviewed=False)
        assert unreviewed.total == 4 and ids[2] not in [s.image.id for s in unreviewed.items]
        assert [i.id for i in repo.all_images(session)] == [ids[4], *ids[:4]]
        assert [i.id for i in repo.next_images(session, ids[0], limit=2)] == [ids[1], ids[3]]
        assert [i.id for i in repo.next_images(session, limit=1)] == [ids[4]]
        for offset, limit in ((-1, 10), (0, 0), (0, repo.MAX_PAGE_SIZE + 1)):
            with pytest.raises(InvalidValueError):
                repo.list_images(session, offset=offset, limit=limit)


# ---- categories -------------------------------------------------------------------------------


def test_category_round_trip_and_conflicts(db):
    with db.session() as session:
        cat = repo.add_category(session, " cat ", "#FF8800")
        dog = repo.add_category(session, "dog")
        assert (cat.name, cat.color, dog.color) == ("cat", "#ff8800", None)
        with pytest.raises(ConflictError, match="cat"):
            repo.add_category(session, "cat")
        with pytest.raises(ConflictError, match="cat"):
            repo.update_category(session, dog.id, name="cat")
        repo.update_category(session, dog.id, name="hound", color="#000000")
        repo.update_category(session, cat.id, color=None)
        with pytest.raises(InvalidValueError):
            repo.add_category(session, "  ")
        with pytest.raises(InvalidValueError):
            repo.add_category(session, "bird", "red")
    with db.session() as session:
        assert [(c.name, c.color) for c in repo.list_categories(session)] == [
            ("cat", None),
            ("hound", "#000000"),
        ]
        repo.delete_category(session, cat.id)
        for call in (repo.get_category, repo.delete_category):
            with pytest.raises(NotFoundError):
                call(session, cat.id)
        with pytest.raises(NotFoundError):
            repo.update_category(session, 999, name="x")


def test_deleting_a_category_keeps_its_annotations_uncategorised(db):
    with db.session() as session:
        image = add_test_image(session)
        cat = repo.add_category(session, "cat")
        annotation = repo.add_annotation(session, image.id, box_rle(0, 2, 0, 2), category_id=cat.id)
        repo.delete_category(session, cat.id)
        assert annotation.category_id is None  # this session's copy agrees with the database
    with db.session() as session:
        assert repo.get_annotation(session, annotation.id).category_id is None


# ---- annotations ------------------------------------------------------------------------------


def test_annotation_round_trip(db):
    with db.session() as session:
        image = add_test_image(session)
        cat = repo.add_category(session, "cat")
        first = repo.add_annotation(
            session, image.id, box_rle(1, 3, 2, 5), score=0.75, source="semi-auto",
            accepted=False, author="ann",
        )  # fmt: skip
        repo.add_annotations(
            session,
            image.id,
            [repo.NewAnnotation(box_rle(0, 1, 0, 8), source="auto", accepted=False)] * 2,
        )
    with db.session() as session:
        stored = repo.get_annotation(session, first.id)
        assert stored.rle == box_rle(1, 3, 2, 5)
        assert (stored.area, stored.bbox) == (6, (2.0, 1.0, 3.0, 2.0))
        assert (stored.score, stored.source, stored.accepted, stored.author) == (
            0.75,
            "semi-auto",
            False,
            "ann",
        )
        assert stored.category_id is None and stored.created_at.tzinfo is not None
        assert [a.area for a in repo.list_annotations(session, image.id)] == [6, 8, 8]

        time.sleep(0.01)  # updated_at must move on a clock of coarse resolution
        updated = repo.update_annotation(
            session, first.id, category_id=cat.id, accepted=True, rle=box_rle(0, 6, 0, 1)
        )
        assert (updated.area, updated.bbox) == (6, (0.0, 0.0, 1.0, 6.0))
        assert updated.updated_at > stored.created_at
    with db.session() as session:
        stored = repo.get_annotation(session, first.id)
        assert (stored.category_id, stored.accepted, stored.area) == (cat.id, True, 6)
        repo.update_annotation(session, first.id, category_id=None)
        assert repo.get_annotation(session, first.id).category_id is None
        repo.delete_annotation(session, first.id)
        with pytest.raises(NotFoundError):
            repo.get_annotation(session, first.id)
        with pytest.raises(NotFoundError):
            repo.delete_annotation(session, first.id)
        assert len(repo.list_annotations(session, image.id)) == 2


def test_annotations_refuse_unknown_ids_and_bad_masks(db):
    with db.session() as session:
        image = add_test_image(session)
        annotation = repo.add_annotation(session, image.id, box_rle(0, 1, 0, 1))
        with pytest.raises(NotFoundError):
            repo.add_annotation(session, "no-such-image", box_rle(0, 1, 0, 1))
        with pytest.raises(NotFoundError):
            repo.add_annotation(session, image.id, box_rle(0, 1, 0, 1), category_id=42)
        with pytest.raises(NotFoundError):
            repo.update_annotation(session, 999, accepted=True)
        with pytest.raises(InvalidValueError, match="6 x 8"):
            repo.add_annotation(session, image.id, box_rle(0, 1, 0, 1, height=8, width=6))
        with pytest.raises(InvalidValueError, match="source"):
            repo.add_annotation(session, image.id, box_rle(0, 1, 0, 1), source="magic")
        with pytest.raises(InvalidValueError):
            repo.add_annotation(session, image.id, {"size": [H, W], "counts": "0o"})
        # A refused update leaves nothing behind for the next commit to write.
        with pytest.raises(NotFoundError):
            repo.update_annotation(session, annotation.id, accepted=False, category_id=42)
        with pytest.raises(InvalidValueError):
            repo.update_annotation(session, annotation.id, accepted=False, rle={"size": [H, W]})
        repo.add_category(session, "cat")
    with db.session() as session:
        assert repo.get_annotation(session, annotation.id).accepted is True
        assert len(repo.list_annotations(session, image.id)) == 1


def test_deleting_an_image_deletes_its_annotations(db):
    with db.session() as session:
        keep, gone = add_test_image(session, "keep.png"), add_test_image(session, "gone.png")
        repo.add_annotation(session, keep.id, box_rle(0, 1, 0, 1))
        doomed = repo.add_annotation(session, gone.id, box_rle(0, 2, 0, 2))
        repo.delete_image(session, gone.id)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Annotation)) == 1
        with pytest.raises(NotFoundError):
            repo.get_annotation(session, doomed.id)


# ---- export -----------------------------------------------------------------------------------


def test_export_streams_every_image_with_its_annotations(db):
    with db.session() as session:
        ids = [add_test_image(session, f"{i}.png").id for i in range(5)]
        for i, image_id in enumerate(ids):
            for k in range(i):
                repo.add_annotation(session, image_id, box_rle(0, 1, k, k + 1), accepted=k % 2 == 0)
    with db.session() as session:
        exported = list(repo.iter_project(session, batch_size=2))
        assert [image.id for image, _ in exported] == ids
        assert [len(annotations) for _, annotations in exported] == [0, 1, 2, 3, 4]
        accepted = repo.iter_project(session, batch_size=3, accepted_only=True)
        assert [len(item.annotations) for item in accepted] == [0, 1, 1, 2, 2]
        assert all(a.image_id == item.image.id for item in exported for a in item.annotations)


# ---- durability and concurrency --------------------------------------------------------------


def test_an_acknowledged_annotation_survives_sigkill(db, database_url):
    with db.session() as session:
        image_id = add_test_image(session).id
    code = f"""
        import sys, time
        from segany.project.storage import create_database, repository
        db = create_database(sys.argv[1])
        with db.session() as session:
            rle = {box_rle(1, 4, 1, 6)!r}
            annotation = repository.add_annotation(session, sys.argv[2], rle, author="killed")
            print("ok", annotation.id, flush=True)
            time.sleep(600)  # the connection stays open: only the commit may have saved it
    """
    writer = run_python(code, database_url, image_id, stdout=subprocess.PIPE)
    try:
        line = writer.stdout.readline().split()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    assert line[:1] == ["ok"], "the writer process failed before acknowledging"
    survivor = create_database(database_url)
    try:
        with survivor.session() as session:
            annotation = repo.get_annotation(session, int(line[1]))
            assert (annotation.author, annotation.area) == ("killed", 15)
    finally:
        survivor.dispose()


def test_two_processes_write_at_once(db, database_url, tmp_path):
    with db.session() as session:
        image_id = add_test_image(session).id
    go = tmp_path / "go"
    code = f"""
        import sys, time
        from pathlib import Path
        from segany.project.storage import create_database, repository
        db = create_database(sys.argv[1])
        print("ready", flush=True)
        while not Path(sys.argv[3]).exists():
            time.sleep(0.01)
        with db.session() as session:
            for _ in range(15):
                repository.add_annotation(session, sys.argv[2], {box_rle(0, 1, 0, 1)!r})
    """
    args = (database_url, image_id, str(go))
    workers = [run_python(code, *args, stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        go.touch()
        for worker in workers:
            worker.wait(timeout=120)
    finally:
        for worker in workers:
            worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0]
    with db.session() as session:
        assert len(repo.list_annotations(session, image_id)) == 30


# ---- RLE checks (no database) ----------------------------------------------------------------


def test_parse_counts_reads_pycocotools_strings():
    rng = np.random.default_rng(0)
    for trial in range(200):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((height, width)) < rng.random()
        if trial % 5 == 0:
            mask[:] = trial % 10 == 0  # empty and full masks
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        flat = mask.flatten(order="F")
        edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
        bounds = np.concatenate(([0], edges, [flat.size]))
        runs = np.diff(bounds).tolist()
        if flat[0]:
            runs = [0, *runs]  # RLEs start with a run of 0s
        assert parse_counts(encoded["counts"].decode()).tolist() == runs
        checked = check_rle(encoded)
        assert checked.area == int(mask.sum())
        assert checked.bbox == tuple(float(v) for v in mask_utils.toBbox(encoded))


@pytest.mark.parametrize(
    "rle, match",
    [
        ({"size": [2, 2], "counts": "5"}, "cover 5"),
        ({"size": [2, 2], "counts": "1\x7f"}, "outside"),
        ({"size": [2, 2], "counts": "0P"}, "middle"),
        ({"size": [2, 2], "counts": "0000000000"}, "cover 0"),
        ({"size": [2, 2], "counts": "ooooooo0"}, "longer"),
        ({"size": [2, 2], "counts": "O5"}, "negative"),  # "O" is -1
        ({"size": [0, 2], "counts": ""}, "positive"),
        ({"size": [2, 2], "counts": [4]}, "compressed"),
        ({"counts": "4"}, "COCO"),
    ],
)
def test_malformed_rles_are_refused(rle, match):
    with pytest.raises(InvalidValueError, match=match):
        check_rle(rle)
