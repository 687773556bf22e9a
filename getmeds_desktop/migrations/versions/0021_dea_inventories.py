"""DEA inventories (21 CFR 1304.11) and moving a product into a schedule

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-01 18:00:00

* ``dea_inventories``: an initial, biennial or newly-controlled inventory
  (21 CFR 1304.11(b), (c), (d)): the date, whether it was taken as of the
  opening or the close of business (1304.11(a)), who took it and when, and the
  stocktake it was counted in (services/stocktake.py: its lines, the count
  movements it posted). ``dea_inventory_lines``: per product (and lot), the
  schedule, name, strength, form and NDC as they were, the quantity counted and
  whether it is an exact count or the estimate of an opened container
  (1304.11(e)(3): never for Schedule II, never for a container of more than
  1,000 tablets or capsules). Both are permanent: nobody changes or removes them.
* ``stock_movements``: a count movement may be 0 when it belongs to a stocktake:
  a count that matches the register is still recorded in it (a zero count line;
  the movement is appended like any other, never updated).
* PostgreSQL: only a pharmacist (or an administrator whose practice role is
  pharmacist) writes an inventory, in their own name, at the server's time and
  date (getmeds_guard_dea_inventories); its lines are written in the same
  transaction, with the product as it is and, for a lot, the quantity the
  ledger holds after its count movement (getmeds_guard_dea_inventory_lines).
  A product's schedule changes into a register (from none, or between Schedule
  II and III-V) only together with a newly-controlled inventory of that product
  that opened the new register with the stock on hand, and out of the schedules
  only by a pharmacist (getmeds_check_schedule_change, at commit).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0021"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "('initial', 'biennial', 'newly_controlled')"
INVENTORY_COLUMNS = ("id", "kind", "business", "taken_on", "taken_by", "taken_at",
                     "stocktake_id", "request_id", "note", "txn")
LINE_COLUMNS = ("id", "inventory_id", "product_id", "lot_id", "schedule", "product_name",
                "strength", "dosage_form", "ndc", "lot_number", "quantity", "exact",
                "container_units", "movement_id")
WRITERS = ("admin", "pharmacist")
# an estimate only for an opened container of Schedule III-V holding at most 1,000
ESTIMATE_RULE = ("exact OR (schedule <> 'II' AND container_units IS NOT NULL AND "
                 "container_units <= 1000)")

OLD_SIGN = ("(kind IN ('receipt', 'restock') AND quantity > 0) OR (kind IN ('dispense', "
            "'return', 'write_off') AND quantity < 0) OR (kind IN ('adjustment', 'count', "
            "'transfer') AND quantity <> 0)")
NEW_SIGN = OLD_SIGN + " OR (kind = 'count' AND quantity = 0 AND stocktake_id IS NOT NULL)"

# Who may take an inventory, and its identity, time and date: the server's.
GUARD_INVENTORY = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_dea_inventories() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    me uuid;
BEGIN
    SELECT st.id INTO me FROM @s.staff AS st
     WHERE st.username = session_user AND st.active
       AND (st.role = 'pharmacist' OR st.practice_role = 'pharmacist');
    IF me IS NULL THEN
        RAISE EXCEPTION 'only a pharmacist takes a DEA inventory (21 CFR 1304.11)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.taken_by IS DISTINCT FROM me THEN
        RAISE EXCEPTION 'dea_inventories.taken_by must be the signed-in staff member''s own id'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM @s.stocktakes AS t
                    WHERE t.id = NEW.stocktake_id AND t.scope = 'controlled'
                      AND t.started_by = me AND t.status = 'posted'
                      AND NOT EXISTS (SELECT 1 FROM @s.dea_inventories AS i
                                       WHERE i.stocktake_id = t.id)) THEN
        RAISE EXCEPTION 'a DEA inventory is the posted controlled count its pharmacist took'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dea_inventories_valid';
    END IF;
    NEW.taken_at := pg_catalog.now();  -- the server's time, not the client's
    NEW.taken_on := (pg_catalog.now() AT TIME ZONE @s.getmeds_pharmacy_time_zone())::date;
    NEW.txn := pg_catalog.txid_current();
    RETURN NEW;
END $body$
"""

# A line belongs to an inventory of this transaction, names the product as it is,
# and a lot's quantity is what the ledger holds after the lot's count movement.
GUARD_LINES = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_dea_inventory_lines() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    inv record;
    p record;
    lot record;
