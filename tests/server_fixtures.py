"""The fixtures of the annotation server's API tests, shared by every test module through
conftest.py: each test runs on SQLite and on a throw-away PostgreSQL database."""

from __future__ import annotations

import contextlib

import pytest
from fastapi.testclient import TestClient

# The module, not its names: server_helpers imports conftest, which imports this module.
import server_helpers
from segany.server.app import create_app
from segany.server.settings import ServerSettings


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str | None:
    """None: the default SQLite file in the data dir; else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def serve(db_url, tmp_path):
    """serve(**settings) -> a TestClient of a started app (lifespan run) on this test's data dir
    and database; pre-encoding off unless asked for, so that `cached` is predictable."""
    with contextlib.ExitStack() as stack:

        def make(**settings) -> TestClient:
            settings.setdefault("pre_encode", False)
            app = create_app(ServerSettings(data_dir=tmp_path / "data", db_url=db_url, **settings))
            return stack.enter_context(TestClient(app, base_url=server_helpers.LOCAL_URL))

        yield make
