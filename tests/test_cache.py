"""segany.cache: keys, the byte-bounded LRU, the disk store (round trip, corruption) and
single-flight computation across threads and processes."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import segany
from conftest import synthetic_image
from process_helpers import run_together
from segany import ConfigError, ImageError
from segany.cache import (
    CachedEmbedding,
    EmbeddingCache,
    encode,
    image_key,
    restore,
    weights_id,
)
from segany.cache import keys as cache_keys
from segany.errors import CheckpointError
from segany.predictor import SamPredictor

KEY_A, KEY_B, KEY_C, KEY_D, KEY_E = ("a1" * 32, "b2" * 32, "c3" * 32, "d4" * 32, "e5" * 32)


def fake(value: float, channels: int = 1) -> CachedEmbedding:
    """A (1, channels, 4, 4) embedding: 64 bytes per channel."""
    return CachedEmbedding(torch.full((1, channels, 4, 4), float(value)), (8, 12))


def same(a: CachedEmbedding, b: CachedEmbedding) -> bool:
    return torch.equal(a.embedding, b.embedding) and a.original_size == b.original_size


# ---- keys ------------------------------------------------------------------------------------


def test_image_key_is_stable():
    # Pinned: a changed key scheme would silently orphan every embedding already on disk.
    key = image_key(b"pixels", "vit_b", "abc")
    assert key == "45b68204d01deb9729b527aa9f040d6442ac18eca469db5f89509ac4c5cf4826"
    assert image_key(b"pixels", "vit_b", "abc") == key


def test_image_key_changes_with_each_part_and_is_unambiguous():
    base = image_key(b"pixels", "vit_b", "abc")
    others = {
        image_key(b"pixelz", "vit_b", "abc"),
        image_key(b"pixels", "vit_l", "abc"),
        image_key(b"pixels", "vit_b", "abd"),
        # the same concatenated text, split differently between the parts
        image_key(b"pixelsv", "it_b", "abc"),
        image_key(b"pixels", "vit_ba", "bc"),
    }
    assert base not in others and len(others) == 5


def test_weights_id_hashes_once_per_file_version(tmp_path, monkeypatch):
    calls = []
    real = cache_keys._sha256_file
    monkeypatch.setattr(cache_keys, "_sha256_file", lambda p: calls.append(p) or real(p))
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"first weights")

    first = weights_id(weights)
    assert first == hashlib.sha256(b"first weights").hexdigest()
    assert weights_id(str(weights)) == first and len(calls) == 1

    # same size, new content and mtime: must be hashed again
    weights.write_bytes(b"other weights")
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = weights_id(weights)
    assert second == hashlib.sha256(b"other weights").hexdigest() != first
    assert len(calls) == 2
    assert weights_id(weights) == second and len(calls) == 2


def test_weights_id_none_and_missing(tmp_path):
    assert weights_id(None) == "random"
    with pytest.raises(CheckpointError, match="missing.pth"):
        weights_id(tmp_path / "missing.pth")


# ---- memory ----------------------------------------------------------------------------------


def test_lru_evicts_least_recently_used_by_bytes():
    cache = EmbeddingCache(max_memory_bytes=3 * 64)
    for key, value in ((KEY_A, 1), (KEY_B, 2), (KEY_C, 3)):
        cache.put(key, fake(value))
    assert cache.get(KEY_A) is not None  # A is now the most recent; B the least
    cache.put(KEY_D, fake(4))
    assert cache.get(KEY_B) is None
    assert all(cache.contains(k) for k in (KEY_A, KEY_C, KEY_D))
    stats = cache.stats()
    assert (stats.memory_bytes, stats.entries) == (3 * 64, 3)

    cache.put(KEY_B, fake(5, channels=2))  # 128 bytes: two older entries must go
    assert [cache.contains(k) for k in (KEY_A, KEY_C, KEY_D, KEY_B)] == [False, False, True, True]
    assert cache.stats().memory_bytes == 3 * 64


def test_entry_larger_than_memory_bound_stays_on_disk_only(tmp_path):
    big = fake(7, channels=4)  # 256 bytes
    cache = EmbeddingCache(tmp_path, max_memory_bytes=100)
    cache.put(KEY_A, big)
    assert cache.stats().entries == 0 and cache.stats().memory_bytes == 0
    assert cache.contains(KEY_A)
    assert same(cache.get(KEY_A), big)
    assert cache.stats().disk_hits == 1

    memory_only = EmbeddingCache(max_memory_bytes=100)
    memory_only.put(KEY_A, big)
    assert memory_only.get(KEY_A) is None


def test_stats_count_hits_and_misses():
    cache = EmbeddingCache()
    assert cache.get(KEY_A) is None
    cache.get_or_compute(KEY_A, lambda: fake(1))
    cache.get_or_compute(KEY_A, lambda: fake(2))
    cache.get(KEY_A)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.disk_hits, stats.entries) == (2, 2, 0, 1)
    assert stats.memory_bytes == 64


# ---- disk ------------------------------------------------------------------------------------


def test_disk_round_trip_in_a_new_cache(tmp_path):
    value = CachedEmbedding(torch.randn(1, 8, 4, 4), (31, 45))
    EmbeddingCache(tmp_path).put(KEY_A, value)
    assert (tmp_path / KEY_A[:2] / f"{KEY_A}.safetensors").is_file()

    fresh = EmbeddingCache(tmp_path)  # what another process would see
    assert fresh.contains(KEY_A) and not fresh.contains(KEY_B)
    assert same(fresh.get(KEY_A), value)
    assert fresh.get(KEY_A).original_size == (31, 45)
    assert (fresh.stats().hits, fresh.stats().disk_hits) == (2, 1)  # then served from memory
    loaded, cached = EmbeddingCache(tmp_path).get_or_compute(KEY_A, pytest.fail)
    assert cached and same(loaded, value)


def test_disk_cache_evicts_least_recently_used_entries_by_bytes(tmp_path):
    # No memory: every get reads the disk, so recency on disk is what decides.
    EmbeddingCache(tmp_path / "size").put(KEY_A, fake(1))
    size = next((tmp_path / "size").rglob("*.safetensors")).stat().st_size  # 64 B + header
    bound = 4 * size  # an eviction pass keeps 90%: three entries
    cache = EmbeddingCache(tmp_path / "cache", max_memory_bytes=0, max_disk_bytes=bound)
    for key, value in ((KEY_A, 1), (KEY_B, 2), (KEY_C, 3), (KEY_D, 4)):
        cache.put(key, fake(value))
    assert same(cache.get(KEY_A), fake(1)) and same(cache.get(KEY_C), fake(3))  # used lately
    cache.put(KEY_E, fake(5))
    kept = [cache.contains(k) for k in (KEY_A, KEY_B, KEY_C, KEY_D, KEY_E)]
    assert kept == [True, False, True, False, True]
    files = list((tmp_path / "cache").rglob("*.safetensors"))
    assert sum(f.stat().st_size for f in files) <= bound
    other_worker = EmbeddingCache(tmp_path / "cache", max_memory_bytes=0, max_disk_bytes=bound)
    assert same(other_worker.get(KEY_E), fake(5))
    # Per-key lock files do not pile up beside evicted entries: one per key prefix at most.
    cache.get_or_compute(KEY_B, lambda: fake(5))
    assert {p.name for p in (tmp_path / "cache").rglob("*.lock")} <= {".lock", "b2.lock"}


def test_discard_forgets_a_key_in_memory_and_on_disk(tmp_path):
    cache = EmbeddingCache(tmp_path, max_disk_bytes=1 << 20)
    cache.put(KEY_A, fake(1))
    cache.put(KEY_B, fake(2))
    cache.discard(KEY_A)
    assert not cache.contains(KEY_A) and cache.get(KEY_A) is None
    assert not (tmp_path / KEY_A[:2] / f"{KEY_A}.safetensors").exists()
    assert cache.contains(KEY_B) and cache.stats().entries == 1
    cache.discard(KEY_A)  # nothing left: no error
    EmbeddingCache().discard(KEY_B)  # memory only
    with pytest.raises(ConfigError, match="hex digest"):
        cache.discard("../escape")


def _write_corrupt(directory: Path, how: str) -> Path:
    """Store an entry for KEY_A under `directory`, then spoil its file in the way `how` says."""
    EmbeddingCache(directory).put(KEY_A, fake(1))
    path = directory / KEY_A[:2] / f"{KEY_A}.safetensors"
    data = path.read_bytes()
    if how == "random":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[:-10])
    elif how == "flipped":  # the last byte is tensor data: only the sha256 can tell
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))
    elif how == "other_key":  # a valid entry, under the wrong name
        EmbeddingCache(directory).put(KEY_B, fake(9))
        path.write_bytes((directory / KEY_B[:2] / f"{KEY_B}.safetensors").read_bytes())
    return path


@pytest.mark.parametrize("how", ["random", "empty", "truncated", "flipped", "other_key"])
def test_corrupt_file_is_a_miss_and_is_replaced(tmp_path, how):
    path = _write_corrupt(tmp_path, how)
    assert EmbeddingCache(tmp_path).get(KEY_A) is None
    assert not path.exists()  # dropped, never served

    path = _write_corrupt(tmp_path, how)
    calls = []
    value, cached = EmbeddingCache(tmp_path).get_or_compute(
        KEY_A, lambda: calls.append(1) or fake(2)
    )
    assert not cached and calls == [1] and same(value, fake(2))
    assert same(EmbeddingCache(tmp_path).get(KEY_A), fake(2))  # the file was replaced


def test_failed_compute_is_not_cached_and_is_retried():
    cache = EmbeddingCache()

    def broken() -> CachedEmbedding:
        raise ImageError("bad image")

    with pytest.raises(ImageError):
        cache.get_or_compute(KEY_A, broken)
    assert not cache.contains(KEY_A)
    assert cache.get_or_compute(KEY_A, lambda: fake(1))[1] is False
    with pytest.raises(TypeError, match="CachedEmbedding"):
        cache.get_or_compute(KEY_B, lambda: torch.zeros(1, 1, 4, 4))


# ---- concurrency -----------------------------------------------------------------------------


@pytest.mark.parametrize("on_disk", [False, True])
def test_threads_asking_for_one_key_compute_it_once(tmp_path, on_disk):
    cache = EmbeddingCache(tmp_path if on_disk else None)
    calls = []
    start = threading.Barrier(8)
    results = []

    def compute() -> CachedEmbedding:
        calls.append(1)
        time.sleep(0.3)  # long enough for every other thread to arrive and wait
        return CachedEmbedding(torch.randn(1, 4, 4, 4), (16, 16))

    def ask() -> None:
        start.wait()
        results.append(cache.get_or_compute(KEY_A, compute))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(calls) == 1 and len(results) == 8
    assert sorted(cached for _, cached in results) == [False] + [True] * 7
    assert all(same(value, results[0][0]) for value, _ in results)


def test_memoryless_cache_still_computes_once_for_concurrent_threads():
    # Nothing is kept, but threads that waited on the computation still share its result.
    cache = EmbeddingCache(max_memory_bytes=0)
    calls = []
    start = threading.Barrier(4)

    def compute() -> CachedEmbedding:
        calls.append(1)
        time.sleep(0.3)
        return fake(1)

    def ask() -> None:
        start.wait()
        cache.get_or_compute(KEY_A, compute)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(calls) == 1


_WORKER = """
import time
import torch
from segany.cache import CachedEmbedding, EmbeddingCache

