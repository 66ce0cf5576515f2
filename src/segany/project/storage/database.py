"""Connecting to the project database (SQLite or PostgreSQL) and migrating it to the schema.

SQLite is the default, one file in the data directory; several server worker processes share
it, so every connection runs in WAL mode (readers never block the writer) with a busy timeout
(a writer waits for another instead of failing) and synchronous=FULL (a commit is on disk
before it returns, so an acknowledged annotation survives a crash or power loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from segany.errors import ConfigError

# How long a SQLite writer waits for another process's write to finish before it gives up.
DEFAULT_BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Database:
    """An engine and the session factory bound to it.

    Sessions do not expire objects on commit, so the rows a repository function returns stay
    readable after it committed (and after the session closed).
    """

    url: URL
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is a SQLite file (else PostgreSQL)."""
        return self.url.get_backend_name() == "sqlite"

    def session(self) -> Session:
        """A new session; use it as a context manager (``with db.session() as s: ...``)."""
        return self.sessions()

    def dispose(self) -> None:
        """Close every pooled connection (at shutdown, or in a freshly forked worker)."""
        self.engine.dispose()


def sqlite_url(path: str | Path) -> str:
    """The URL of the SQLite database file at ``path``."""
    return f"sqlite:///{Path(path)}"


def normalize_url(url: str | URL) -> URL:
    """A database URL with the driver segany uses: ``postgresql://`` (and Heroku's
    ``postgres://``) become ``postgresql+psycopg://``; SQLite URLs are kept.

    Raises ConfigError for an unparsable URL or another database than SQLite or PostgreSQL.
    """
    text = str(url) if isinstance(url, URL) else url
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        parsed = make_url(text)
    except ArgumentError as error:
        raise ConfigError(
            f"cannot parse the database URL {text!r}; use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/NAME"
        ) from error
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database {backend!r} is not supported; use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/NAME"
        )
    return parsed


def _on_sqlite_connect(busy_timeout_s: float):
    """A `connect` listener that sets the pragmas every SQLite connection needs."""

    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            # WAL is a property of the file, but setting it on every connection also covers a
            # file that a tool or an older version created in rollback-journal mode.
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            # Off by default in SQLite: without it ON DELETE CASCADE / SET NULL do nothing.
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return set_pragmas


def create_database(
    url: str | URL, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S, echo: bool = False
) -> Database:
    """Open (lazily: no connection is made yet) the database at ``url``.

    ``url`` is ``sqlite:///PATH`` (the server uses ``sqlite:///DATA_DIR/segany.db``; the folder
    is created if missing) or ``postgresql://USER[:PASSWORD]@HOST[:PORT]/NAME``, driven by
    psycopg 3. It does not create or migrate the schema: call `upgrade` once at startup.
    A server that forks workers should create its Database in each worker, after the fork.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed, echo=echo, pool_pre_ping=not _is_sqlite(parsed))
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"the driver for {parsed.drivername} is not installed ({error.name}); "
            "pip install 'segany[server]'"
        ) from error
    if _is_sqlite(parsed):
        event.listen(engine, "connect", _on_sqlite_connect(busy_timeout_s))
    return Database(parsed, engine, sessionmaker(engine, expire_on_commit=False))


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"
