"""patients told about a recalled lot they received

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 16:00:00

``recall_notices``: one row per patient told about a recalled lot (who told
them, when, how, what came of it), against the fill that gave them the lot.
Permanent rows: nobody changes or removes them. On PostgreSQL everybody who
works with patients reads and writes them (administrators, pharmacists,
technicians, clerks), each row in the signed-in login's own name
(getmeds_guard_recall_notices: also for a recalled lot only, for a fill that
took stock from it, with something said, at the server's time).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("id", "lot_id", "dispense_id", "method", "outcome", "notified_by", "notified_at")
WRITERS = ("admin", "pharmacist", "technician", "clerk")

GUARD = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_recall_notices() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    me uuid;
BEGIN
    SELECT st.id INTO me FROM @s.staff AS st WHERE st.username = session_user AND st.active;
    IF NEW.notified_by IS DISTINCT FROM me THEN
        RAISE EXCEPTION '%.notified_by must be the signed-in staff member''s own id',
            TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM @s.stock_lots AS l
                    WHERE l.id = NEW.lot_id AND l.status = 'recalled') THEN
        RAISE EXCEPTION 'a recall notice is for a recalled lot'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'recall_notices_valid';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM @s.stock_movements AS m
                    WHERE m.dispense_id = NEW.dispense_id AND m.lot_id = NEW.lot_id
                      AND m.kind = 'dispense') THEN
        RAISE EXCEPTION 'a recall notice is for a fill that took stock from the lot'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'recall_notices_valid';
    END IF;
    IF pg_catalog.btrim(NEW.outcome) = '' THEN
        RAISE EXCEPTION 'a recall notice says what was said or agreed'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'recall_notices_valid';
    END IF;
    NEW.notified_at := pg_catalog.now();  -- the server's time, not the client's
    RETURN NEW;
END $body$
"""


def _m0007() -> Any:
    return importlib.import_module("getmeds_desktop.migrations.versions.0007_database_boundary")


def upgrade() -> None:
    op.create_table(
        "recall_notices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lot_id", sa.Uuid(), nullable=False),
        sa.Column("dispense_id", sa.Uuid(), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("outcome", sa.String(300), nullable=False),
        sa.Column("notified_by", sa.Uuid(), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("method IN ('phone', 'letter', 'in_person', 'email', 'other')",
                           name=op.f("ck_recall_notices_recall_method")),
        sa.CheckConstraint("length(outcome) > 0", name=op.f("ck_recall_notices_outcome_present")),
        sa.ForeignKeyConstraint(["lot_id"], ["stock_lots.id"],
                                name=op.f("fk_recall_notices_lot_id_stock_lots"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["dispense_id"], ["dispenses.id"],
                                name=op.f("fk_recall_notices_dispense_id_dispenses"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["notified_by"], ["staff.id"],
                                name=op.f("fk_recall_notices_notified_by_staff"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recall_notices")),
    )
    op.create_index("ix_recall_notices_lot", "recall_notices", ["lot_id", "dispense_id"])
    if op.get_bind().dialect.name == "postgresql":
        m = _m0007()
        n = m._names()
        for action, ref in (("insert", "NEW TABLE AS new_rows"),
                            ("delete", "OLD TABLE AS old_rows")):
            op.execute(f"CREATE TRIGGER recall_notices_audit_{action} AFTER {action.upper()} ON"
                       f" recall_notices REFERENCING {ref} FOR EACH STATEMENT"
                       " EXECUTE FUNCTION getmeds_audit('id')")
        op.execute("CREATE TRIGGER recall_notices_permanent_row BEFORE UPDATE OR DELETE ON"
                   " recall_notices FOR EACH ROW EXECUTE FUNCTION getmeds_forbid_change()")
        op.execute("CREATE TRIGGER recall_notices_permanent_truncate BEFORE TRUNCATE ON"
                   " recall_notices FOR EACH STATEMENT EXECUTE FUNCTION getmeds_forbid_change()")
        op.execute(n.sql(GUARD))
        op.execute(n.sql("CREATE TRIGGER recall_notices_identity BEFORE INSERT ON"
                         f" @s.recall_notices FOR EACH ROW WHEN ({m.NOT_TRUSTED})"
                         " EXECUTE FUNCTION @s.getmeds_guard_recall_notices()"))
        op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".getmeds_guard_recall_notices() '
                   "FROM PUBLIC")
        for group in WRITERS:
            op.execute(f'GRANT SELECT, INSERT ON recall_notices TO "{n.prefix}{group}"')
        backup = f"{n.prefix}backup"
        if op.get_bind().execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                 {"r": backup}).scalar():
            op.execute(f'GRANT SELECT ON recall_notices TO "{backup}"')
    else:
        sqlite_triggers.permanent("recall_notices")
        sqlite_triggers.audit("recall_notices", COLUMNS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        n = _m0007()._names()
        op.execute("DROP TABLE recall_notices")
        op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".getmeds_guard_recall_notices()')
        return
    for name in ("no_update", "no_delete", "audit_insert", "audit_update", "audit_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS recall_notices_{name}")
    op.drop_index("ix_recall_notices_lot", table_name="recall_notices")
    op.drop_table("recall_notices")