directory, key, log, name = _Path(_sys.argv[1]), _sys.argv[2], _Path(_sys.argv[3]), _sys.argv[4]
cache = EmbeddingCache(directory)
ready_and_wait()  # start together, after both imported torch

def compute():
    with open(log, "a") as f:
        f.write(name + "\\n")
    time.sleep(1.0)  # the other process arrives meanwhile and must wait, not compute
    return CachedEmbedding(torch.arange(64.0).view(1, 4, 4, 4), (16, 16))

value, cached = cache.get_or_compute(key, compute)
print(cached, float(value.embedding.sum()))
"""


def test_processes_sharing_a_directory_compute_a_key_once(tmp_path):
    log = tmp_path / "computations.txt"
    arguments = [str(tmp_path / "cache"), KEY_A, str(log)]
    results = run_together(_WORKER, {"first": arguments, "second": arguments}, tmp_path)
    assert all(code == 0 for code, _, _ in results.values()), results
    assert len(log.read_text().splitlines()) == 1
    lines = sorted(out.strip() for _, out, _ in results.values())
    assert lines == ["False 2016.0", "True 2016.0"]


# ---- with a model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    return segany.build_sam("test_tiny", pretrained=False, seed=0)


def _predict(predictor: SamPredictor) -> tuple[np.ndarray, ...]:
    # A point and a box: both are mapped through the original size to the input frame.
    return predictor.predict(
        point_coords=np.array([[23.0, 22.5]]),
        point_labels=np.array([1]),
        box=np.array([2, 3, 65, 41]),
    )


def test_restored_embedding_gives_the_same_masks_as_set_image(tiny_model, tmp_path):
    image = synthetic_image(45, 70)  # not square: the input size must be rebuilt correctly
    direct = SamPredictor(tiny_model)
    direct.set_image(image)
    expected = _predict(direct)

    cache = EmbeddingCache(tmp_path)
    key = image_key(image.tobytes(), tiny_model.spec.name, weights_id(None))
    cached, hit = cache.get_or_compute(key, lambda: encode(SamPredictor(tiny_model), image))
    assert not hit and cached.original_size == (45, 70)
    assert cached.nbytes == 32 * 16 * 16 * 4  # test_tiny: (1, 32, 16, 16) float32
    assert torch.equal(cached.embedding, direct.get_image_embedding())

    from_disk = EmbeddingCache(tmp_path).get(key)  # what another worker restores
    predictor = SamPredictor(tiny_model)
    restore(predictor, from_disk)
    assert predictor.input_size == direct.input_size
    for got, want in zip(_predict(predictor), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    # predicting never writes into the shared cached tensor
    assert torch.equal(cached.embedding, from_disk.embedding)


# ---- errors ----------------------------------------------------------------------------------


def test_bad_directory_is_a_config_error(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file"):
        EmbeddingCache(a_file)
    with pytest.raises(ConfigError, match="cannot create"):
        EmbeddingCache(a_file / "below")


def test_directory_refusing_writes_is_a_config_error(tmp_path, monkeypatch):
    # Simulated, since root (CI) may write into any folder whatever its mode.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("segany.cache.disk.tempfile.TemporaryFile", refuse)
    with pytest.raises(ConfigError, match="not writable.*Permission denied"):
        EmbeddingCache(tmp_path)


def test_bad_arguments_are_typed_errors():
    with pytest.raises(ConfigError, match="max_memory_bytes"):
        EmbeddingCache(max_memory_bytes=-1)
    cache = EmbeddingCache()
    for key in ("../../etc/passwd", "ABCDEF", "", "a"):
        with pytest.raises(ConfigError, match="hex digest"):
            cache.get(key)
    with pytest.raises(ImageError, match=r"\(1, C, h, w\)"):
        CachedEmbedding(torch.zeros(32, 16, 16), (8, 8))
    with pytest.raises(ImageError, match="float32"):
        CachedEmbedding(torch.zeros(1, 32, 16, 16, dtype=torch.float16), (8, 8))
    with pytest.raises(ImageError, match="positive"):
        CachedEmbedding(torch.zeros(1, 32, 16, 16), (0, 8))