BEGIN
    SELECT i.stocktake_id, i.txn INTO inv FROM @s.dea_inventories AS i
     WHERE i.id = NEW.inventory_id;
    IF NOT FOUND OR inv.txn IS DISTINCT FROM pg_catalog.txid_current() THEN
        RAISE EXCEPTION 'an inventory''s lines are written with it, never added afterwards'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dea_inventory_lines_valid';
    END IF;
    SELECT x.name, x.strength, x.dosage_form, x.ndc, x.schedule INTO p
      FROM @s.products AS x WHERE x.id = NEW.product_id;
    IF NOT FOUND OR p.schedule = 'none' OR p.schedule IS DISTINCT FROM NEW.schedule THEN
        RAISE EXCEPTION 'an inventory line is for a controlled product, at its schedule'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dea_inventory_lines_valid';
    END IF;
    NEW.product_name := p.name;
    NEW.strength := p.strength;
    NEW.dosage_form := p.dosage_form;
    NEW.ndc := p.ndc;
    IF NEW.lot_id IS NOT NULL THEN
        SELECT l.lot_number, l.on_hand, l.product_id INTO lot FROM @s.stock_lots AS l
         WHERE l.id = NEW.lot_id;
        IF lot.product_id IS DISTINCT FROM NEW.product_id
           OR NEW.quantity IS DISTINCT FROM lot.on_hand
           OR NOT EXISTS (SELECT 1 FROM @s.stock_movements AS m
                           WHERE m.id = NEW.movement_id AND m.lot_id = NEW.lot_id
                             AND m.kind = 'count' AND m.stocktake_id = inv.stocktake_id) THEN
            RAISE EXCEPTION 'an inventory line of a lot records the count posted on that lot '
                'in this inventory, and the quantity the ledger holds after it'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'dea_inventory_lines_valid';
        END IF;
        NEW.lot_number := lot.lot_number;
    ELSIF NEW.quantity <> 0 OR NEW.movement_id IS NOT NULL
          OR EXISTS (SELECT 1 FROM @s.product_stock AS ps
                      WHERE ps.product_id = NEW.product_id AND ps.on_hand > 0) THEN
        RAISE EXCEPTION 'a product with stock is counted lot by lot'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dea_inventory_lines_valid';
    END IF;
    RETURN NEW;
END $body$
"""

# At commit: a product moved into a register (from none, or between Schedule II
# and III-V) has its newly-controlled inventory in this transaction, which
# opened the new register with the stock on hand (21 CFR 1304.11(d)); a product
# leaves the schedules only by a pharmacist's hand.
CHECK_SCHEDULE = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_check_schedule_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    now_schedule text;
    old_register text := CASE WHEN OLD.schedule = 'none' THEN 'none'
                              WHEN OLD.schedule = 'II' THEN 'II' ELSE 'III-V' END;
    new_register text;
    stock integer;
    last record;
BEGIN
    SELECT x.schedule INTO now_schedule FROM @s.products AS x WHERE x.id = NEW.id;
    new_register := CASE WHEN now_schedule = 'none' THEN 'none'
                         WHEN now_schedule = 'II' THEN 'II' ELSE 'III-V' END;
    IF new_register = old_register THEN
        RETURN NULL;
    END IF;
    IF new_register = 'none' THEN
        IF NOT EXISTS (SELECT 1 FROM @s.staff AS st
                        WHERE st.username = session_user AND st.active
                          AND (st.role = 'pharmacist' OR st.practice_role = 'pharmacist')) THEN
            RAISE EXCEPTION 'only a pharmacist takes a product out of the schedules'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM @s.dea_inventories AS i
                     JOIN @s.dea_inventory_lines AS ln ON ln.inventory_id = i.id
                    WHERE i.kind = 'newly_controlled' AND i.txn = pg_catalog.txid_current()
                      AND ln.product_id = NEW.id AND ln.schedule = now_schedule) THEN
        RAISE EXCEPTION 'the schedule of a product changes only together with its '
            'newly-controlled inventory (21 CFR 1304.11(d))'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'products_schedule_inventory';
    END IF;
    SELECT ps.on_hand INTO stock FROM @s.product_stock AS ps WHERE ps.product_id = NEW.id;
    IF coalesce(stock, 0) > 0 THEN
        SELECT r.register, r.balance_after, m.stocktake_id INTO last
          FROM @s.controlled_register AS r JOIN @s.stock_movements AS m ON m.id = r.movement_id
         WHERE r.product_id = NEW.id ORDER BY r.id DESC LIMIT 1;
        IF last.register IS DISTINCT FROM new_register OR last.balance_after <> stock
           OR NOT EXISTS (SELECT 1 FROM @s.dea_inventories AS i
                           WHERE i.stocktake_id = last.stocktake_id
                             AND i.kind = 'newly_controlled'
                             AND i.txn = pg_catalog.txid_current()) THEN
            RAISE EXCEPTION 'a product moved into a schedule with stock on hand opens its '
                'register with the newly-controlled inventory''s count (21 CFR 1304.11(d))'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'products_schedule_inventory';
        END IF;
    END IF;
    RETURN NULL;
END $body$
"""

