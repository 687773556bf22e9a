"""controlled-substance receipts with the supplier's DEA number and the order
form; DEA Form 41 (destruction) and Form 106 (theft or loss) records

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01 18:00:00

* ``stock_movements.order_form``: a receipt's DEA Form 222 serial number or CSOS
  order number (21 CFR 1305.13(e), 1305.22(g): the purchaser records, per line
  of the order, the number of packages and the date received; here each
  receipt movement is one lot received, with its quantity and date).
* ``stock_movements.supplier_dea``: the supplier's DEA registration number at
  the receipt (21 CFR 1304.22(c): the name, address and registration number of
  the person the controlled substance was received from).
* ``stock_movements.dea_form_id``: the DEA form record a movement was posted
  from: a Form 41 posts one write-off per lot destroyed, a Form 106 one
  (negative) adjustment per lot stolen or lost.
* ``dea_forms``: the records, permanent (a correction is a new record naming
  the one it corrects, with what was wrong). Form 41 (21 CFR 1304.21(e),
  1317.95(d); the form's sections C and D): the date, the method and the place
  of the destruction, and two employees who witnessed it, not the same person.
  Form 106 (21 CFR 1301.76(b); OMB 1117-0001): the date the theft or loss was
  discovered, the date it happened if known, its type (item 10), whether the
  police were told and which department (items 7, 8), the common carrier of a
  loss in transit (item 14), what was done to prevent another (item 17).
  CHECK constraints hold a record complete on both databases.
* PostgreSQL (a staff login): only a pharmacist (or an administrator whose
  practice role is pharmacist) files a record, in their own name, at the
  server's time; the witnesses are active staff members who are not
  prescribers' logins (getmeds_guard_dea_forms). A record is posted: it has
  at least one movement at commit, unless it corrects another
  (getmeds_check_dea_form_posted). A movement (getmeds_guard_dea_movements):
  a receipt of a controlled product names a supplier with a DEA number, which
  the database copies onto the movement; a Schedule II receipt carries its
  order form number; a write-off of controlled stock is its destruction and is
  posted from a Form 41 record filed in the same transaction by the same
  pharmacist; a movement posted from a form is a write-off (Form 41) or a
  negative adjustment (Form 106) of controlled stock. Minor count differences
  stay ordinary adjustments (DEA: Form 106 is not for minor inventory
  discrepancies). Administrators and pharmacists read the records; only
  those two groups may INSERT (the guard decides who of them).
* SQLite: the audit triggers of stock_movements are made again over its
  columns; dea_forms gets its audit and permanent-row triggers. The embedded
  database has no logins: the service is the rule there (the CHECKs hold).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORM_COLUMNS = ("id", "form", "corrects_id", "correction_note", "filed_by", "filed_at",
                "destroyed_on", "method", "place", "witness1_id", "witness2_id",
                "discovered_on", "occurred_on", "loss_type", "loss_detail", "police_notified",
                "police_department", "carrier", "security_measures")
MOVEMENT_COLUMNS = ("lot_id", "kind", "quantity", "reason", "reference", "staff_id",
                    "created_at", "dispense_id", "supplier_id", "stocktake_id", "request_id",
                    "order_form", "supplier_dea", "dea_form_id", "id")
FORM_FK = "fk_stock_movements_dea_form_id_dea_forms"
READERS = ("admin", "pharmacist")
WRITERS = ("admin", "pharmacist")  # getmeds_guard_dea_forms: a pharmacist of them

# the same text as models.stock (the CHECKs of both databases)
FORM_41_COMPLETE = (
    "form <> '41' OR (destroyed_on IS NOT NULL AND length(method) > 0 AND length(place) > 0"
    " AND witness1_id IS NOT NULL AND witness2_id IS NOT NULL AND witness1_id <> witness2_id)")
FORM_106_COMPLETE = (
    "form <> '106' OR (discovered_on IS NOT NULL AND loss_type IS NOT NULL"
    " AND police_notified IS NOT NULL"
    " AND (NOT police_notified OR length(police_department) > 0)"
    " AND (loss_type <> 'lost_in_transit' OR length(carrier) > 0)"
    " AND (loss_type <> 'other' OR length(loss_detail) > 0)"
    " AND (occurred_on IS NULL OR occurred_on <= discovered_on))")
LOSS_TYPES = ("loss_type IS NULL OR loss_type IN ('night_break_in', 'armed_robbery', "
              "'employee_pilferage', 'customer_theft', 'lost_in_transit', 'other')")

# Before a staff session's record is written: who files it, when, and who witnessed.
GUARD_FORMS = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_dea_forms() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    me uuid;
    my_role text;
    today date := (pg_catalog.now() AT TIME ZONE @s.getmeds_pharmacy_time_zone())::date;
    w uuid;
BEGIN
    SELECT st.id, CASE WHEN st.role = 'admin' THEN coalesce(st.practice_role, 'admin')
                       ELSE st.role END
      INTO me, my_role FROM @s.staff AS st WHERE st.username = session_user AND st.active;
    IF my_role IS DISTINCT FROM 'pharmacist' THEN
        RAISE EXCEPTION 'only a pharmacist files a DEA Form 41 or 106 record'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.filed_by IS DISTINCT FROM me THEN
        RAISE EXCEPTION '%.filed_by must be the signed-in staff member''s own id',
            TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege',
            HINT = 'The database records who did it from the login; it cannot be chosen.';
    END IF;
    NEW.filed_at := pg_catalog.now();  -- the server's time, not the client's
    IF NEW.form = '41' THEN
        FOREACH w IN ARRAY ARRAY[NEW.witness1_id, NEW.witness2_id] LOOP
            IF NOT EXISTS (SELECT 1 FROM @s.staff AS st
                            WHERE st.id = w AND st.active AND st.role <> 'doctor') THEN
                RAISE EXCEPTION 'a witness of a destruction is an active employee of the '
                    'pharmacy (21 CFR 1317.95(d))' USING ERRCODE = 'check_violation',
                    CONSTRAINT = 'dea_forms_valid';
            END IF;
        END LOOP;
        IF NEW.destroyed_on > today THEN
            RAISE EXCEPTION 'a destruction is recorded once it has happened, not on %',
                NEW.destroyed_on USING ERRCODE = 'check_violation',
                CONSTRAINT = 'dea_forms_valid';
        END IF;
    ELSIF NEW.discovered_on > today THEN
        RAISE EXCEPTION 'a theft or loss is reported once discovered, not on %',
            NEW.discovered_on USING ERRCODE = 'check_violation', CONSTRAINT = 'dea_forms_valid';
    END IF;
    IF NEW.corrects_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM @s.dea_forms AS f WHERE f.id = NEW.corrects_id AND f.form = NEW.form)
    THEN
        RAISE EXCEPTION 'a correction names an earlier record of the same form'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dea_forms_valid';
    END IF;
    RETURN NEW;
END $body$
"""

