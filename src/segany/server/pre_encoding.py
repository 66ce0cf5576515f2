"""Pre-encoding: a background thread that computes the embeddings of the project's images in
the annotator's order, so that the first click on an image is already a cache hit.

Every worker process runs one; the embedding cache computes each image once across processes
(its per-key file lock), so two workers never encode the same image twice. A round stops once
the images ahead fill half of what the cache keeps (`--disk-cache-size`): encoding more would
push out the embeddings of the images just ahead of the person, round after round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from segany.compute_thread import Priority
from segany.server.inference import ModelService, StoredImage

log = logging.getLogger("segany.server")
IDLE_SECONDS = 2.0


class PreEncoder:
    """`wake()` after an upload or import; `focus(path)` when a person opens an image, so the
    images after it in the list are encoded first ("next images first"); `stop()` at
    shutdown. `images()` lists the project's images in order each round (a fresh read)."""

    def __init__(self, service: ModelService, images: Callable[[], Iterable[StoredImage]]) -> None:
        self.service = service
        self.images = images
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="segany-pre-encoder", daemon=True)
        self._failed: set[str] = set()  # keys whose image could not be encoded: not retried
        self._focus: str | None = None  # sha256 of the image a person has open
        self._embedding_bytes = 0  # of one embedding of this model, once one is seen

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def focus(self, image: StoredImage) -> None:
        self._focus = image.sha256
        self._wake.set()

    def _ordered(self, images: list[StoredImage]) -> list[StoredImage]:
        """The list rotated to start just after the focused image (then wrapping around)."""
        at = next((i for i, image in enumerate(images) if image.sha256 == self._focus), None)
        return images if at is None else images[at + 1 :] + images[: at + 1]

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            did_work = False
            try:
                images = self._ordered(list(self.images()))
            except Exception:  # the database busy or gone for a moment: try again later
                log.exception("pre-encoding could not list the images")
                images = []
            room = self.service.cache.max_bytes
            ahead = 0  # bytes of the embeddings of the images walked, which the cache must keep
            for image in images:
                if self._stop.is_set():
                    return
                if room is not None and ahead + self._embedding_bytes > room // 2:
                    break
                key = self.service.key(image)
                if key in self._failed:
                    continue
                ahead += self._embedding_bytes
                if self.service.is_encoded(image):
                    continue
                try:
                    embedding, _ = self.service.embedding(image, Priority.BACKGROUND)
                    self._embedding_bytes = embedding.nbytes
                    did_work = True
                    if self._wake.is_set():  # a new focus or upload: re-plan the order
                        break
                except Exception:  # a broken or vanished file must not stop the others
                    log.exception("pre-encoding %s failed; a click on it will retry", image.path)
                    self._failed.add(key)
            if not did_work:
                self._wake.wait(IDLE_SECONDS)
