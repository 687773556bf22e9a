"""a label print is recorded at the server's time, once as a first print, never for a returned fill

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 17:00:00

PostgreSQL: getmeds_guard_label_prints (0014) also holds a staff login to what
the service says: the print's time is the server's; a fill has one first print
(every other is a reprint, with its reason); a fill that went back to stock has
no label. The embedded database has no logins (the service is the rule there).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RULES = r"""
    IF EXISTS (SELECT 1 FROM @s.dispenses AS d
                WHERE d.id = NEW.dispense_id AND d.status = 'returned') THEN
        RAISE EXCEPTION 'a fill that went back to stock has no label to print'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'label_prints_valid';
    END IF;
    IF NOT NEW.reprint AND EXISTS (SELECT 1 FROM @s.label_prints AS p
                                    WHERE p.dispense_id = NEW.dispense_id) THEN
        RAISE EXCEPTION 'this fill''s label was printed already: another print is a reprint, '
            'with its reason' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'label_prints_valid';
    END IF;
    NEW.printed_at := pg_catalog.now();  -- the server's time, not the client's
    RETURN NEW;
END $body$
"""


def _m(name: str) -> Any:
    return importlib.import_module(f"getmeds_desktop.migrations.versions.{name}")


def _guard() -> str:
    text = str(_m("0014_label_prints").GUARD)
    tail = "    RETURN NEW;\nEND $body$\n"
    if not text.endswith(tail):
        raise RuntimeError("getmeds_guard_label_prints is not as 0014 made it")
    # SECURITY DEFINER: it reads every print of the fill, whoever made them
    return (text[:-len(tail)] + RULES.lstrip("\n")).replace(
        "LANGUAGE plpgsql @path", "LANGUAGE plpgsql SECURITY DEFINER @path", 1)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    n = _m("0007_database_boundary")._names()
    op.execute(n.sql(_guard()))
    op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".getmeds_guard_label_prints() FROM PUBLIC')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    n = _m("0007_database_boundary")._names()
    op.execute(n.sql(_m("0014_label_prints").GUARD))
