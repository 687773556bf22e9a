"""The embedded database's audit and permanent-row triggers, as 0001 makes them,
for the revisions after it that add columns or tables (SQLite triggers list
their columns, so a new column means making a table's triggers again).

Revisions depend on this module, so what it writes must never change; a
different trigger is a new function here, not an edit."""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

__all__ = ["audit", "permanent"]

_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
_INSERT = ("INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name, row_id,"
           " before, after) VALUES ")


def audit(table: str, cols: Sequence[str], *, uuid_key: bool = True) -> None:
    """(Re)make ``table``'s audit triggers over ``cols``."""
    def obj(prefix: str) -> str:
        return "json_object(" + ", ".join(f"'{c}', {prefix}.{c}" for c in cols) + ")"

    def rid(prefix: str) -> str:
        col = f"{prefix}.id"
        if not uuid_key:
            return f"CAST({col} AS TEXT)"
        return (f"lower(substr({col},1,8)||'-'||substr({col},9,4)||'-'||substr({col},13,4)"
                f"||'-'||substr({col},17,4)||'-'||substr({col},21,12))")

    for action in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_audit_{action}")
    op.execute(
        f"CREATE TRIGGER {table}_audit_insert AFTER INSERT ON {table} BEGIN {_INSERT}"
        f"({_NOW}, getmeds_actor(), 'embedded', 'INSERT', '{table}', {rid('NEW')},"
        f" NULL, {obj('NEW')}); END")
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in cols)
    op.execute(
        f"CREATE TRIGGER {table}_audit_update AFTER UPDATE ON {table} WHEN {changed}"
        f" BEGIN {_INSERT}({_NOW}, getmeds_actor(), 'embedded', 'UPDATE', '{table}',"
        f" {rid('NEW')}, {obj('OLD')}, {obj('NEW')}); END")
    op.execute(
        f"CREATE TRIGGER {table}_audit_delete AFTER DELETE ON {table} BEGIN {_INSERT}"
        f"({_NOW}, getmeds_actor(), 'embedded', 'DELETE', '{table}', {rid('OLD')},"
        f" {obj('OLD')}, NULL); END")


def permanent(table: str) -> None:
    """``table``'s rows can be neither changed nor removed."""
    for action in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
        op.execute(
            f"CREATE TRIGGER {table}_no_{action} BEFORE {action.upper()} ON {table}"
            f" BEGIN SELECT RAISE(ABORT, 'rows of {table} are permanent records and"
            " cannot be changed or removed'); END")
