"""the change feed a workstation's offline replica is kept current from: a row stamp of the transaction that wrote it, and tombstones of deleted rows

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02 01:00:00

Every table a replica holds (``REPLICATED``) gets ``change_xid``: the id of the
top-level transaction that last inserted or updated the row
(``pg_current_xact_id()``, a 64-bit xid8 that never wraps, kept as bigint),
written by a BEFORE INSERT OR UPDATE row trigger whatever the client sends,
with an index. A deleted row leaves a tombstone (table, primary key, the
deleting transaction's id) in ``change_tombstones``, written by an AFTER DELETE
row trigger (SECURITY DEFINER: nobody else writes there).

Why transaction ids and not a sequence: a sequence value is taken when a row is
written, and a transaction that took a small one may commit after one that took
a larger one, so a reader that remembers "the largest value seen" skips it for
ever. With transaction ids the server's snapshot says which transactions had
ended: a sync reads in one REPEATABLE READ snapshot and keeps its xmax and its
list of transactions in progress (``pg_snapshot_xmax``, ``pg_snapshot_xip`` of
``pg_current_snapshot()``) as its cursor. Every transaction below xmax and not
in that list had ended, so what it committed was visible to that sync (or an
earlier one); any transaction that commits later has an id at or above xmax or
is in the list. The next pull reads the rows and tombstones stamped so
(sync/replica.py): nothing committed is missed whatever the commit order, and
nothing is read twice. Rows written before this revision have no stamp: a
replica's first sync copies every row.

The cost per written row is one trigger call that sets one field, and one
index entry: about 1.5 µs in the trigger function and 3.5 µs per row of a bulk
insert in all (docs/offline-replica.md). An UPDATE now changes an indexed
column, so updates of the lot balance cache are no longer HOT updates.

The audit trigger functions leave ``change_xid`` out of the audit rows, as
they leave out the lot balance cache: it says when, not what, and without that
an UPDATE that changed nothing would now be audited.

Tombstones are readable by every staff group, each row only when the reader
may SELECT the table it names (row-level security); a tombstone names a key and
nothing else. The backup role reads them all, as it reads every table (0005).
``getmeds_prune_tombstones(keep)`` (the owner's) removes those older than
``keep`` and leaves a marker of the transaction id below which they are gone;
a replica that had not read up to there is told to make a new copy. SQLite: the columns, indexes and the (unused) tombstone table
only, so that the embedded database and a replica have the same schema.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAFF_GROUPS = ("admin", "pharmacist", "technician", "clerk", "doctor")

# table -> its primary key columns
REPLICATED: dict[str, tuple[str, ...]] = {
    "app_settings": ("id",),
    "staff": ("id",),
    "prescribers": ("id",),
    "categories": ("id",),
    "suppliers": ("id",),
    "products": ("id",),
    "product_ingredients": ("id",),
    "product_drug_classes": ("product_id", "name"),
    "product_stock": ("product_id",),
    "stock_lots": ("id",),
    "stock_movements": ("id",),
    "controlled_register": ("id",),
    "stocktakes": ("id",),
    "stocktake_lines": ("id",),
    "dea_inventories": ("id",),
    "dea_inventory_lines": ("id",),
    "dea_forms": ("id",),
    "knowledge_imports": ("id",),
    "patients": ("id",),
    "patient_allergies": ("id",),
    "patient_conditions": ("id",),
    "patient_feedback": ("id",),
    "prescriptions": ("id",),
    "dispenses": ("id",),
    "dispense_warnings": ("id",),
    "label_prints": ("id",),
    "prescription_transfers": ("id",),
    "recall_notices": ("id",),
    "legacy_prescriptions": ("id",),
    "legacy_dispenses": ("id",),
}

TOMBSTONES = "change_tombstones"
FUNCTIONS = ("getmeds_change_stamp()", "getmeds_change_tombstone()",
             "getmeds_prune_tombstones(interval)")

STAMP = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_change_stamp() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER @path AS $body$
BEGIN
    NEW.change_xid := pg_catalog.pg_current_xact_id()::text::bigint;
    RETURN NEW;
END $body$
"""

TOMBSTONE = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_change_tombstone() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    old_row jsonb := pg_catalog.to_jsonb(OLD);
    row_key jsonb := '{}'::jsonb;
    col text;
BEGIN
    FOREACH col IN ARRAY TG_ARGV LOOP
        row_key := row_key || pg_catalog.jsonb_build_object(col, old_row -> col);
    END LOOP;
    INSERT INTO @s.change_tombstones (table_name, row_key, change_xid, deleted_at)
    VALUES (TG_TABLE_NAME, row_key, pg_catalog.pg_current_xact_id()::text::bigint,
            pg_catalog.now());
    RETURN NULL;
