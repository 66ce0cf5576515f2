"""Wall-clock timing: of any call (the benchmarks use it) and of a model's image encoding, the
one row of issue 13's yardstick that is a speed (`segany eval` prints it)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

ENCODING_SIZE = (480, 640)  # (H, W) of the image timed: a 640 x 480 photo


def time_calls(fn: Callable[[], object], repeats: int, device: str = "cpu") -> list[float]:
    """Seconds taken by each of `repeats` calls of `fn`; on a CUDA device each call is timed
    to the end of the GPU work it queued."""
    cuda = torch.device(device).type == "cuda"
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def encoding_milliseconds(model: torch.nn.Module, repeats: int = 5) -> float:
    """Median milliseconds of `SamPredictor.set_image` (resize, normalise, image encoder) on a
    640 x 480 RGB image, after one warm-up call, with torch's current thread count."""
    from segany.predictor import SamPredictor

    height, width = ENCODING_SIZE
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    image = np.stack([rows + 0 * cols, cols + 0 * rows, (rows + cols) / 2], axis=-1)
    image = image.astype(np.uint8)  # (H, W, 3): a smooth gradient; the content does not matter
    predictor = SamPredictor(model)
    predictor.set_image(image)  # warm-up: allocations, kernel choice
    seconds = time_calls(lambda: predictor.set_image(image), repeats, str(model.device))
    return 1000 * statistics.median(seconds)