FUNCTIONS = ("getmeds_guard_dea_inventories()", "getmeds_guard_dea_inventory_lines()",
             "getmeds_check_schedule_change()")


def _m(name: str) -> Any:
    return importlib.import_module(f"getmeds_desktop.migrations.versions.{name}")


def _tables() -> None:
    op.create_table(
        "dea_inventories",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("business", sa.String(7), nullable=False),
        sa.Column("taken_on", sa.Date(), nullable=False),
        sa.Column("taken_by", sa.Uuid(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stocktake_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("note", sa.String(300), nullable=True),
        sa.Column("txn", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(f"kind IN {KINDS}", name=op.f("ck_dea_inventories_inventory_kind")),
        sa.CheckConstraint("business IN ('opening', 'close')",
                           name=op.f("ck_dea_inventories_business_valid")),
        sa.ForeignKeyConstraint(["taken_by"], ["staff.id"],
                                name=op.f("fk_dea_inventories_taken_by_staff"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["stocktake_id"], ["stocktakes.id"],
                                name=op.f("fk_dea_inventories_stocktake_id_stocktakes"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dea_inventories")),
        sa.UniqueConstraint("stocktake_id", name=op.f("uq_dea_inventories_stocktake_id")),
        sa.UniqueConstraint("request_id", name=op.f("uq_dea_inventories_request_id")),
    )
    op.create_index("ix_dea_inventories_taken_on", "dea_inventories", ["taken_on", "id"])
    op.create_table(
        "dea_inventory_lines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("inventory_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("lot_id", sa.Uuid(), nullable=True),
        sa.Column("schedule", sa.String(3), nullable=False),
        sa.Column("product_name", sa.String(200), nullable=False),
        sa.Column("strength", sa.String(100), nullable=True),
        sa.Column("dosage_form", sa.String(80), nullable=True),
        sa.Column("ndc", sa.String(11), nullable=True),
        sa.Column("lot_number", sa.String(40), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("exact", sa.Boolean(), nullable=False),
        sa.Column("container_units", sa.Integer(), nullable=True),
        sa.Column("movement_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("schedule IN ('II', 'III', 'IV', 'V')",
                           name=op.f("ck_dea_inventory_lines_schedule_controlled")),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_dea_inventory_lines_quantity_nonneg")),
        sa.CheckConstraint("container_units IS NULL OR container_units > 0",
                           name=op.f("ck_dea_inventory_lines_container_positive")),
        sa.CheckConstraint(ESTIMATE_RULE, name=op.f("ck_dea_inventory_lines_estimate_allowed")),
        sa.ForeignKeyConstraint(["inventory_id"], ["dea_inventories.id"],
                                name=op.f("fk_dea_inventory_lines_inventory_id_dea_inventories"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"],
                                name=op.f("fk_dea_inventory_lines_product_id_products"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["lot_id"], ["stock_lots.id"],
                                name=op.f("fk_dea_inventory_lines_lot_id_stock_lots"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["movement_id"], ["stock_movements.id"],
                                name=op.f("fk_dea_inventory_lines_movement_id_stock_movements"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dea_inventory_lines")),
    )
    op.create_index("ix_dea_inventory_lines_inventory", "dea_inventory_lines",
                    ["inventory_id", "schedule"])
    op.create_index("ix_dea_inventory_lines_product", "dea_inventory_lines", ["product_id"])


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        _tables()
        _m("0015_fill_verify_release")._loosen_sqlite("stock_movements", [(OLD_SIGN, NEW_SIGN)])
        for table, cols in (("dea_inventories", INVENTORY_COLUMNS),
                            ("dea_inventory_lines", LINE_COLUMNS)):
            sqlite_triggers.permanent(table)
            sqlite_triggers.audit(table, cols)
        return
    _tables()
    op.execute("ALTER TABLE stock_movements DROP CONSTRAINT ck_stock_movements_quantity_sign")
    op.execute("ALTER TABLE stock_movements ADD CONSTRAINT ck_stock_movements_quantity_sign"
               f" CHECK ({NEW_SIGN})")
    m = _m("0007_database_boundary")
    n = m._names()
    for table in ("dea_inventories", "dea_inventory_lines"):
        for action, ref in (("insert", "NEW TABLE AS new_rows"),
                            ("delete", "OLD TABLE AS old_rows")):
            op.execute(f"CREATE TRIGGER {table}_audit_{action} AFTER {action.upper()} ON"
                       f" {table} REFERENCING {ref} FOR EACH STATEMENT"
                       " EXECUTE FUNCTION getmeds_audit('id')")
        op.execute(f"CREATE TRIGGER {table}_permanent_row BEFORE UPDATE OR DELETE ON"
                   f" {table} FOR EACH ROW EXECUTE FUNCTION getmeds_forbid_change()")
        op.execute(f"CREATE TRIGGER {table}_permanent_truncate BEFORE TRUNCATE ON"
                   f" {table} FOR EACH STATEMENT EXECUTE FUNCTION getmeds_forbid_change()")
    for text in (GUARD_INVENTORY, GUARD_LINES, CHECK_SCHEDULE):
        op.execute(n.sql(text))
    for statement in (
        "CREATE TRIGGER dea_inventories_identity BEFORE INSERT ON @s.dea_inventories"
        f" FOR EACH ROW WHEN ({m.NOT_TRUSTED})"
        " EXECUTE FUNCTION @s.getmeds_guard_dea_inventories()",
        "CREATE TRIGGER dea_inventory_lines_valid BEFORE INSERT ON @s.dea_inventory_lines"
        f" FOR EACH ROW WHEN ({m.NOT_TRUSTED})"
        " EXECUTE FUNCTION @s.getmeds_guard_dea_inventory_lines()",
        "CREATE CONSTRAINT TRIGGER products_schedule_inventory AFTER UPDATE OF schedule"
        " ON @s.products DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
        f" WHEN (OLD.schedule IS DISTINCT FROM NEW.schedule AND {m.NOT_TRUSTED})"
        " EXECUTE FUNCTION @s.getmeds_check_schedule_change()",
    ):
        op.execute(n.sql(statement))
    for fn in FUNCTIONS:
        op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".{fn} FROM PUBLIC')
    for group in WRITERS:
        op.execute(f'GRANT SELECT, INSERT ON dea_inventories, dea_inventory_lines'
                   f' TO "{n.prefix}{group}"')
    backup = f"{n.prefix}backup"
    if bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                    {"r": backup}).scalar():
        op.execute(f'GRANT SELECT ON dea_inventories, dea_inventory_lines TO "{backup}"')


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM stock_movements WHERE kind = 'count' AND "
                            "quantity = 0 LIMIT 1")).scalar():
        raise RuntimeError("Zero count lines are in the register: revision 0019 cannot hold "
                           "them. Restore a backup made before 0021 instead.")
    if bind.dialect.name != "postgresql":
        for table in ("dea_inventory_lines", "dea_inventories"):
            for name in ("no_update", "no_delete", "audit_insert", "audit_update",
                         "audit_delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{name}")
        op.drop_table("dea_inventory_lines")
        op.drop_table("dea_inventories")
        _m("0015_fill_verify_release")._loosen_sqlite("stock_movements", [(NEW_SIGN, OLD_SIGN)])
        return
    n = _m("0007_database_boundary")._names()
    op.execute(n.sql("DROP TRIGGER products_schedule_inventory ON @s.products"))
    op.execute("DROP TABLE dea_inventory_lines")
    op.execute("DROP TABLE dea_inventories")
    for fn in FUNCTIONS:
        op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".{fn}')
    op.execute("ALTER TABLE stock_movements DROP CONSTRAINT ck_stock_movements_quantity_sign")
    op.execute("ALTER TABLE stock_movements ADD CONSTRAINT ck_stock_movements_quantity_sign"
               f" CHECK ({OLD_SIGN})")
