"""a fill's time counts from when its transaction reached the server

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-02 02:40:00

``getmeds_fill_unchanged`` (0025) times a fill as the workstation's time when
it sent the fill plus how long the fill waited on the server. It measured the
wait from the start of its own statement, which leaves out the statements sent
before it in the same batch (BEGIN, the actor): on a busy server those took
milliseconds, and a fill could be timed before the moment another workstation
let go of the stock it waited for. It now measures from the transaction's start
(``transaction_timestamp()``, the BEGIN of the batch), which the workstation's
time was taken just before.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "pg_catalog.clock_timestamp() - pg_catalog.statement_timestamp()"
NEW = "pg_catalog.clock_timestamp() - pg_catalog.transaction_timestamp()"


def _m(name: str) -> Any:
    return importlib.import_module(f"getmeds_desktop.migrations.versions.{name}")


def _define(body: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite times a fill when it holds the write lock already
    n = _m("0007_database_boundary")._names()
    op.execute(n.sql(body))  # CREATE OR REPLACE: its grants stay


def upgrade() -> None:
    body: str = _m("0025_fill_unchanged").FILL_UNCHANGED
    if body.count(OLD) != 1:
        raise RuntimeError("getmeds_fill_unchanged is not as revision 0025 made it")
    _define(body.replace(OLD, NEW))


def downgrade() -> None:
    _define(_m("0025_fill_unchanged").FILL_UNCHANGED)