# At commit: a record (other than a correction) was posted to the ledger.
CHECK_POSTED = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_check_dea_form_posted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM @s.stock_movements AS m WHERE m.dea_form_id = NEW.id) THEN
        RAISE EXCEPTION 'a DEA Form % record posts what it describes: it has no movement',
            NEW.form USING ERRCODE = 'check_violation', CONSTRAINT = 'dea_forms_posted';
    END IF;
    RETURN NULL;
END $body$
"""

# Before a staff session's movement is written.
GUARD_MOVEMENTS = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_dea_movements() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    sched text;
    dea text;
    f record;
BEGIN
    SELECT p.schedule INTO sched FROM @s.stock_lots AS l JOIN @s.products AS p
        ON p.id = l.product_id WHERE l.id = NEW.lot_id;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key refuses it
    END IF;
    IF NEW.kind = 'receipt' THEN
        SELECT s.dea_number INTO dea FROM @s.suppliers AS s WHERE s.id = NEW.supplier_id;
        NEW.supplier_dea := dea;  -- the supplier's, as on file now; never the client's
        IF sched <> 'none' AND dea IS NULL THEN
            RAISE EXCEPTION 'a receipt of a controlled substance names the supplier and its '
                'DEA registration number (21 CFR 1304.22(c))' USING ERRCODE = 'check_violation',
                CONSTRAINT = 'stock_movements_dea_receipt';
        END IF;
        IF sched = 'II' AND coalesce(pg_catalog.btrim(NEW.order_form), '') = '' THEN
            RAISE EXCEPTION 'a Schedule II receipt records its DEA Form 222 or CSOS order '
                'number (21 CFR 1305.13(e), 1305.22(g))' USING ERRCODE = 'check_violation',
                CONSTRAINT = 'stock_movements_dea_receipt';
        END IF;
    ELSIF NEW.order_form IS NOT NULL OR NEW.supplier_dea IS NOT NULL THEN
        RAISE EXCEPTION 'only a receipt carries an order form or a supplier''s DEA number'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'stock_movements_dea_receipt';
    END IF;
    IF NEW.dea_form_id IS NOT NULL THEN
        SELECT d.form, d.filed_by, d.filed_at INTO f FROM @s.dea_forms AS d
         WHERE d.id = NEW.dea_form_id;
        IF NOT FOUND THEN
            RETURN NEW;  -- the foreign key refuses it
        END IF;
        IF f.filed_at IS DISTINCT FROM pg_catalog.now() OR f.filed_by IS DISTINCT FROM
                NEW.staff_id THEN
            RAISE EXCEPTION 'a movement is posted from a DEA form record as it is filed, by '
                'the pharmacist who files it' USING ERRCODE = 'check_violation',
                CONSTRAINT = 'stock_movements_dea_form';
        END IF;
        IF sched = 'none'
           OR (f.form = '41' AND NEW.kind <> 'write_off')
           OR (f.form = '106' AND NOT (NEW.kind = 'adjustment' AND NEW.quantity < 0)) THEN
            RAISE EXCEPTION 'a DEA Form 41 posts write-offs and a Form 106 takes stock away '
                '(adjustments), of controlled substances only' USING ERRCODE = 'check_violation',
                CONSTRAINT = 'stock_movements_dea_form';
        END IF;
    ELSIF NEW.kind = 'write_off' AND sched <> 'none' THEN
        RAISE EXCEPTION 'a write-off of a controlled substance is its destruction: it is posted '
            'from its DEA Form 41 record, with two witnesses (21 CFR 1304.21(e), 1317.95(d))'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'stock_movements_dea_form';
    END IF;
    RETURN NEW;
END $body$
"""

