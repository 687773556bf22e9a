"""Alembic environment: runs inside the package, so frozen builds can migrate.

``getmeds-admin db upgrade`` (and the embedded-database upgrade) pass an open
connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from alembic import context

from getmeds_desktop.models import Base

if TYPE_CHECKING:
    from alembic.runtime.environment import NameFilterType
    from sqlalchemy.engine import Connection
    from sqlalchemy.schema import SchemaItem

config = context.config
target_metadata = Base.metadata


def include_object(_obj: SchemaItem, name: str | None, _type: NameFilterType, _reflected: bool,
                   _compare_to: SchemaItem | None) -> bool:
    # Objects created by hand for one dialect (pg_trgm indexes, ...) carry the
    # "gx_" prefix and are not part of the ORM metadata.
    return not (name or "").startswith("gx_")


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    from getmeds_desktop.db import make_engine

    url = os.environ.get("GETMEDS_DATABASE_URL")
    if not url:
        raise SystemExit("Set GETMEDS_DATABASE_URL, or use 'getmeds-admin db upgrade'.")
    engine = make_engine(url)
    with engine.begin() as conn:
        run_with(conn)


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported.")
run_migrations_online()
