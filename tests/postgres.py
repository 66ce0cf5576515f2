"""A real, throw-away PostgreSQL server for the tests, one per test session.

Import the fixture into a test module (or conftest.py) with
``from postgres import postgres_server  # noqa: F401``. It FAILS, never skips, when PostgreSQL
is missing: a skipped backend would let a broken PostgreSQL path pass CI unnoticed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_HINT = (
    "PostgreSQL is not installed, and the storage tests need a real server: install the Debian "
    "package `postgresql` (apt-get install -y postgresql)"
)


def postgres_bin_dir() -> Path | None:
    """The bin folder of the newest PostgreSQL under /usr/lib/postgresql (Debian's layout), or
    of the one whose pg_ctl is on PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
    )
    for folder in reversed(candidates):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    on_path = shutil.which("pg_ctl")
    if on_path and (Path(on_path).parent / "initdb").is_file():
        return Path(on_path).parent
    return None


class PostgresServer:
    """A running server on 127.0.0.1 with trust authentication, superuser ``postgres``."""

    def __init__(self, port: int, socket_dir: Path) -> None:
        self.port = port
        self.socket_dir = socket_dir
        self._names = itertools.count()

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its URL: each test gets its own."""
        import psycopg  # the server extra's driver; imported here so collection never needs it

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"{what} failed ({' '.join(command)}):\n{done.stdout}\n{done.stderr}", pytrace=False
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start PostgreSQL in a temporary folder, yield it, stop it and delete the folder."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    # initdb refuses to run as root: as root, run the server as the `postgres` user the Debian
    # package creates, in a folder it owns (pytest's own tmp folders are root-only, 0700).
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="segany-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, user="postgres", group="postgres")
    data, log = root / "data", root / "server.log"
    started = False
    try:
        _run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust",
              "-U", "postgres", "-E", "UTF8"], "initdb")  # fmt: skip
        # conftest imports this module's fixture, so its helper is imported only once it ran.
        from conftest import unused_local_port

        for _attempt in range(3):  # another process may take the free port first
            port = unused_local_port()
            options = (
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
                "-c max_connections=50 -c shared_buffers=16MB"
            )
            start = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log),
                     "-o", options, "-w", "-t", "60", "start"]  # fmt: skip
            done = subprocess.run(start, capture_output=True, text=True, timeout=120)
            started = done.returncode == 0
            if started:
                break
        if not started:
            server_log = log.read_text(errors="replace") if log.is_file() else ""
            pytest.fail(f"pg_ctl start failed:\n{done.stderr}\n{server_log}", pytrace=False)
        yield PostgresServer(port, root)
    finally:
        if started:
            stop = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
            subprocess.run(stop, capture_output=True, timeout=120, check=False)
        shutil.rmtree(root, ignore_errors=True)
