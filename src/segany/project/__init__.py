"""An annotation project on disk: its database (images, categories, annotations; SQLite or
PostgreSQL, migrated by Alembic), its image files, import and export. The annotation server
and the CLI (`segany import`, `segany export`) both work through `Project`; it holds no model."""
