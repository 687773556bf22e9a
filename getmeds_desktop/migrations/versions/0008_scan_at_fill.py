"""what was scanned at fill is stored with the dispense; clerks read the ledger

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:00:00

* ``dispenses`` gets the scan of the package (the text the scanner sent, the
  NDC or GTIN it matched, the lot and expiry it named) or the reason no package
  was scanned; the dispensing service checks the scan and refuses a mismatch.
* ``app_settings.scan_required``: every fill needs a scan (no reason accepted).
* PostgreSQL: clerks may read stock movements (the service matrix has always
  let them: "read lots and stock movements"; the row-level policy already lists
  them), so a receipt made by a clerk can show what it wrote.
* SQLite: the audit triggers of ``dispenses`` and ``app_settings`` list their
  columns, so they are made again with the new ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCAN_COLUMNS = (("scan_text", sa.String(200)), ("scan_ndc", sa.String(11)),
                ("scan_gtin", sa.String(14)), ("scan_lot", sa.String(40)),
                ("scan_expiry", sa.Date()), ("no_scan_reason", sa.String(300)))
DISPENSE_COLUMNS = ("prescription_id", "fill_number", "part", "quantity", "owed_after",
                    "days_supply", "pharmacist_id", "dispensed_at", "request_id", "notes",
                    "scan_text", "scan_ndc", "scan_gtin", "scan_lot", "scan_expiry",
                    "no_scan_reason", "id")
SETTINGS_COLUMNS = ("id", "pharmacy_name", "address", "phone", "dea_number", "npi",
                    "paper_size", "auto_lock_minutes", "controlled_validity_months",
                    "rx_validity_months", "early_refill_percent", "scan_required",
                    "created_at", "updated_at", "updated_by", "version")
OLD_DISPENSE_COLUMNS = DISPENSE_COLUMNS[:10] + ("id",)
OLD_SETTINGS_COLUMNS = tuple(c for c in SETTINGS_COLUMNS if c != "scan_required")


def upgrade() -> None:
    with op.batch_alter_table("dispenses") as b:
        for name, kind in SCAN_COLUMNS:
            b.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("app_settings") as b:
        b.add_column(sa.Column("scan_required", sa.Boolean(), nullable=False,
                               server_default=sa.false()))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        prefix = bind.execute(sa.text("SELECT role_prefix FROM db_security")).scalar()
        if not prefix or not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", prefix):
            raise RuntimeError(f"unexpected role prefix {prefix!r}")
        op.execute(f'GRANT SELECT ON stock_movements TO "{prefix}clerk"')
    else:
        _sqlite_audit("dispenses", DISPENSE_COLUMNS, uuid_key=True)
        _sqlite_audit("app_settings", SETTINGS_COLUMNS, uuid_key=False)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        prefix = bind.execute(sa.text("SELECT role_prefix FROM db_security")).scalar()
        op.execute(f'REVOKE SELECT ON stock_movements FROM "{prefix}clerk"')
    else:
        for table in ("dispenses", "app_settings"):
            for action in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_audit_{action}")
    with op.batch_alter_table("app_settings") as b:
        b.drop_column("scan_required")
    with op.batch_alter_table("dispenses") as b:
        for name, _kind in reversed(SCAN_COLUMNS):
            b.drop_column(name)
    if bind.dialect.name != "postgresql":
        _sqlite_audit("dispenses", OLD_DISPENSE_COLUMNS, uuid_key=True)
        _sqlite_audit("app_settings", OLD_SETTINGS_COLUMNS, uuid_key=False)


def _sqlite_audit(table: str, cols: Sequence[str], *, uuid_key: bool) -> None:
    """The embedded database's audit triggers of one table, as 0001 makes them."""
    now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"

    def obj(prefix: str) -> str:
        return "json_object(" + ", ".join(f"'{c}', {prefix}.{c}" for c in cols) + ")"

    def rid(prefix: str) -> str:
        col = f"{prefix}.id"
        if not uuid_key:
            return f"CAST({col} AS TEXT)"
        return (f"lower(substr({col},1,8)||'-'||substr({col},9,4)||'-'||substr({col},13,4)"
                f"||'-'||substr({col},17,4)||'-'||substr({col},21,12))")

    insert = ("INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name, row_id,"
              " before, after) VALUES ")
    for action in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_audit_{action}")
    op.execute(
        f"CREATE TRIGGER {table}_audit_insert AFTER INSERT ON {table} BEGIN {insert}"
        f"({now}, getmeds_actor(), 'embedded', 'INSERT', '{table}', {rid('NEW')},"
        f" NULL, {obj('NEW')}); END")
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in cols)
    op.execute(
        f"CREATE TRIGGER {table}_audit_update AFTER UPDATE ON {table} WHEN {changed}"
        f" BEGIN {insert}({now}, getmeds_actor(), 'embedded', 'UPDATE', '{table}',"
        f" {rid('NEW')}, {obj('OLD')}, {obj('NEW')}); END")
    op.execute(
        f"CREATE TRIGGER {table}_audit_delete AFTER DELETE ON {table} BEGIN {insert}"
        f"({now}, getmeds_actor(), 'embedded', 'DELETE', '{table}', {rid('OLD')},"
        f" {obj('OLD')}, NULL); END")
