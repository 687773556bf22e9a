"""an administrator dispenses or verifies only with a practice role of their own

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 16:30:00

``staff.practice_role``: an administrator may also work as a pharmacist, a
technician or a clerk (one practice role); without one an administrator
manages the pharmacy but does not fill, verify, release or return fills, nor
override a severe warning. On PostgreSQL the checks of 0015 read it:
getmeds_guard_new_fill (who fills), getmeds_guard_dispense_steps (who takes
each step: the practice role counts, not "admin") and
getmeds_guard_warning_role (a severe warning: a pharmacist, or an
administrator who is one). The administrator's login stays in the admin
group, whose table privileges already cover those writes; the guards decide.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = ("practice_role IS NULL OR (role = 'admin' AND practice_role IN ('pharmacist', "
         "'technician', 'clerk'))")

FILLER_CHECK = r"""
    IF EXISTS (SELECT 1 FROM @s.staff AS st
                WHERE st.username = session_user AND st.active AND st.role = 'admin'
                  AND coalesce(st.practice_role, '') NOT IN ('pharmacist', 'technician')) THEN
        RAISE EXCEPTION 'an administrator fills prescriptions only as a pharmacist or a '
            'technician (the staff record''s practice role)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $body$
"""


def _m(name: str) -> Any:
    return importlib.import_module(f"getmeds_desktop.migrations.versions.{name}")


def _texts(m15: Any) -> list[str]:
    """0015's three guards, reading the practice role."""
    steps = m15.GUARD_STEPS
    for old, new in (
        ("    SELECT st.id, st.role INTO me, my_role FROM @s.staff AS st",
         "    SELECT st.id, CASE WHEN st.role = 'admin' THEN coalesce(st.practice_role, 'admin')"
         " ELSE st.role END\n      INTO me, my_role FROM @s.staff AS st"),
        ("                AND pg_catalog.pg_has_role(session_user, @g_pharmacist, 'USAGE')) THEN",
         "                AND (pg_catalog.pg_has_role(session_user, @g_pharmacist, 'USAGE')\n"
         "                     OR pg_catalog.pg_has_role(session_user, @g_admin, 'USAGE'))) THEN"),
    ):
        if steps.count(old) != 1:
            raise RuntimeError("getmeds_guard_dispense_steps is not as 0015 made it")
        steps = steps.replace(old, new)
    role = m15.GUARD_WARNING_ROLE
    old = "              AND st.role IN ('pharmacist', 'admin')) THEN"
    if role.count(old) != 1:
        raise RuntimeError("getmeds_guard_warning_role is not as 0015 made it")
    role = role.replace(old, "              AND (st.role = 'pharmacist' OR st.practice_role = "
                             "'pharmacist')) THEN")
    fill = m15.GUARD_NEW_FILL
    tail = "    RETURN NEW;\nEND $body$\n"
    if not fill.endswith(tail):
        raise RuntimeError("getmeds_guard_new_fill is not as 0015 made it")
    fill = fill[:-len(tail)] + FILLER_CHECK.lstrip("\n")
    return [steps, role, fill]


def upgrade() -> None:
    bind = op.get_bind()
    op.execute("ALTER TABLE staff ADD COLUMN practice_role VARCHAR(10) CONSTRAINT "
               f"ck_staff_practice_role CHECK ({CHECK})")
    if bind.dialect.name == "postgresql":
        m15 = _m("0015_fill_verify_release")
        n = m15._Names(_m("0007_database_boundary")._names())
        for text in _texts(m15):
            op.execute(n.sql(text))
    else:
        cols = [r[1] for r in bind.execute(sa.text("PRAGMA table_info(staff)"))]
        sqlite_triggers.audit("staff", cols)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        m15 = _m("0015_fill_verify_release")
        n = m15._Names(_m("0007_database_boundary")._names())
        for text in (m15.GUARD_STEPS, m15.GUARD_WARNING_ROLE, m15.GUARD_NEW_FILL):
            op.execute(n.sql(text))
        op.execute("ALTER TABLE staff DROP COLUMN practice_role")
        return
    for action in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS staff_audit_{action}")
    # SQLite drops a column only without its CHECK: the CHECK goes first (0015's
    # in-place loosening), then the column, with no table rebuilt
    _m("0015_fill_verify_release")._loosen_sqlite("staff", [(
        f" CONSTRAINT ck_staff_practice_role CHECK ({CHECK})", "")])
    op.execute("ALTER TABLE staff DROP COLUMN practice_role")
    cols = [r[1] for r in bind.execute(sa.text("PRAGMA table_info(staff)"))]
    sqlite_triggers.audit("staff", cols)
