"""search and sort indexes for the big lists

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 21:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Expression indexes ("gx_" = managed here, not by the ORM metadata).
BOTH = {
    "gx_products_sort_category": "products (category_id, id)",
    "gx_prescriptions_created": "prescriptions (created_at, id)",
}
POSTGRESQL = {
    # byte order whatever the database collation: a name prefix is a range scan
    "gx_patients_sort_name": (
        "patients ((lower(last_name || ' ' || first_name) COLLATE \"C\"), id)"),
    "gx_patients_last_prefix": "patients (lower(last_name) text_pattern_ops)",
    "gx_patients_first_prefix": "patients (lower(first_name) text_pattern_ops)",
    "gx_patients_phone_digits_trgm": (
        "patients USING gin ((regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g'))"
        " gin_trgm_ops)"),
    "gx_products_ndc_prefix": "products (ndc text_pattern_ops)",
    "gx_products_name_lower_prefix": "products (lower(name) text_pattern_ops)",
    "gx_prescribers_last_prefix": "prescribers (lower(last_name) text_pattern_ops)",
}
SQLITE = {
    "gx_patients_sort_name": "patients (lower(last_name || ' ' || first_name), id)",
    "gx_patients_last_lower": "patients (lower(last_name))",
    "gx_patients_first_lower": "patients (lower(first_name))",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    extra = POSTGRESQL if dialect == "postgresql" else SQLITE
    for name, spec in {**BOTH, **extra}.items():
        op.execute(f"CREATE INDEX {name} ON {spec}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    extra = POSTGRESQL if dialect == "postgresql" else SQLITE
    for name in {**BOTH, **extra}:
        op.execute(f"DROP INDEX IF EXISTS {name}")
