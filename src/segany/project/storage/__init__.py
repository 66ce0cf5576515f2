"""The annotation server's storage: SQLite or PostgreSQL through SQLAlchemy, schema by Alembic.

    db = create_database("sqlite:///DATA_DIR/segany.db")
    upgrade(db)                        # at startup, in every worker: serialised, idempotent
    with db.session() as session:
        image = repository.add_image(session, file_name=..., ...)

Needs the ``server`` extra (SQLAlchemy, Alembic, psycopg for PostgreSQL).
"""

try:
    import alembic  # noqa: F401
    import sqlalchemy  # noqa: F401
except ModuleNotFoundError as error:
    raise ModuleNotFoundError(
        f"segany.project.storage needs {error.name}: pip install 'segany[server]'",
        name=error.name,
    ) from error

from segany.project.storage import repository
from segany.project.storage.database import Database, create_database, normalize_url, sqlite_url
from segany.project.storage.migrate import current_revision, downgrade, head_revision, upgrade
from segany.project.storage.models import SOURCES, Annotation, Base, Category, Image
from segany.project.storage.sequence_models import (
    Sequence,
    SequenceMask,
    SequenceObject,
    SequencePrompt,
)

__all__ = [
    "SOURCES",
    "Annotation",
    "Base",
    "Category",
    "Database",
    "Image",
    "Sequence",
    "SequenceMask",
    "SequenceObject",
    "SequencePrompt",
    "create_database",
    "current_revision",
    "downgrade",
    "head_revision",
    "normalize_url",
    "repository",
    "sqlite_url",
    "upgrade",
]
