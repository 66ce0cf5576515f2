"""What the sequence tests share: tiny videos written with PyAV, a stand-in tracker whose answers
are known exactly (for the server's mechanics: storage, jobs, cancel, export), and API calls."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
from pycocotools import mask as mask_utils

from segany.sequences.base import FrameSequence
from segany.track.base import FrameResult, ObjectPrompt, Tracker, TrackingSession

FRAMES, HEIGHT, WIDTH = 8, 120, 160
SQUARE = 30  # side of the moving square, pixels
STEP = 8  # the square moves this many pixels right per frame


def square_frames(count: int = FRAMES) -> np.ndarray:
    """(T, H, W, 3) uint8: a bright square on a dark gradient ground, moving right by STEP px a
    frame from (20, 40) (x, y of its top-left corner)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    ground = np.stack([30 + xx // 8, 40 + yy // 6, 70 - xx // 10], axis=-1).astype(np.uint8)
    frames = np.repeat(ground[None], count, axis=0)
    for t in range(count):
        x0 = 20 + STEP * t
        frames[t, 40 : 40 + SQUARE, x0 : x0 + SQUARE] = (230, 200, 40)
    return frames


def square_mask(frame: int) -> np.ndarray:
    """(H, W) bool: where the square is on `frame`."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    x0 = 20 + STEP * frame
    mask[40 : 40 + SQUARE, x0 : x0 + SQUARE] = True
    return mask


def mp4_bytes(frames: np.ndarray, fps: int = 10) -> bytes:
    """The frames (T, H, W, 3) uint8 as an MPEG-4 file (PyAV, near-lossless quality)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"}
        for picture in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def write_mp4(path: Path, frames: np.ndarray) -> Path:
    path.write_bytes(mp4_bytes(frames))
    return path


def decode(rle: dict) -> np.ndarray:
    """(H, W) bool of an API RLE."""
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def upload_video(client, frames: np.ndarray | None = None, name: str = "clip.mp4") -> dict:
    data = mp4_bytes(square_frames() if frames is None else frames)
    response = client.post("/api/sequences", files={"file": (name, data, "video/mp4")})
    assert response.status_code in (200, 201), response.text
    return response.json()


def wait_job(client, job_id: str, timeout: float = 60) -> dict:
    """Poll the propagation until it ends; its last view."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/track/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout} s"
        time.sleep(0.05)


# ---- a stand-in tracker -----------------------------------------------------------------------


def stamp(prompt: ObjectPrompt, height: int, width: int) -> np.ndarray:
    """The stand-in's mask for a prompt: its box filled, else a 21 x 21 square around the
    first include point."""
    mask = np.zeros((height, width), dtype=bool)
    if prompt.box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in prompt.box)
        mask[y0:y1, x0:x1] = True
    else:
        x, y = (int(v) for v in prompt.points[prompt.points[:, 2] == 1][0, :2])
        mask[max(0, y - 10) : y + 11, max(0, x - 10) : x + 11] = True
    return mask


class StampSession(TrackingSession):
    """Carries each object's mask from its nearest prompted frame before (forward) or after
    (backward) a frame, moved STEP px right per frame: answers a test can predict exactly."""

    def __init__(self, sequence: FrameSequence, delay: float) -> None:
        self.sequence = sequence
        self.delay = delay
        self.prompted: dict[int, dict[int, np.ndarray]] = {}  # object -> frame -> mask

    def mask_at(self, object_id: int, frame: int) -> np.ndarray:
        frames = self.prompted[object_id]
        source = min(frames, key=lambda f: (abs(frame - f), f > frame))
        return np.roll(frames[source], STEP * (frame - source), axis=1)

    def result(self, frame: int) -> FrameResult:
        masks = {oid: self.mask_at(oid, frame) for oid in self.prompted}
        return FrameResult(frame, masks, {oid: 0.9 for oid in masks})

    def add_prompt(self, prompt: ObjectPrompt) -> FrameResult:
        self.sequence.check_index(prompt.frame)
        mask = stamp(prompt, self.sequence.height, self.sequence.width)
        self.prompted.setdefault(prompt.object_id, {})[prompt.frame] = mask
        return self.result(prompt.frame)

    def propagate(self, start=None, reverse=False, max_frames=None) -> Iterator[FrameResult]:
        order = range(start, -1, -1) if reverse else range(start, len(self.sequence))
        for count, frame in enumerate(order):
            if max_frames is not None and count >= max_frames:
                return
            time.sleep(self.delay)
            yield self.result(frame)

    def remove_object(self, object_id: int) -> None:
        self.prompted.pop(object_id, None)


class StampTracker(Tracker):
    name = "stamp"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def open(self, sequence: FrameSequence) -> TrackingSession:
        return StampSession(sequence, self.delay)
