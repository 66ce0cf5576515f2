"""Bounded storage (issue 24, item 3): every cache of `segany serve` is bounded in bytes, least
recently used first out, in memory and on disk, with one LRU (`ByteLRU`) and one disk store
(`BoundedFolder`, one file lock) that hold across worker processes; `--cache-size` and
`--disk-cache-size`; a deleted image leaves no embedding behind. Embedding-cache specifics are
in test_cache.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_image
from geo_helpers import Scene, TileServer
from postgres import postgres_server  # noqa: F401  (fixture of db_url)
from process_helpers import run_together
from segany.byte_sizes import format_bytes, parse_byte_size
from segany.cache.folder import BoundedFolder
from segany.cache.memory import ByteLRU
from segany.cli.main import main
from segany.errors import ConfigError, PromptError
from segany.geo.tiles import TileFetcher, template_source
from segany.project.image_files import StoredImage
from segany.server.cache_budget import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES, CacheBudget
from segany.server.inference import ModelService
from segany.server.previous import PreviousLogits
from segany.server.settings import ServerSettings
from server_helpers import scene_png
from test_server_api import predict, refused, upload

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
# What a test_tiny answer stores: four (64, 64) float16 candidates, plus the .npy header.
ANSWER_BYTES = 4 * 64 * 64 * 2 + 128


def blob(size: int):
    """A `BoundedFolder.write` saver of a `size`-byte file."""
    return lambda temporary: temporary.write_bytes(b"x" * size)


def names(folder: Path) -> set[str]:
    """The folder's files (paths relative to it), without the store's own bookkeeping."""
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and not path.relative_to(folder).parts[0].startswith(".")
    }


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# ---- the one LRU ------------------------------------------------------------------------------


def test_byte_lru_evicts_least_recently_used_by_bytes_and_reports_each():
    evicted = []
    lru = ByteLRU(100, on_evict=lambda key, value: evicted.append((key, value.nbytes)))
    assert lru.put("a", np.zeros(40, np.uint8)) and lru.put("b", np.zeros(40, np.uint8))
    assert lru.get("a") is not None  # a is now the most recent, b the least
    lru.put("c", np.zeros(40, np.uint8))
    assert evicted == [("b", 40)] and lru.nbytes == 80 and len(lru) == 2
    lru.put("d", np.zeros(90, np.uint8))  # both older entries must go, oldest first
    assert evicted == [("b", 40), ("a", 40), ("c", 40)] and lru.nbytes == 90
    assert lru.put("e", np.zeros(101, np.uint8)) is False  # larger than the bound: refused
    assert "d" in lru and "e" not in lru and len(evicted) == 3
    assert lru.pop("d").nbytes == 90 and lru.pop("d") is None
    assert lru.nbytes == 0 and len(evicted) == 3  # pop is not an eviction


# ---- the disk store ---------------------------------------------------------------------------


def test_folder_evicts_least_recently_used_files_down_to_its_bound(tmp_path):
    root = tmp_path / "store"
    folder = BoundedFolder(root, max_bytes=10 * KiB)  # an eviction pass keeps 9 KiB
    assert folder.write(root / "old" / "b.bin", blob(2 * KiB))
    for name in "acd":
        assert folder.write(root / f"{name}.bin", blob(2 * KiB))
    assert folder.read_bytes(root / "old" / "b.bin") == b"x" * 2 * KiB  # b: now the most recent
    assert folder.read_bytes(root / "a.bin") is not None  # then a
    folder.write(root / "e.bin", blob(3 * KiB))  # 11 KiB: c (least recently used) goes
    assert names(root) == {"old/b.bin", "a.bin", "d.bin", "e.bin"}
    assert folder.usage() == 9 * KiB
    folder.write(root / "f.bin", blob(4 * KiB))  # 13 KiB: d, then b, go
    assert names(root) == {"a.bin", "e.bin", "f.bin"} and folder.usage() == 9 * KiB
    assert not (root / "old").exists()  # a folder its evictions emptied goes too


def test_folder_objects_sharing_a_directory_keep_one_bound_and_one_recency(tmp_path):
    root = tmp_path / "shared"
    workers = (BoundedFolder(root, 10 * KiB), BoundedFolder(root, 10 * KiB))  # two processes'
    for i in range(20):
        workers[i % 2].write(root / f"{i}.bin", blob(KiB))
        assert folder_bytes(root) <= 10 * KiB + 64  # the files and the small running total
    survivors = sorted(int(name.split(".")[0]) for name in names(root))
    assert survivors == list(range(survivors[0], 20)) and len(survivors) >= 9
    oldest = survivors[0]
    assert workers[0].read_bytes(root / f"{oldest}.bin") is not None  # used through worker 0
    for i in range(20, 25):
        workers[1].write(root / f"{i}.bin", blob(KiB))  # evictions by worker 1
    assert (root / f"{oldest}.bin").exists()  # worker 1 saw that it was used
    assert not (root / f"{oldest + 1}.bin").exists()
    assert workers[1].usage() <= 10 * KiB


_WRITER = """
from segany.cache.folder import BoundedFolder

