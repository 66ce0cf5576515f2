from __future__ import annotations

import os
import random
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from postgres import postgres_server  # noqa: E402,F401  (fixture for every test module)
from reference_models import save_reference  # noqa: E402

# The CI machine has 2 cores; keep results and timings comparable run to run.
torch.set_num_threads(2)
# The commands download a model's official checkpoint on first use; no test reaches the
# internet for one (tests of that download use a local mirror and unset this).
os.environ["SEGANY_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _seeded_global_rngs():
    """Every test starts from the same global RNG state, so a test that draws random weights or
    inputs without its own generator gets the same draw in every run and in any order (a result
    that fails does so every time, not one CI run in a hundred)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def unused_local_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS picked it free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: smooth gradients plus a few filled discs and rectangles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [
            255 * xx / max(width - 1, 1),
            255 * yy / max(height - 1, 1),
            127 + 60 * np.sin(xx / 17.0) * np.cos(yy / 23.0),
        ],
        axis=-1,
    )
    for _ in range(6):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.05, 0.25) * min(height, width) + 1
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(0, 255, 3)
    noise = rng.normal(0, 8, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def reference_checkpoint(tmp_path_factory):
    """factory(name) -> (reference model, checkpoint path), built once per session."""
    cache: dict[str, tuple[torch.nn.Module, Path]] = {}

    def make(name: str):
        if name not in cache:
            path = tmp_path_factory.mktemp("ckpt") / f"{name}.pth"
            cache[name] = (save_reference(name, path), path)
        return cache[name]

    return make


# Last: server_helpers imports this module's helpers above.
from server_fixtures import db_url, serve  # noqa: E402,F401  (API tests: SQLite and PostgreSQL)