END $body$
"""


# The owner (getmeds-admin) prunes the tombstones older than ``keep``; a marker
# row says below which transaction id they are gone, and a replica whose cursor
# is not past it is told to make a new copy (it may have missed a delete).
PRUNED = "*pruned*"
PRUNE = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_prune_tombstones(keep interval) RETURNS bigint
LANGUAGE plpgsql SECURITY INVOKER @path AS $body$
DECLARE
    below bigint;
    gone bigint;
BEGIN
    SELECT pg_catalog.max(t.change_xid) INTO below FROM @s.change_tombstones AS t
     WHERE t.table_name = '@pruned'
        OR t.deleted_at < pg_catalog.now() - keep;
    IF below IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM @s.change_tombstones AS t WHERE t.change_xid <= below;
    GET DIAGNOSTICS gone = ROW_COUNT;
    INSERT INTO @s.change_tombstones (table_name, row_key, change_xid, deleted_at)
    VALUES ('@pruned', pg_catalog.jsonb_build_object('below', below), below, pg_catalog.now());
    RETURN gone;
END $body$
"""


def _m0007() -> Any:
    return importlib.import_module("getmeds_desktop.migrations.versions.0007_database_boundary")


def _audit_functions(m: Any, *, stamped: bool) -> list[str]:
    """0007's audit functions, leaving the change stamp out of audit rows (or not)."""
    out = []
    for fn in (m.AUDIT, m.AUDIT_ROW):
        if stamped:
            fn = fn.replace(") - skip", ") - skip - 'change_xid'")
        out.append(fn.replace("@who", m.WHO))
    return out


def upgrade() -> None:
    for table in REPLICATED:
        op.add_column(table, sa.Column("change_xid", sa.BigInteger(), nullable=True))
        op.create_index(f"ix_{table}_change_xid", table, ["change_xid"])
    op.create_table(
        TOMBSTONES,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("row_key", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                  nullable=False),
        sa.Column("change_xid", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_tombstones")),
    )
    op.create_index("ix_change_tombstones_change_xid", TOMBSTONES, ["change_xid"])
    if op.get_bind().dialect.name != "postgresql":
        return
    m = _m0007()
    n = m._names()
    op.execute(n.sql(STAMP))
    op.execute(n.sql(TOMBSTONE))
    op.execute(n.sql(PRUNE.replace("@pruned", PRUNED)))
    for fn in _audit_functions(m, stamped=True):
        op.execute(n.sql(fn))
    for fn in FUNCTIONS:
        op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".{fn} FROM PUBLIC')
    for table, key in REPLICATED.items():
        op.execute(n.sql(
            f"CREATE TRIGGER getmeds_change_stamp BEFORE INSERT OR UPDATE ON @s.{table}"
            " FOR EACH ROW EXECUTE FUNCTION @s.getmeds_change_stamp()"))
        args = ", ".join(f"'{c}'" for c in key)
        op.execute(n.sql(
            f"CREATE TRIGGER getmeds_change_tombstone AFTER DELETE ON @s.{table}"
            f" FOR EACH ROW EXECUTE FUNCTION @s.getmeds_change_tombstone({args})"))
    groups = ", ".join(f'"{n.prefix}{g}"' for g in STAFF_GROUPS)
    op.execute(f'REVOKE ALL ON "{n.schema}".{TOMBSTONES} FROM PUBLIC')
    op.execute(f'GRANT SELECT ON "{n.schema}".{TOMBSTONES} TO {groups}')
    op.execute(f'ALTER TABLE "{n.schema}".{TOMBSTONES} ENABLE ROW LEVEL SECURITY')
    # a tombstone is read only by someone who may read the table it names (the
    # pruning marker by everybody)
    op.execute(n.sql(
        f"CREATE POLICY tombstone_read ON @s.{TOMBSTONES} FOR SELECT TO {groups}"
        f" USING (CASE WHEN table_name = '{PRUNED}' THEN true ELSE"
        " pg_catalog.has_table_privilege(pg_catalog.quote_ident("
        f"'{n.schema}') || '.' || pg_catalog.quote_ident(table_name), 'SELECT') END)"))
    # backups read every row (0005), and an administrator's backup reads the
    # sequence's position as of the others'
    op.execute(f'GRANT SELECT ON SEQUENCE "{n.schema}".{TOMBSTONES}_id_seq TO "{n.prefix}admin"')
    backup = f"{n.prefix}backup"
    if op.get_bind().execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                             {"r": backup}).scalar():
        op.execute(f'GRANT SELECT ON "{n.schema}".{TOMBSTONES} TO "{backup}"')
        op.execute(f'GRANT SELECT ON SEQUENCE "{n.schema}".{TOMBSTONES}_id_seq TO "{backup}"')
        op.execute(f'CREATE POLICY backup_read ON "{n.schema}".{TOMBSTONES} FOR SELECT'
                   f' TO "{backup}" USING (true)')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        m = _m0007()
        n = m._names()
        for table in REPLICATED:
            op.execute(f'DROP TRIGGER IF EXISTS getmeds_change_stamp ON "{n.schema}".{table}')
            op.execute(f'DROP TRIGGER IF EXISTS getmeds_change_tombstone ON '
                       f'"{n.schema}".{table}')
        for fn in FUNCTIONS:
            op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".{fn}')
        for fn in _audit_functions(m, stamped=False):
            op.execute(n.sql(fn))
    op.drop_index("ix_change_tombstones_change_xid", table_name=TOMBSTONES)
    op.drop_table(TOMBSTONES)
    for table in REPLICATED:
        op.drop_index(f"ix_{table}_change_xid", table_name=table)
        op.drop_column(table, "change_xid")
