"""`segany.compute_thread`: every call on one thread, in turn, errors back to the caller; and
the annotation server runs all its forward passes there."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from segany.compute_thread import ComputeThread, Priority, SharedWork


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


# ---- priorities -----------------------------------------------------------------------------


def blocked(compute: ComputeThread) -> threading.Event:
    """Hold the compute thread until the returned event is set (the calls queued meanwhile
    then run in the thread's order)."""
    started, gate = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(30)

    compute.submit(Priority.CLICK, hold)
    assert started.wait(30)
    return gate


def test_queued_calls_run_most_urgent_first_fifo_among_equals():
    compute = ComputeThread(max_wait={})  # strict priorities
    order = []
    gate = blocked(compute)
    tasks = [
        compute.submit(priority, order.append, name)
        for priority, name in [
            (Priority.BACKGROUND, "encode 1"),
            (Priority.JOB, "auto 1"),
            (Priority.CLICK, "click 1"),
            (Priority.BACKGROUND, "encode 2"),
            (Priority.JOB, "auto 2"),
            (Priority.CLICK, "click 2"),
        ]
    ]
    assert compute.queued() == {Priority.CLICK: 2, Priority.JOB: 2, Priority.BACKGROUND: 2}
    gate.set()
    for task in tasks:
        task.result(30)
    compute.close()
    assert order == ["click 1", "click 2", "auto 1", "auto 2", "encode 1", "encode 2"]


def test_a_promoted_task_runs_at_its_new_priority_once():
    compute = ComputeThread(max_wait={})  # strict priorities
    order = []
    gate = blocked(compute)
    encode = compute.submit(Priority.BACKGROUND, order.append, "encode")
    auto = compute.submit(Priority.JOB, order.append, "auto")
    compute.promote(encode, Priority.CLICK)
    compute.promote(auto, Priority.BACKGROUND)  # never lowered
    gate.set()
    encode.result(30), auto.result(30)
    compute.close()
    assert order == ["encode", "auto"]  # and the promoted one ran once


def test_a_call_waiting_past_its_max_wait_goes_before_more_urgent_ones():
    compute = ComputeThread(max_wait={Priority.JOB: 0.05})
    order = []
    gate = blocked(compute)
    early_click = compute.submit(Priority.CLICK, order.append, "early click")
    slice_ = compute.submit(Priority.JOB, order.append, "auto slice")
    background = compute.submit(Priority.BACKGROUND, order.append, "encode")
    time.sleep(0.1)  # the slice has waited past 0.05 s; the clicks after it go after it
    late_click = compute.submit(Priority.CLICK, order.append, "late click")
    gate.set()
    for task in (early_click, slice_, background, late_click):
        task.result(30)
    assert order == ["early click", "auto slice", "late click", "encode"]
    # Not yet waited long enough: clicks first.
    compute.max_wait = {Priority.JOB: 60.0}
    order.clear()
    gate = blocked(compute)
    tasks = [
        compute.submit(Priority.JOB, order.append, "auto slice"),
        compute.submit(Priority.CLICK, order.append, "click"),
    ]
    gate.set()
    for task in tasks:
        task.result(30)
    compute.close()
    assert order == ["click", "auto slice"]


def test_run_at_passes_keyword_arguments_and_raises_errors_at_any_priority():
    compute = ComputeThread()
    assert compute.run_at(Priority.BACKGROUND, lambda a, b=0: a - b, 5, b=2) == 3
    with pytest.raises(ZeroDivisionError):
        compute.run_at(Priority.JOB, lambda: 1 / 0)
    inner = compute.run_at(
        Priority.BACKGROUND, lambda: compute.run_at(Priority.JOB, threading.get_ident)
    )
    assert inner == compute.run(threading.get_ident)  # inline on the compute thread
    compute.close()
    with pytest.raises(RuntimeError, match="closed"):
        compute.run(int)


def test_a_click_waiting_for_a_background_encoding_promotes_it():
    """Pre-encoding started an image's encoding (queued BACKGROUND, behind an Auto slice); a
    click now waits for the same image: the encoding runs before the queued Auto slice."""
    compute = ComputeThread(max_wait={})
    work = SharedWork(compute)
    order = []
    gate = blocked(compute)
    results = {}

    def pre_encoder() -> None:
        with work.asking("image", Priority.BACKGROUND):
            results["encoding"] = work.run("image", lambda: order.append("encode") or 7)

    encoder = threading.Thread(target=pre_encoder)
    encoder.start()
    wait_until(lambda: compute.queued()[Priority.BACKGROUND] == 1)
    auto = compute.submit(Priority.JOB, order.append, "auto slice")
    with work.asking("image", Priority.CLICK):  # the click's thread, before it waits
        assert compute.queued()[Priority.CLICK] == 1
        gate.set()
        encoder.join(30)
    auto.result(30)
    compute.close()
    assert order == ["encode", "auto slice"] and results == {"encoding": 7}


def test_shared_work_asked_by_a_click_first_is_queued_as_a_click():
    compute = ComputeThread(max_wait={})
    work = SharedWork(compute)
    gate = blocked(compute)
    with work.asking("image", Priority.CLICK), work.asking("image", Priority.BACKGROUND):
        done = []
        runner = threading.Thread(target=lambda: done.append(work.run("image", lambda: 1)))
        runner.start()
        wait_until(lambda: compute.queued()[Priority.CLICK] == 1)
        gate.set()
        runner.join(30)
    assert done == [1]
    assert work.run("other", lambda: 2) == 2  # nobody asking: background
    compute.close()


def wait_until(condition, seconds: float = 30) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_auto_runs_in_slices_on_the_compute_thread_and_a_click_goes_between_them(
    tmp_path, monkeypatch
):
    """/auto's work (`suggestions.propose`): every slice a JOB call on the compute thread, with
    progress before each; a click queued while a point batch waits runs before that batch."""
    import hashlib

    from segany.server import suggestions
    from segany.server.inference import ModelService, StoredImage
    from segany.server.settings import ServerSettings
    from server_helpers import scene_png

    monkeypatch.setattr(suggestions, "AUTO_POINTS_PER_BATCH", 256)  # 4 point batches
    service = ModelService(ServerSettings(data_dir=tmp_path / "data"))
    compute = service.compute
    compute.max_wait = {}  # strict priorities: a slow machine must not make the batch overdue
    data = scene_png(0)
    (tmp_path / "scene.png").write_bytes(data)
    image = StoredImage(tmp_path / "scene.png", hashlib.sha256(data).hexdigest(), 128, 96)
    events, steps, threads = [], [], set()
    original = compute.run_at

    def run_at(priority, function, *args, **kwargs):
        assert priority == Priority.JOB

        def slice_():
            threads.add(threading.get_ident())
            events.append("slice")
            return function(*args, **kwargs)

        return original(priority, slice_)

    monkeypatch.setattr(compute, "run_at", run_at)

    def on_step(done: int, total: int) -> None:
        steps.append((done, total))
        if done == 1:  # the encoder pass ran; the first point batch comes next
            gate = blocked(compute)

            def click() -> None:
                wait_until(lambda: compute.queued()[Priority.JOB] == 1)  # the batch waits
                compute.submit(Priority.CLICK, events.append, "click")
                gate.set()

            threading.Thread(target=click).start()

    masks = suggestions.propose(service, image, [], on_step)
    compute_thread = compute.run(threading.get_ident)
    service.close()
    assert masks and {"rle", "polygons", "score", "stability"} <= set(masks[0])
    total = 1 + 4 + 1 + 1  # encoder pass, point batches, the crop's merge, the records
    assert steps == [(n, total) for n in range(total + 1)]
    # The encoder pass, then the click that arrived while the first batch waited, then batches.
    assert events == ["slice", "click"] + ["slice"] * (total - 1)
    assert threads == {compute_thread}
