"""What the annotation server's tests (and benchmarks/bench_server.py) share: small image files
made on the spot, and the real `segany serve` as a subprocess on loopback."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from conftest import synthetic_image, unused_local_port

ROOT = Path(__file__).resolve().parents[1]
# (x, y) of a point on the object of the sample scene (segany.data.sample_scene), 640 x 480.
SAMPLE_POINT = (330, 190)
# TestClients' base URL: a Host the server answers to (TestClient's own "testserver" is a name
# the server does not know, refused like any other: segany.server.host_origin).
LOCAL_URL = "http://127.0.0.1"


def png_bytes(picture: Image.Image | np.ndarray) -> bytes:
    """The PNG file of an (H, W, 3) uint8 array or a PIL image."""
    if isinstance(picture, np.ndarray):
        picture = Image.fromarray(picture)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def scene_png(seed: int, height: int = 96, width: int = 128) -> bytes:
    """A small synthetic scene (gradients and filled discs) as PNG; one per seed."""
    return png_bytes(synthetic_image(height, width, seed=seed))


def sample_png() -> bytes:
    """The README's sample scene (640 x 480) as PNG: the shipped weights segment its object."""
    from segany.data.sample_scene import make_sample

    return png_bytes(make_sample())


def subprocess_env() -> dict[str, str]:
    """This checkout's sources, one torch thread (the CI machine has 2 cores), no token."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    env.pop("SEGANY_TOKEN", None)
    return env


def segany_command(*args: str) -> list[str]:
    """The `segany` command line of this checkout's sources and interpreter."""
    return [sys.executable, "-m", "segany.cli.main", *args]


class LiveServer:
    """`segany serve ARGS --data DATA --port PORT` in its own process group, so that a kill
    reaches its uvicorn workers too. Use as a context manager; `kill()` is `kill -9`.
    env: variables to set (None: to unset) over `subprocess_env()`'s."""

    def __init__(
        self,
        data: Path,
        *args: str,
        db: str | None = None,
        log: Path | None = None,
        timeout: float = 120,
        env: dict[str, str | None] | None = None,
    ):
        self.data = Path(data)
        self.env = subprocess_env()
        for name, value in (env or {}).items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        self.timeout = timeout
        self.args = list(args) + ([] if db is None else ["--db", db])
        self.log = Path(log) if log is not None else self.data.parent / f"{self.data.name}.log"
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 120), **kwargs)

    def start(self) -> LiveServer:
        """Start the server and wait until /health answers; RuntimeError with the server's log
        when it exits first or takes longer than `timeout` seconds."""
        timeout = self.timeout
        self.port = unused_local_port()
        command = segany_command(
            "serve", "--data", str(self.data), "--port", str(self.port), *self.args
        )
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"segany serve exited with {code}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"segany serve did not answer /health in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group (the server and its workers) and reap the server."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL what is left after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGTERM, wait=30)
        self._signal(signal.SIGKILL)

    def _signal(self, number: int, wait: float = 60) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            pass  # the group is gone already
        try:
            self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()
