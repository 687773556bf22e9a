"""history brought over from the GetMeds web app

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 00:00:00

Free-text prescriptions and dispenses of the web app this product replaces:
permanent rows beside the real prescriptions and dispenses (they never move
stock). Everyone who reads patients reads them; only an administrator (the
import) writes them; nobody changes or removes them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("legacy_prescriptions", "legacy_dispenses")


def _prefix() -> str:
    prefix = op.get_bind().execute(sa.text("SELECT role_prefix FROM db_security")).scalar()
    if not prefix or not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", prefix):
        raise RuntimeError(f"unexpected role prefix {prefix!r}")
    return prefix


def upgrade() -> None:
    op.create_table(
        "legacy_prescriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_ref", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("prescribed_on", sa.Date(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="RESTRICT",
                                name="fk_legacy_prescriptions_patient_id_patients"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="RESTRICT",
                                name="fk_legacy_prescriptions_product_id_products"),
        sa.PrimaryKeyConstraint("id", name="pk_legacy_prescriptions"),
        sa.UniqueConstraint("source_ref", name="uq_legacy_prescriptions_source_ref"),
    )
    op.create_index("ix_legacy_prescriptions_patient_id", "legacy_prescriptions",
                    ["patient_id"])
    op.create_table(
        "legacy_dispenses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_ref", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("drug_text", sa.String(300), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=True),
        sa.Column("dispensed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="RESTRICT",
                                name="fk_legacy_dispenses_patient_id_patients"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="RESTRICT",
                                name="fk_legacy_dispenses_product_id_products"),
        sa.PrimaryKeyConstraint("id", name="pk_legacy_dispenses"),
        sa.UniqueConstraint("source_ref", name="uq_legacy_dispenses_source_ref"),
    )
    op.create_index("ix_legacy_dispenses_patient_id", "legacy_dispenses", ["patient_id"])

    if op.get_bind().dialect.name == "postgresql":
        prefix = _prefix()
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_permanent_row BEFORE UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION getmeds_forbid_change()")
            op.execute(
                f"CREATE TRIGGER {table}_permanent_truncate BEFORE TRUNCATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION getmeds_forbid_change()")
            op.execute(f'GRANT SELECT, INSERT ON {table} TO "{prefix}admin"')
            for group in ("pharmacist", "clerk", "doctor", "backup"):
                op.execute(f'GRANT SELECT ON {table} TO "{prefix}{group}"')
    else:
        for table in TABLES:
            for action in ("update", "delete"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action} BEFORE {action.upper()} ON {table}"
                    f" BEGIN SELECT RAISE(ABORT, 'rows of {table} are permanent records and"
                    " cannot be changed or removed'); END")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