root, name = _Path(_sys.argv[1]), _sys.argv[2]
folder = BoundedFolder(root, 20 * 1024)
ready_and_wait()
for i in range(150):
    folder.write(root / name / f"{i}.bin", lambda t: t.write_bytes(b"x" * 1024))
    folder.read_bytes(root / name / f"{max(0, i - 3)}.bin")  # a reader racing the evictions
"""


def test_processes_writing_at_once_stay_within_the_bound(tmp_path):
    root = tmp_path / "store"
    results = run_together(_WRITER, {"one": [str(root)], "two": [str(root)]}, tmp_path)
    assert all(code == 0 and not err for code, _, err in results.values()), results
    kept = names(root)
    assert sum((root / name).stat().st_size for name in kept) <= 20 * KiB
    assert {"one/149.bin", "two/149.bin"} & kept  # the last write of all survives
    # One process may finish first; the other's later writes then evict its files, oldest first.
    # Either way only recent files remain: each writer's survivors are among its last writes.
    for writer in ("one", "two"):
        indices = [int(Path(name).stem) for name in kept if name.startswith(f"{writer}/")]
        assert all(index >= 150 - 25 for index in indices), (writer, sorted(indices))


def test_a_file_vanishing_during_an_eviction_pass_is_skipped(tmp_path, monkeypatch):
    root = tmp_path / "store"
    folder = BoundedFolder(root, 10 * KiB)
    for i in range(5):
        folder.write(root / f"{i}.bin", blob(2 * KiB))
    scan = folder._scan

    def scan_then_lose_files():
        found = scan()
        (root / "0.bin").unlink()  # deleted by another worker between the scan and the deletes
        (root / "1.bin").unlink()
        return found

    monkeypatch.setattr(folder, "_scan", scan_then_lose_files)
    assert folder.write(root / "5.bin", blob(2 * KiB))  # over the bound: an eviction pass
    monkeypatch.undo()
    assert "5.bin" in names(root) and folder.usage() <= 10 * KiB


def test_a_file_that_cannot_be_evicted_is_logged_and_the_pass_goes_on(tmp_path, caplog):
    root = tmp_path / "store"
    (root / "stuck").mkdir(parents=True)
    stuck = root / "stuck" / "a.bin"
    stuck.write_bytes(b"x" * 2 * KiB)
    os.utime(stuck, (1, 1))  # the least recently used of all
    folder = BoundedFolder(root, 10 * KiB)
    for i in range(4):
        folder.write(root / f"{i}.bin", blob(2 * KiB))
    real_unlink = Path.unlink

    def refuse(path, *args, **kwargs):
        if path == stuck:
            raise PermissionError(13, "Permission denied")
        return real_unlink(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "unlink", refuse)
        assert folder.write(root / "4.bin", blob(2 * KiB))  # 12 KiB: an eviction pass
    assert "cannot evict" in caplog.text and "Permission denied" in caplog.text
    # The stuck file still takes room: two others went in its place.
    assert names(root) == {"stuck/a.bin", "2.bin", "3.bin", "4.bin"}
    assert int((root / ".usage").read_text()) == folder.usage() == 8 * KiB


def test_a_reader_of_an_evicted_file_gets_a_miss(tmp_path):
    root = tmp_path / "store"
    folder = BoundedFolder(root, 10 * KiB)
    missing = root / "gone.bin"
    assert folder.read_bytes(missing) is None
    folder.touch(missing)  # no error: an eviction may win any race with a read
    folder.remove(missing)
    folder.write(missing, blob(KiB))
    folder.remove(missing)
    assert folder.read_bytes(missing) is None and folder.usage() == 0


def test_files_already_there_are_counted_and_evicted_at_open(tmp_path):
    root = tmp_path / "previous"
    root.mkdir()
    for i in range(30):  # left by an older segany that never evicted: answers, per-key locks
        path = root / (f"token{i:02d}.npy" if i % 3 else f"key{i:02d}.lock")
        path.write_bytes(b"x" * (KiB if i % 3 else 0))
        os.utime(path, (1000 + i, 1000 + i))
    folder = BoundedFolder(root, 10 * KiB)
    assert folder.usage() <= 10 * KiB
    assert "token29.npy" in names(root) and "token01.npy" not in names(root)


def test_a_file_larger_than_the_bound_or_a_failed_write_keeps_nothing(tmp_path, caplog):
    root = tmp_path / "store"
    folder = BoundedFolder(root, 10 * KiB)
    folder.write(root / "small.bin", blob(KiB))
    assert folder.write(root / "big.bin", blob(20 * KiB)) is False
    assert names(root) == {"small.bin"}  # neither the big file nor a temporary

    def disk_full(temporary: Path) -> None:
        temporary.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    assert folder.write(root / "full.bin", disk_full) is False
    assert "No space left" in caplog.text and names(root) == {"small.bin"}
    with pytest.raises(ConfigError, match="byte count"):
        BoundedFolder(root, -1)


def test_a_damaged_running_total_is_recounted(tmp_path):
    root = tmp_path / "store"
    folder = BoundedFolder(root, 10 * KiB)
    for i in range(3):
        folder.write(root / f"{i}.bin", blob(KiB))
    (root / ".usage").write_text("half-writ")  # a crash while it was written
    folder.write(root / "3.bin", blob(KiB))
    assert int((root / ".usage").read_text()) == folder.usage() == 4 * KiB


# ---- previous answers -------------------------------------------------------------------------


def answer(seed: int) -> np.ndarray:
    """(4, 64, 64) logits like a test_tiny click's."""
    return np.random.default_rng(seed).normal(size=(4, 64, 64)).astype(np.float32)


