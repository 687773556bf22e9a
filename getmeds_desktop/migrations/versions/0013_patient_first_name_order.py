"""patients by first name, in the patient list's order

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 12:10:00

PostgreSQL: an index of active patients by first name and then the list's sort
key, so a search by first name ("john") reads, for each first name that starts
with the text, only the patients it shows, in order, instead of fetching and
sorting every patient with that first name (8,000 Johns at 800,000 patients).
SQLite is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "gx_patients_first_sort"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE INDEX {INDEX} ON patients ((lower(first_name) COLLATE \"C\"), "
        "(lower(last_name || ' ' || first_name) COLLATE \"C\"), id) WHERE active IS TRUE")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
