"""the most units of a product a patient may take in a day

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 13:00:00

``products.max_units_per_day`` (optional, at least 1): the clinical screening
warns when a prescription or fill works out at more units a day than this
(quantity / days supply), on top of the per-ingredient daily maxima it ships.
SQLite: the audit triggers of ``products`` list its columns, so they are made
again with the new one.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("name", "strength", "dosage_form", "route", "ndc", "gtin", "manufacturer",
           "category_id", "storage", "schedule", "unit", "pack_size", "reorder_level",
           "reorder_quantity", "unit_price", "max_units_per_day", "active", "id", "created_at",
           "updated_at", "updated_by", "version")


def upgrade() -> None:
    op.execute("ALTER TABLE products ADD COLUMN max_units_per_day INTEGER"
               " CONSTRAINT ck_products_max_units_per_day_positive"
               " CHECK (max_units_per_day IS NULL OR max_units_per_day >= 1)")
    if op.get_bind().dialect.name != "postgresql":
        sqlite_triggers.audit("products", COLUMNS)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name != "postgresql"
    if sqlite:
        for action in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS products_audit_{action}")
    with op.batch_alter_table("products") as b:
        b.drop_column("max_units_per_day")
    if sqlite:
        sqlite_triggers.audit("products", tuple(c for c in COLUMNS if c != "max_units_per_day"))