def test_previous_answers_are_bounded_in_memory_and_on_disk(tmp_path):
    directory = tmp_path / "previous"
    store = PreviousLogits(directory, 3 * 4 * 64 * 64 * 2, 6 * ANSWER_BYTES)
    tokens = [store.put(answer(i)) for i in range(20)]
    assert folder_bytes(directory) <= 6 * ANSWER_BYTES + 64
    on_disk = {name.removesuffix(".npy") for name in names(directory)}
    assert 5 <= len(on_disk) <= 6 and on_disk == set(tokens[-len(on_disk) :])  # the latest
    for i, token in enumerate(tokens):
        if token not in on_disk:
            with pytest.raises(PromptError, match="click again"):
                store.get(token, (64, 64))
        else:
            best = store.get(f"{token}.2", (64, 64))
            np.testing.assert_array_equal(best[0], answer(i)[2].astype(np.float16))
    for path in directory.glob("*.npy"):  # now only this process's memory has answers
        path.unlink()
    answered = []
    for token in tokens:
        try:
            answered.append(store.get(token, (64, 64)) is not None)
        except PromptError:
            answered.append(False)
    assert answered == [False] * 17 + [True] * 3  # memory holds three answers


def test_previous_answers_of_another_worker_are_read_from_disk_and_count_as_used(tmp_path):
    directory = tmp_path / "previous"
    one = PreviousLogits(directory, 0, 6 * ANSWER_BYTES)  # no memory: every get reads the disk
    two = PreviousLogits(directory, 0, 6 * ANSWER_BYTES)
    first = one.put(answer(0))
    for i in range(1, 5):
        one.put(answer(i))
    np.testing.assert_array_equal(two.get(first, (64, 64))[0], answer(0)[0].astype(np.float16))
    for i in range(5, 8):
        two.put(answer(i))  # evictions by the other worker
    assert two.get(first, (64, 64)).shape == (1, 64, 64)  # used lately: kept


