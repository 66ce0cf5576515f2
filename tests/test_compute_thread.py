"""`segany.compute_thread`: every call on one thread, in turn, errors back to the caller; and
the annotation server runs all its forward passes there."""

from __future__ import annotations

import threading

import pytest
import torch

from segany.compute_thread import ComputeThread


def test_calls_from_many_threads_run_on_one_thread_in_turn():
    compute = ComputeThread()
    seen, running, overlaps = [], [0], []

    def job(n: int) -> int:
        running[0] += 1
        overlaps.append(running[0])
        seen.append(threading.get_ident())
        running[0] -= 1
        return n * n

    results = {}

    def caller(n: int) -> None:
        results[n] = compute.run(job, n)

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(16)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    compute.close()
    assert results == {n: n * n for n in range(16)}
    assert len(set(seen)) == 1 and seen[0] != threading.get_ident()
    assert max(overlaps) == 1  # never two at once


def test_errors_reach_the_caller_and_the_thread_keeps_working():
    compute = ComputeThread()

    def fails() -> None:
        raise ValueError("bad prompt")

    with pytest.raises(ValueError, match="bad prompt"):
        compute.run(fails)
    assert compute.run(lambda a, b=0: a + b, 2, b=3) == 5
    compute.close()


def test_a_call_from_the_compute_thread_runs_at_once():
    compute = ComputeThread()
    inner = compute.run(lambda: compute.run(threading.get_ident))  # would deadlock if queued
    assert inner == compute.run(threading.get_ident)
    compute.close()


def test_threads_sets_torchs_intra_op_threads_there():
    before = torch.get_num_threads()
    compute = ComputeThread(threads=1)
    try:
        assert compute.run(torch.get_num_threads) == 1
    finally:
        compute.close()
        torch.set_num_threads(before)  # torch's count is process-wide


def test_the_server_runs_every_forward_pass_on_its_compute_thread(tmp_path, monkeypatch):
    import hashlib

    from segany.server import inference
    from segany.server.inference import ModelService, StoredImage
    from segany.server.settings import ServerSettings
    from server_helpers import scene_png

    threads = []
    for name in ("predict_edit", "encode"):
        original = getattr(inference, name)

        def recorded(*args, _original=original, **kwargs):
            threads.append(threading.get_ident())
            return _original(*args, **kwargs)

        monkeypatch.setattr(inference, name, recorded)
    service = ModelService(ServerSettings(data_dir=tmp_path / "data"))
    images = []
    for seed in range(2):
        data = scene_png(seed)
        path = tmp_path / f"{seed}.png"
        path.write_bytes(data)
        images.append(StoredImage(path, hashlib.sha256(data).hexdigest(), 128, 96))
    answers = {}

    def click(n: int) -> None:
        records, _, _ = service.predict(images[n % 2], [[10.0 + n, 20.0, 1]], None, True, None)
        answers[n] = records

    callers = [threading.Thread(target=click, args=(n,)) for n in range(6)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    compute_thread = service.compute.run(threading.get_ident)
    service.close()
    assert sorted(answers) == list(range(6)) and all(len(a) == 3 for a in answers.values())
    assert len(threads) == 2 + 6  # two encodings, six clicks
    assert set(threads) == {compute_thread} and compute_thread != threading.get_ident()