FUNCTIONS = ("getmeds_guard_dea_forms()", "getmeds_check_dea_form_posted()",
             "getmeds_guard_dea_movements()")


def _m0007() -> Any:
    return importlib.import_module("getmeds_desktop.migrations.versions.0007_database_boundary")


def _create_forms() -> None:
    op.create_table(
        "dea_forms",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("form", sa.String(3), nullable=False),
        sa.Column("corrects_id", sa.Uuid(), nullable=True),
        sa.Column("correction_note", sa.String(300), nullable=True),
        sa.Column("filed_by", sa.Uuid(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_on", sa.Date(), nullable=True),
        sa.Column("method", sa.String(200), nullable=True),
        sa.Column("place", sa.String(300), nullable=True),
        sa.Column("witness1_id", sa.Uuid(), nullable=True),
        sa.Column("witness2_id", sa.Uuid(), nullable=True),
        sa.Column("discovered_on", sa.Date(), nullable=True),
        sa.Column("occurred_on", sa.Date(), nullable=True),
        sa.Column("loss_type", sa.String(20), nullable=True),
        sa.Column("loss_detail", sa.String(500), nullable=True),
        sa.Column("police_notified", sa.Boolean(), nullable=True),
        sa.Column("police_department", sa.String(200), nullable=True),
        sa.Column("carrier", sa.String(200), nullable=True),
        sa.Column("security_measures", sa.String(500), nullable=True),
        sa.CheckConstraint("form IN ('41', '106')", name=op.f("ck_dea_forms_form_known")),
        sa.CheckConstraint(LOSS_TYPES, name=op.f("ck_dea_forms_loss_type_known")),
        sa.CheckConstraint(FORM_41_COMPLETE, name=op.f("ck_dea_forms_form_41_complete")),
        sa.CheckConstraint(FORM_106_COMPLETE, name=op.f("ck_dea_forms_form_106_complete")),
        sa.CheckConstraint("(corrects_id IS NULL) = (correction_note IS NULL)",
                           name=op.f("ck_dea_forms_correction_explained")),
        sa.ForeignKeyConstraint(["corrects_id"], ["dea_forms.id"],
                                name=op.f("fk_dea_forms_corrects_id_dea_forms"),
                                ondelete="RESTRICT"),
        *(sa.ForeignKeyConstraint([col], ["staff.id"], name=op.f(f"fk_dea_forms_{col}_staff"),
                                  ondelete="RESTRICT")
          for col in ("filed_by", "witness1_id", "witness2_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dea_forms")),
    )
    op.create_index("ix_dea_forms_filed_at", "dea_forms", ["filed_at"])


def _add_movement_columns_sqlite() -> None:
    """The new columns, and the foreign key as a table constraint (what the
    models reflect), in the table's stored definition: SQLite's ADD COLUMN
    itself only rewrites that definition, and existing rows read the new
    columns as NULL."""
    for ddl in ("order_form VARCHAR(40)", "supplier_dea VARCHAR(9)", "dea_form_id CHAR(32)"):
        op.execute(f"ALTER TABLE stock_movements ADD COLUMN {ddl}")
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND "
                               "name = 'stock_movements'")).scalar_one().rstrip()
    if not sql.endswith(")") or FORM_FK in sql:
        raise RuntimeError("stock_movements is not as revision 0019 left it")
    sql = (sql[:-1].rstrip() + f", \n\tCONSTRAINT {FORM_FK} FOREIGN KEY(dea_form_id) "
           "REFERENCES dea_forms (id) ON DELETE RESTRICT)")
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND "
                         "name = 'stock_movements'"), {"sql": sql})
    bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))
    problems = bind.execute(sa.text("PRAGMA integrity_check")).scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"stock_movements: integrity check after the change: {problems}")


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    _create_forms()
    if pg:
        op.execute("ALTER TABLE stock_movements ADD COLUMN order_form VARCHAR(40)")
        op.execute("ALTER TABLE stock_movements ADD COLUMN supplier_dea VARCHAR(9)")
        op.execute(f"ALTER TABLE stock_movements ADD COLUMN dea_form_id UUID CONSTRAINT {FORM_FK}"
                   " REFERENCES dea_forms (id) ON DELETE RESTRICT")
    else:
        _add_movement_columns_sqlite()
    op.create_index("ix_stock_movements_dea_form_id", "stock_movements", ["dea_form_id"])
    if not pg:
        sqlite_triggers.audit("stock_movements", MOVEMENT_COLUMNS)
        sqlite_triggers.permanent("dea_forms")
        sqlite_triggers.audit("dea_forms", FORM_COLUMNS)
        return
    m = _m0007()
    n = m._names()
    for action, ref in (("insert", "NEW TABLE AS new_rows"), ("delete", "OLD TABLE AS old_rows")):
        op.execute(f"CREATE TRIGGER dea_forms_audit_{action} AFTER {action.upper()} ON"
                   f" dea_forms REFERENCING {ref} FOR EACH STATEMENT"
                   " EXECUTE FUNCTION getmeds_audit('id')")
    op.execute("CREATE TRIGGER dea_forms_permanent_row BEFORE UPDATE OR DELETE ON dea_forms"
               " FOR EACH ROW EXECUTE FUNCTION getmeds_forbid_change()")
    op.execute("CREATE TRIGGER dea_forms_permanent_truncate BEFORE TRUNCATE ON dea_forms"
               " FOR EACH STATEMENT EXECUTE FUNCTION getmeds_forbid_change()")
    for fn in (GUARD_FORMS, CHECK_POSTED, GUARD_MOVEMENTS):
        op.execute(n.sql(fn))
    op.execute(n.sql("CREATE TRIGGER dea_forms_identity BEFORE INSERT ON @s.dea_forms"
                     f" FOR EACH ROW WHEN ({m.NOT_TRUSTED})"
                     " EXECUTE FUNCTION @s.getmeds_guard_dea_forms()"))
    op.execute(n.sql("CREATE CONSTRAINT TRIGGER dea_forms_posted AFTER INSERT ON @s.dea_forms"
                     " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
                     f" WHEN (NEW.corrects_id IS NULL AND {m.NOT_TRUSTED})"
                     " EXECUTE FUNCTION @s.getmeds_check_dea_form_posted()"))
    op.execute(n.sql("CREATE TRIGGER stock_movements_dea BEFORE INSERT ON @s.stock_movements"
                     f" FOR EACH ROW WHEN ({m.NOT_TRUSTED})"
                     " EXECUTE FUNCTION @s.getmeds_guard_dea_movements()"))
    for fn in FUNCTIONS:
        op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".{fn} FROM PUBLIC')
    for group in READERS:
        op.execute(f'GRANT SELECT ON dea_forms TO "{n.prefix}{group}"')
    for group in WRITERS:
        op.execute(f'GRANT INSERT ON dea_forms TO "{n.prefix}{group}"')
    backup = f"{n.prefix}backup"
    if op.get_bind().execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                             {"r": backup}).scalar():
        op.execute(f'GRANT SELECT ON dea_forms TO "{backup}"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        n = _m0007()._names()
        op.execute("DROP TRIGGER IF EXISTS stock_movements_dea ON stock_movements")
        op.execute("DROP INDEX ix_stock_movements_dea_form_id")
        for col in ("dea_form_id", "supplier_dea", "order_form"):
            op.execute(f"ALTER TABLE stock_movements DROP COLUMN {col}")
        op.execute("DROP TABLE dea_forms")
        for fn in FUNCTIONS:
            op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".{fn}')
        return
    op.execute("DROP INDEX ix_stock_movements_dea_form_id")
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND "
                               "name = 'stock_movements'")).scalar_one()
    constraint = (f", \n\tCONSTRAINT {FORM_FK} FOREIGN KEY(dea_form_id) "
                  "REFERENCES dea_forms (id) ON DELETE RESTRICT")
    if sql.count(constraint) != 1:
        raise RuntimeError("stock_movements is not as revision 0022 left it")
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND "
                         "name = 'stock_movements'"), {"sql": sql.replace(constraint, "")})
    bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))
    sqlite_triggers.audit("stock_movements", MOVEMENT_COLUMNS[:11] + ("id",))
    for col in ("dea_form_id", "supplier_dea", "order_form"):
        op.execute(f"ALTER TABLE stock_movements DROP COLUMN {col}")
    for name in ("no_update", "no_delete", "audit_insert", "audit_update", "audit_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS dea_forms_{name}")
    op.drop_index("ix_dea_forms_filed_at", table_name="dea_forms")
    op.drop_table("dea_forms")