def test_a_damaged_previous_answer_is_a_4xx_and_is_deleted(tmp_path):
    directory = tmp_path / "previous"
    store = PreviousLogits(directory, 0, MiB)
    token = store.put(answer(0))
    (directory / f"{token}.npy").write_bytes(b"\x93NUMPY cut short")
    with pytest.raises(PromptError, match="click again"):
        store.get(token, (64, 64))
    assert not (directory / f"{token}.npy").exists()


# ---- the model service and the server ---------------------------------------------------------


def stored_image(folder: Path, seed: int) -> StoredImage:
    path = folder / f"scene-{seed}.png"
    Image.fromarray(synthetic_image(48, 64, seed=seed)).save(path)
    return StoredImage(path, hashlib.sha256(path.read_bytes()).hexdigest(), 64, 48)


@pytest.fixture
def tiny_service(tmp_path):
    """make(**settings) -> a test_tiny ModelService on tmp_path/data, closed after the test."""
    made = []

    def make(**settings) -> ModelService:
        settings = {"model": "test_tiny", "random_weights": True, "threads": 1, **settings}
        made.append(ModelService(ServerSettings(data_dir=tmp_path / "data", **settings)))
        return made[-1]

    yield make
    for service in made:
        service.close()


def test_ten_thousand_clicks_keep_the_data_folder_within_the_disk_bound(tiny_service, tmp_path):
    bound = 2 * MiB
    service = tiny_service(cache_disk_bytes=bound, cache_memory_bytes=600 * KiB)
    images_dir = tmp_path / "data" / "images"
    images_dir.mkdir(parents=True)
    images = [stored_image(images_dir, seed) for seed in range(100)]
    before = folder_bytes(tmp_path / "data")
    # One real decoder pass; the other 9,999 clicks reuse its answer (10,000 decoder passes
    # take minutes on two cores), and everything a click stores runs for each of them.
    first_records, first_token, _ = service.predict(images[0], [[20, 20, 1]], None, True, None)
    logits = service.previous.get(first_token, (64, 64))
    answer_of_a_click = (first_records, np.repeat(logits, 4, axis=0))
    service._answer = lambda *args: answer_of_a_click
    token = first_token
    for click in range(1, 10_000):
        image = images[click // 100]  # a new image every 100 clicks: embeddings churn too
        previous = token if click % 100 else None  # a person refining their mask
        _, token, _ = service.predict(image, [[20, 20, 1]], None, True, previous, False)
        if click % 500 == 0:
            assert folder_bytes(tmp_path / "data") - before <= bound, click
    assert folder_bytes(tmp_path / "data") - before <= bound
    assert folder_bytes(tmp_path / "data" / "cache") > bound // 2  # embeddings were kept
    with pytest.raises(PromptError, match="click again"):
        service.previous.get(first_token, (64, 64))
    assert service.previous.get(token, (64, 64)).shape == (1, 64, 64)


def test_pre_encoding_stops_when_the_images_ahead_fill_half_the_cache(tiny_service, tmp_path):
    from segany.server.pre_encoding import PreEncoder

    # Embeddings on disk: 80% of 330,000 B, about eight test_tiny embeddings (32 KiB each).
    service = tiny_service(cache_disk_bytes=330_000, cache_memory_bytes=0)
    (tmp_path / "images").mkdir()
    images = [stored_image(tmp_path / "images", seed) for seed in range(20)]
    encoder = PreEncoder(service, lambda: images)
    encoded = []
    embedding = service.embedding

    def counted(image, *priority):
        encoded.append(images.index(image))
        if len(encoded) >= 40:  # the old rule encodes, evicts and re-encodes for ever
            encoder._stop.set()
        return embedding(image, *priority)

    service.embedding = counted
    encoder._wake.wait = lambda timeout=None: encoder._stop.set()  # idle: the test is over
    encoder.start()
    encoder._thread.join(timeout=120)
    assert encoded == [0, 1, 2, 3, 4]  # the next images, as many as half the cache holds


def test_clicks_through_the_api_stay_within_the_disk_bound(serve, tmp_path):
    bound = 2 * MiB
    client = serve(
        model="test_tiny",
        random_weights=True,
        cache_disk_bytes=bound,
        cache_memory_bytes=600 * KiB,  # 100 KiB of it for previous answers: three
    )
    data = tmp_path / "data"
    ids = [upload(client, scene_png(seed), f"scene-{seed}.png")["id"] for seed in range(3)]
    before = folder_bytes(data)
    first = token = predict(client, ids[0], points=[[10, 10, 1]])["previous"]
    for click in range(1, 150):
        body = {"points": [[10 + click % 40, 10, 1]], "previous": token}
        token = predict(client, ids[click % 3], **body)["previous"]
    assert folder_bytes(data) - before <= bound
    # The first answer is long gone from memory and disk: a clear 4xx, and the clicks work.
    response = client.post(
        f"/api/images/{ids[0]}/predict", json={"points": [[10, 10, 1]], "previous": first}
    )
    refused(response, 422, "click again")
    assert predict(client, ids[0], points=[[10, 10, 1]], previous=token)["masks"]


def test_forget_drops_an_images_embedding_and_pixels(tiny_service, tmp_path):
    service = tiny_service()
    (tmp_path / "images").mkdir()
    image, other = stored_image(tmp_path / "images", 0), stored_image(tmp_path / "images", 1)
    service.predict(image, [[10, 10, 1]], None, True, None)
    service.predict(other, [[10, 10, 1]], None, True, None)
    service.pixels.put(image.sha256, np.zeros((48, 64, 3), np.uint8))
    assert service.is_encoded(image) and len(names(tmp_path / "data" / "cache")) == 2

    service.forget(image)
    assert not service.is_encoded(image) and service.is_encoded(other)
    assert len(names(tmp_path / "data" / "cache")) == 1
    loads = []
    service.pixels.get_or_load(image.sha256, lambda: loads.append(1) or np.zeros((1, 1, 3)))
    assert loads == [1]  # the pixels were dropped too
    service.forget(image)  # twice: nothing left to drop, no error


def test_deleting_an_image_removes_its_embeddings(serve, tmp_path):
    client = serve(model="test_tiny", random_weights=True)
    kept, deleted = (upload(client, scene_png(s), f"scene-{s}.png")["id"] for s in (1, 2))
    for image_id in (kept, deleted):
        predict(client, image_id, points=[[10, 10, 1]])
    cache = tmp_path / "data" / "cache"
    assert len(names(cache)) == 2
    assert client.delete(f"/api/images/{deleted}").status_code == 204
    assert len(names(cache)) == 1  # its embedding file is gone, the other image's stays
    assert client.app.state.segany.model.cache.stats().entries == 1  # and from memory
    assert predict(client, kept, points=[[10, 10, 1]])["cached"] is True


# ---- the tile cache ---------------------------------------------------------------------------


def test_tile_cache_is_bounded_and_keeps_the_tiles_in_use(tmp_path):
    with TileServer(Scene()) as tiles:
        source = template_source(tiles.template("ok"))
        far = [(5, x, 3) for x in range(20)]  # plain background tiles, all one size
        probe = TileFetcher(tmp_path / "probe")
        probe.fetch(source, far[:1])
        tile_bytes = folder_bytes(tmp_path / "probe")
        bound = 5 * tile_bytes + 10
        fetcher = TileFetcher(tmp_path / "tiles", max_bytes=bound)
        fetcher.fetch(source, far[:1])
        for tile in far[1:]:
            fetcher.fetch(source, [tile, far[0]])  # tile 0 is used again and again
            assert folder_bytes(tmp_path / "tiles") <= bound + 64
        asked = tiles.count("ok")
        fetcher.fetch(source, [far[0], far[-1]])
        assert tiles.count("ok") == asked  # both still cached
        fetcher.fetch(source, [far[1]])  # evicted long ago: fetched again
        assert tiles.count("ok") == asked + 1


# ---- sizes and flags --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512M", 512 * MiB),
        ("2G", 2 * GiB),
        ("1.5GiB", 3 * GiB // 2),
        ("1000000", 1_000_000),
        ("64k", 64 * KiB),
        ("10 MB", 10 * MiB),
        ("0", 0),
        ("0.5T", 512 * GiB),
    ],
)
def test_sizes_parse(text, expected):
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-1G", "1.5", "12Q", "1e9", "G", "nan", "2 G B"])
def test_bad_sizes_are_config_errors_quoting_them(text):
    with pytest.raises(ConfigError, match=f"{text!r} is not a"):
        parse_byte_size(text)


