"""Bringing a project database to the current schema with the package's Alembic migrations.

No alembic.ini is needed: the Alembic configuration is built here, pointing at the
``migrations`` folder next to this file. Every server worker calls `upgrade` at startup, so
concurrent runs are serialised: on SQLite by a file lock next to the database (and the
migration runs in one BEGIN IMMEDIATE transaction, so a crash leaves no half-made schema), on
PostgreSQL by a transaction-scoped advisory lock (its DDL is transactional anyway).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock, Timeout
from sqlalchemy import Connection, func, select
from sqlalchemy.engine import URL

from segany.errors import ConflictError
from segany.project.storage.database import Database, create_database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Any fixed 64-bit number: PostgreSQL advisory locks are integers, per database, shared with any
# other application using the same database; a distinctive one avoids a clash.
_PG_LOCK_KEY = 0x5E6A_5E7A_0000_0012

# How long `upgrade` waits for another process's migration before giving up.
LOCK_TIMEOUT_S = 300.0


def migration_config(connection: Connection | None = None, url: str | URL | None = None) -> Config:
    """An Alembic Config for the package's migrations, bound to ``connection`` (used as is, in
    its transaction) or, for offline SQL and `alembic.command.revision`, to ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation would read a '%' in a password as a reference.
        text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        config.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision of the package's migrations."""
    head = ScriptDirectory.from_config(migration_config()).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def current_revision(database: str | URL | Database) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with _opened(database) as db, db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(database: str | URL | Database, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default the newest); a no-op when it is there.

    Safe to call from several processes at once: they run one after another, and all but the
    first find nothing left to do. Raises ConflictError when another process holds the lock for
    over LOCK_TIMEOUT_S seconds.
    """
    with _opened(database) as db:
        _run(db, lambda config: command.upgrade(config, revision))


def downgrade(database: str | URL | Database, revision: str) -> None:
    """Migrate the database down to ``revision`` ("base": drop every table of the schema)."""
    with _opened(database) as db:
        _run(db, lambda config: command.downgrade(config, revision))


@contextlib.contextmanager
def _opened(database: str | URL | Database) -> Iterator[Database]:
    """The given Database, or one opened from a URL for the call and closed after it."""
    if isinstance(database, Database):
        yield database
        return
    db = create_database(database)
    try:
        yield db
    finally:
        db.dispose()


def _run(db: Database, migrate: Callable[[Config], None]) -> None:
    with _file_lock(db), db.engine.connect() as connection:
        if db.is_sqlite:
            # pysqlite would only BEGIN before the first INSERT, leaving the DDL before it in
            # autocommit; an explicit IMMEDIATE transaction makes the run atomic and also takes
            # SQLite's write lock before Alembic reads the current revision.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        migrate(migration_config(connection))
        connection.commit()  # also releases the advisory lock


@contextlib.contextmanager
def _file_lock(db: Database) -> Iterator[None]:
    """A lock file next to a SQLite database (nothing for PostgreSQL or an in-memory one).

    It also covers the first connection, which creates the file and switches it to WAL.
    """
    path = db.url.database
    if not db.is_sqlite or path in (None, "", ":memory:"):
        yield
        return
    lock_path = Path(path).expanduser().with_name(Path(path).name + ".migrate.lock")
    lock = FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout as error:
        raise ConflictError(
            f"another process has been migrating {path} for over {LOCK_TIMEOUT_S:.0f} s "
            f"(it holds {lock_path}); stop it, or wait and start again"
        ) from error
    try:
        yield
    finally:
        lock.release()
