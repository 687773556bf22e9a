"""every label printed, and why a label was printed again

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 14:00:00

``label_prints``: one row per printed label of a dispense (who, when, whether
it was a reprint, and the reason a reprint needs). Permanent rows, like the
dispenses they belong to: nobody changes or removes them. Everybody signed in
reads them; pharmacists and administrators print. On PostgreSQL a staff
login's row must name the login's own staff member (getmeds_guard_label_prints).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("id", "dispense_id", "printed_by", "printed_at", "reprint", "reason")

GUARD = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_label_prints() RETURNS trigger
LANGUAGE plpgsql @path AS $body$
DECLARE
    me uuid;
BEGIN
    SELECT st.id INTO me FROM @s.staff AS st WHERE st.username = session_user AND st.active;
    IF NEW.printed_by IS DISTINCT FROM me THEN
        RAISE EXCEPTION '%.printed_by must be the signed-in staff member''s own id',
            TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $body$
"""


def _m0007() -> Any:
    return importlib.import_module("getmeds_desktop.migrations.versions.0007_database_boundary")


def upgrade() -> None:
    op.create_table(
        "label_prints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("dispense_id", sa.Uuid(), nullable=False),
        sa.Column("printed_by", sa.Uuid(), nullable=False),
        sa.Column("printed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reprint", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.CheckConstraint("NOT reprint OR length(reason) > 0",
                           name=op.f("ck_label_prints_reprint_reason")),
        sa.ForeignKeyConstraint(["dispense_id"], ["dispenses.id"],
                                name=op.f("fk_label_prints_dispense_id_dispenses"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["printed_by"], ["staff.id"],
                                name=op.f("fk_label_prints_printed_by_staff"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_prints")),
    )
    op.create_index("ix_label_prints_dispense_id", "label_prints", ["dispense_id"])
    if op.get_bind().dialect.name == "postgresql":
        m = _m0007()
        n = m._names()
        for action, ref in (("insert", "NEW TABLE AS new_rows"),
                            ("delete", "OLD TABLE AS old_rows")):
            op.execute(f"CREATE TRIGGER label_prints_audit_{action} AFTER {action.upper()} ON"
                       f" label_prints REFERENCING {ref} FOR EACH STATEMENT"
                       " EXECUTE FUNCTION getmeds_audit('id')")
        op.execute("CREATE TRIGGER label_prints_permanent_row BEFORE UPDATE OR DELETE ON"
                   " label_prints FOR EACH ROW EXECUTE FUNCTION getmeds_forbid_change()")
        op.execute("CREATE TRIGGER label_prints_permanent_truncate BEFORE TRUNCATE ON"
                   " label_prints FOR EACH STATEMENT EXECUTE FUNCTION getmeds_forbid_change()")
        op.execute(n.sql(GUARD))
        op.execute(n.sql("CREATE TRIGGER label_prints_identity BEFORE INSERT ON"
                         f" @s.label_prints FOR EACH ROW WHEN ({m.NOT_TRUSTED})"
                         " EXECUTE FUNCTION @s.getmeds_guard_label_prints()"))
        for group in ("admin", "pharmacist", "clerk", "doctor", "backup"):
            role = f"{n.prefix}{group}"
            if op.get_bind().execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                     {"r": role}).scalar():
                op.execute(f'GRANT SELECT ON label_prints TO "{role}"')
        for group in ("admin", "pharmacist"):
            op.execute(f'GRANT INSERT ON label_prints TO "{n.prefix}{group}"')
    else:
        sqlite_triggers.permanent("label_prints")
        sqlite_triggers.audit("label_prints", COLUMNS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        n = _m0007()._names()
        op.execute("DROP TABLE label_prints")
        op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".getmeds_guard_label_prints()')
        return
    for name in ("no_update", "no_delete", "audit_insert", "audit_update", "audit_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS label_prints_{name}")
    op.drop_index("ix_label_prints_dispense_id", table_name="label_prints")
    op.drop_table("label_prints")