def test_sizes_print_for_people():
    assert [format_bytes(n) for n in (512, 48 * KiB, 256 * MiB, 3 * GiB // 2)] == [
        "512 B",
        "48 KiB",
        "256 MiB",
        "1.5 GiB",
    ]


def test_budget_shares_both_bounds_between_the_stores():
    budget = CacheBudget.split(1536 * MiB, 10 * GiB)
    assert (budget.embeddings_memory, budget.pixels_memory, budget.previous_memory) == (
        GiB,
        256 * MiB,
        256 * MiB,
    )
    assert budget.memory_bytes <= 1536 * MiB and budget.disk_bytes <= 10 * GiB
    assert budget.embeddings_disk > budget.previous_disk > 0 and budget.tiles_disk > 0
    odd = CacheBudget.split(1_000_003, 7)  # rounding never exceeds the bounds
    assert odd.memory_bytes <= 1_000_003 and odd.disk_bytes <= 7


@pytest.fixture
def served(monkeypatch):
    """Run `segany serve ARGS` up to uvicorn (not started); the settings it hands the workers."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    monkeypatch.setenv("SEGANY_SERVER_SETTINGS", "")

    def run(*args: str) -> ServerSettings:
        assert main(["serve", *args]) == 0
        return ServerSettings.from_environment()

    return run


def test_serve_flags_set_the_bounds_and_print_them(served, tmp_path, capsys):
    settings = served("--data", str(tmp_path), "--cache-size", "512M", "--disk-cache-size", "2G")
    assert (settings.cache_memory_bytes, settings.cache_disk_bytes) == (512 * MiB, 2 * GiB)
    line = capsys.readouterr().err
    assert "memory 512 MiB per worker" in line and "disk 2.0 GiB" in line
    assert "previous answers" in line and "map tiles" in line

    settings = served("--data", str(tmp_path))
    assert (settings.cache_memory_bytes, settings.cache_disk_bytes) == (
        DEFAULT_MEMORY_BYTES,
        DEFAULT_DISK_BYTES,
    )
    assert "memory 1.5 GiB per worker" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--cache-size", "--disk-cache-size"])
def test_serve_refuses_bad_sizes(flag, tmp_path, capsys):
    assert main(["serve", "--data", str(tmp_path), flag, "lots"]) == 2
    error = capsys.readouterr().err
    assert f"argument {flag}: 'lots' is not a size" in error and '"2G"' in error


def test_settings_refuse_bad_bounds_and_carry_them_to_the_workers(tmp_path):
    for bad in (-1, 1.5, "1G", True):
        with pytest.raises(ConfigError, match="cache_disk_bytes must be a byte count"):
            ServerSettings(data_dir=tmp_path, cache_disk_bytes=bad)
    settings = ServerSettings(data_dir=tmp_path, cache_memory_bytes=0, cache_disk_bytes=5 * MiB)
    again = ServerSettings.from_json(settings.to_json())
    assert (again.cache_memory_bytes, again.cache_disk_bytes) == (0, 5 * MiB)
    assert again.cache_budget == settings.cache_budget
