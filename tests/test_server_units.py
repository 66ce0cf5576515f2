"""Server pieces without a server: the pre-encoding queue (order, focus, a broken file skipped)
and the de-duplication of automatic suggestions."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from segany.compute_thread import Priority
from segany.server.inference import StoredImage
from segany.server.pre_encoding import PreEncoder


class FakeService:
    """Records the order in which embeddings are asked for; image "bad" fails. Its cache keeps
    everything (no bound)."""

    cache = SimpleNamespace(max_bytes=None)

    def __init__(self) -> None:
        self.done: list[str] = []
        self.lock = threading.Lock()

    def key(self, image: StoredImage) -> str:
        return image.sha256

    def is_encoded(self, image: StoredImage) -> bool:
        return image.sha256 in self.done

    def embedding(self, image: StoredImage, priority: Priority) -> tuple[SimpleNamespace, bool]:
        assert priority == Priority.BACKGROUND  # pre-encoding never delays a click
        if image.sha256 == "bad":
            raise OSError("vanished")
        with self.lock:
            self.done.append(image.sha256)
        return SimpleNamespace(nbytes=64), False


def images(*names: str) -> list[StoredImage]:
    return [StoredImage(Path(f"/x/{n}.png"), n, 4, 4) for n in names]


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_encodes_every_image_in_order_and_skips_a_broken_one():
    service = FakeService()
    encoder = PreEncoder(service, lambda: images("a", "bad", "b", "c"))
    encoder.start()
    try:
        wait_for(lambda: len(service.done) == 3)
    finally:
        encoder.stop()
    assert service.done == ["a", "b", "c"]


def test_the_images_after_the_open_one_come_first():
    service = FakeService()
    listed = images("a", "b", "c", "d", "e")
    encoder = PreEncoder(service, lambda: listed)
    encoder.focus(listed[2])  # the person opened "c"
    assert [i.sha256 for i in encoder._ordered(listed)] == ["d", "e", "a", "b", "c"]
    encoder.start()
    try:
        wait_for(lambda: len(service.done) == 5)
    finally:
        encoder.stop()
    assert service.done[:2] == ["d", "e"]


def test_suggestions_drop_near_duplicates_and_what_is_annotated():
    import numpy as np

    from segany.formats.segmentation import to_coco_rle
    from segany.server.suggestions import distinct_masks

    def box(y0, y1, x0, x1):
        mask = np.zeros((40, 40), bool)
        mask[y0:y1, x0:x1] = True
        return to_coco_rle(mask)

    candidates = [box(0, 20, 0, 20), box(0, 20, 0, 19), box(25, 35, 25, 35), box(0, 10, 30, 40)]
    assert distinct_masks(candidates, []) == [0, 2, 3]  # 1 is 95 % of 0
    assert distinct_masks(candidates, [box(25, 35, 25, 36)]) == [0, 3]
