"""technician fills, pharmacist verification, release to the patient, return to stock

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 15:00:00

* ``dispenses`` gets its way to the patient: ``status`` (filled -> verified ->
  released, or -> returned), who and when of each step, the counselling offer
  at release and the ID seen, and why a fill went back to stock. What was
  filled stays permanent; only these columns change, and a step once recorded
  stays. Fills made before this revision were made and checked by a
  pharmacist in one step: they are recorded as verified by that pharmacist and
  released at their fill time.
* A returned fill no longer counts: the unique (prescription, fill, part) of
  0001 becomes a unique index over the fills not returned, so the refill can
  be filled again.
* ``stock_movements``: the kind ``restock`` (quantity > 0, with the dispense
  it reverses and a reason); the controlled register shows it.
* ``staff``: the role ``technician``.
* ``app_settings``: ``self_verify`` (one pharmacist may verify their own fill),
  ``return_after_days`` (default 14), ``id_check_controlled`` (default on),
  ``discard_after_months`` (the label's discard-by date: at most this long after
  the fill, and never after the lot's expiry; default 12).

PostgreSQL, on top: the group role <prefix>technician with its grants and
row-level policies (fills, labels, receipts and returns of ordinary stock, no
verification, no override of a severe warning, no controlled-stock change
other than the dispense itself); the login functions know the new group; an
UPDATE of a dispense is held to the steps (getmeds_guard_dispense_steps: who
may take which step, identity from the login, the self-verify setting, the ID
check) and a return to the lots and quantities the fill took
(getmeds_check_restock, at commit); the commit-time dispense check counts only
fills not returned.

SQLite: CHECK constraints are loosened in place (the procedure of
https://sqlite.org/lang_altertable.html#otheralter, which SQLite documents for
removing or relaxing a CHECK); dispenses is rebuilt (its unique constraint
changes) with foreign keys off (db.upgrade runs embedded migrations so and
checks every foreign key before commit).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_COLUMNS = ("prescription_id", "fill_number", "part", "quantity", "owed_after",
               "days_supply", "pharmacist_id", "dispensed_at", "request_id", "notes",
               "scan_text", "scan_ndc", "scan_gtin", "scan_lot", "scan_expiry",
               "no_scan_reason", "screening_data", "dispensed_product_id", "id")
STEP_COLUMNS = ("status", "verified_by", "verified_at", "released_by", "released_at",
                "counseling", "id_checked", "returned_by", "returned_at", "return_reason",
                "return_note")
STATUSES = ("filled", "verified", "released", "returned")
COUNSELING = ("offered", "accepted", "declined")
RETURN_REASONS = ("verification_refused", "not_picked_up", "patient_declined", "other")
KINDS = ("receipt", "dispense", "adjustment", "return", "write_off", "count", "transfer")
ROLES = ("admin", "pharmacist", "clerk", "doctor")


def _in(col: str, values: Sequence[str]) -> str:
    return f"{col} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


CHECKS = {  # name -> (table, old text, new text)
    "ck_staff_staff_role": ("staff", _in("role", ROLES), _in("role", (*ROLES, "technician"))),
    "ck_stock_movements_movement_kind": ("stock_movements", _in("kind", KINDS),
                                         _in("kind", (*KINDS, "restock"))),
    "ck_controlled_register_register_kind": ("controlled_register", _in("kind", KINDS),
                                             _in("kind", (*KINDS, "restock"))),
    "ck_stock_movements_quantity_sign": (
        "stock_movements",
        "(kind = 'receipt' AND quantity > 0) OR (kind IN ('dispense', 'return', 'write_off') "
        "AND quantity < 0) OR (kind IN ('adjustment', 'count', 'transfer') AND quantity <> 0)",
        "(kind IN ('receipt', 'restock') AND quantity > 0) OR (kind IN ('dispense', 'return', "
        "'write_off') AND quantity < 0) OR (kind IN ('adjustment', 'count', 'transfer') AND "
        "quantity <> 0)"),
    "ck_stock_movements_reason_required": (
        "stock_movements",
        "kind NOT IN ('adjustment', 'count', 'write_off', 'return') OR (reason IS NOT NULL AND "
        "length(reason) > 0)",
        "kind NOT IN ('adjustment', 'count', 'write_off', 'return', 'restock') OR (reason IS "
        "NOT NULL AND length(reason) > 0)"),
    "ck_stock_movements_dispense_reference": (
        "stock_movements", "(kind = 'dispense') = (dispense_id IS NOT NULL)",
        "(kind IN ('dispense', 'restock')) = (dispense_id IS NOT NULL)"),
}

DISPENSE_CHECKS = {
    "ck_dispenses_fill_status": _in("status", STATUSES),
    "ck_dispenses_counseling": "counseling IS NULL OR " + _in("counseling", COUNSELING),
    "ck_dispenses_return_reason": "return_reason IS NULL OR " + _in("return_reason",
                                                                    RETURN_REASONS),
    "ck_dispenses_verified_recorded": (
        "status = 'filled' OR (verified_by IS NOT NULL AND verified_at IS NOT NULL)"
        " OR (status = 'returned' AND return_reason = 'verification_refused')"),
    "ck_dispenses_released_recorded": (
        "status <> 'released' OR (released_by IS NOT NULL AND released_at IS NOT NULL)"),
    "ck_dispenses_returned_recorded": (
        "(status = 'returned') = (returned_by IS NOT NULL AND returned_at IS NOT NULL"
        " AND return_reason IS NOT NULL)"),
}
SETTINGS_COLUMNS = (
    ("self_verify", "BOOLEAN DEFAULT {false} NOT NULL"),
    ("return_after_days", "INTEGER DEFAULT 14 NOT NULL CONSTRAINT"
                          " ck_app_settings_return_after_range CHECK (return_after_days"
                          " BETWEEN 1 AND 90)"),
    ("id_check_controlled", "BOOLEAN DEFAULT {true} NOT NULL"),
    ("discard_after_months", "INTEGER DEFAULT 12 NOT NULL CONSTRAINT"
                             " ck_app_settings_discard_after_range CHECK (discard_after_months"
                             " BETWEEN 1 AND 12)"),
)


def _m0007() -> Any:
    return importlib.import_module("getmeds_desktop.migrations.versions.0007_database_boundary")


STEP_FKS = {c: f"fk_dispenses_{c}_staff" for c in ("verified_by", "released_by", "returned_by")}


def _step_columns_sql(uuid_type: str, stamp: str, *, fk: bool = True) -> list[str]:
    return [
        "status VARCHAR(8) DEFAULT 'filled' NOT NULL",
        f"verified_by {uuid_type}" + (f" CONSTRAINT {STEP_FKS['verified_by']} REFERENCES staff (id)"
                                  " ON DELETE RESTRICT" if fk else ""),
        f"verified_at {stamp}",
        f"released_by {uuid_type}" + (f" CONSTRAINT {STEP_FKS['released_by']} REFERENCES staff (id)"
                                  " ON DELETE RESTRICT" if fk else ""),
        f"released_at {stamp}",
        "counseling VARCHAR(8)",
        "id_checked VARCHAR(100)",
        f"returned_by {uuid_type}" + (f" CONSTRAINT {STEP_FKS['returned_by']} REFERENCES staff (id)"
                                  " ON DELETE RESTRICT" if fk else ""),
        f"returned_at {stamp}",
        "return_reason VARCHAR(20)",
        "return_note VARCHAR(300)",
    ]


# Historic fills: made and checked by one pharmacist, handed over at once.
BACKFILL = ("UPDATE dispenses SET status = 'released', verified_by = pharmacist_id,"
            " verified_at = dispensed_at, released_by = pharmacist_id,"
            " released_at = dispensed_at")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_pg()
    else:
        _upgrade_sqlite()


# ------------------------------------------------------------------ SQLite


def _loosen_sqlite(table: str, edits: Sequence[tuple[str, str]]) -> None:
    """Relax CHECK constraints of ``table`` in its stored definition (SQLite's
    documented procedure for removing or relaxing a CHECK: every existing row
    already satisfies the looser one)."""
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND "
                               "name = :t"), {"t": table}).scalar_one()
    for old, new in edits:
        if sql.count(old) != 1:
            raise RuntimeError(f"{table}: the constraint {old!r} is not as 0001 made it")
        sql = sql.replace(old, new)
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND "
                         "name = :t"), {"sql": sql, "t": table})
    bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))
    problems = bind.execute(sa.text("PRAGMA integrity_check")).scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"{table}: integrity check after the change: {problems}")


def _upgrade_sqlite() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("PRAGMA foreign_keys")).scalar():
        raise RuntimeError("revision 0015 rebuilds dispenses: run it through db.upgrade, "
                           "which turns foreign keys off for the embedded database")
    by_table: dict[str, list[tuple[str, str]]] = {}
    for _name, (table, old, new) in CHECKS.items():
        by_table.setdefault(table, []).append((old, new))
    for table, edits in by_table.items():
        _loosen_sqlite(table, edits)
    for name, spec in SETTINGS_COLUMNS:
        op.execute(f"ALTER TABLE app_settings ADD COLUMN {name} "
                   + spec.format(false="0", true="1"))

    # dispenses: the new columns, and the unique fill only over fills not returned
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND "
                               "name = 'dispenses'")).scalar_one()
    unique = (", \n\tCONSTRAINT uq_dispenses_prescription_id_fill_number_part UNIQUE "
              "(prescription_id, fill_number, part)")
    if sql.count(unique) != 1 or not sql.rstrip().endswith(")"):
        raise RuntimeError("dispenses is not as revision 0014 left it")
    body = sql.replace(unique, "").rstrip()[:-1].rstrip()
    body = body.replace("CREATE TABLE dispenses (", "CREATE TABLE dispenses_0015 (", 1)
    pk = "\n\tCONSTRAINT pk_dispenses PRIMARY KEY (id)"
    if body.count(pk) != 1:
        raise RuntimeError("dispenses is not as revision 0014 left it")
    body = body.replace(pk, "\n\t" + ", ".join(_step_columns_sql("CHAR(32)", "DATETIME",
                                                                  fk=False))
                        + "," + pk)
    checks = [f"CONSTRAINT {name} CHECK ({check})" for name, check in DISPENSE_CHECKS.items()]
    checks += [f"CONSTRAINT {name} FOREIGN KEY({col}) REFERENCES staff (id) ON DELETE RESTRICT"
               for col, name in STEP_FKS.items()]
    op.execute(body + ", \n\t" + ", \n\t".join(checks) + "\n)")
    cols = ", ".join(OLD_COLUMNS)
    op.execute(f"INSERT INTO dispenses_0015 ({cols}) SELECT {cols} FROM dispenses")
    op.execute(BACKFILL.replace("UPDATE dispenses", "UPDATE dispenses_0015"))
    for trigger in ("no_update", "no_delete", "audit_insert", "audit_update", "audit_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS dispenses_{trigger}")
    op.execute("DROP INDEX IF EXISTS ix_dispenses_dispensed_at")
    op.execute("DROP TABLE dispenses")
    op.execute("ALTER TABLE dispenses_0015 RENAME TO dispenses")
    op.execute("CREATE INDEX ix_dispenses_dispensed_at ON dispenses (dispensed_at)")
    op.execute("CREATE INDEX ix_dispenses_status ON dispenses (status, dispensed_at)")
    op.execute("CREATE UNIQUE INDEX ux_dispenses_fill_part ON dispenses"
               " (prescription_id, fill_number, part) WHERE status <> 'returned'")
    _sqlite_dispense_triggers()


def _sqlite_dispense_triggers() -> None:
    """What was filled never changes and no fill is removed; the steps change."""
    op.execute("CREATE TRIGGER dispenses_no_delete BEFORE DELETE ON dispenses BEGIN SELECT"
               " RAISE(ABORT, 'rows of dispenses are permanent records and cannot be changed"
               " or removed'); END")
    op.execute(f"CREATE TRIGGER dispenses_no_update BEFORE UPDATE OF {', '.join(OLD_COLUMNS)}"
               " ON dispenses BEGIN SELECT RAISE(ABORT, 'what was filled is a permanent record"
               " and cannot be changed'); END")
    sqlite_triggers.audit("dispenses", (*OLD_COLUMNS, *STEP_COLUMNS))


# -------------------------------------------------------------- PostgreSQL

GUARD_STEPS = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_dispense_steps() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    me uuid;
    my_role text;
    settings record;
    controlled boolean;
BEGIN
    IF (NEW.id, NEW.prescription_id, NEW.fill_number, NEW.part, NEW.quantity, NEW.owed_after,
        NEW.days_supply, NEW.pharmacist_id, NEW.dispensed_at, NEW.request_id, NEW.notes,
        NEW.scan_text, NEW.scan_ndc, NEW.scan_gtin, NEW.scan_lot, NEW.scan_expiry,
        NEW.no_scan_reason, NEW.screening_data, NEW.dispensed_product_id)
       IS DISTINCT FROM
       (OLD.id, OLD.prescription_id, OLD.fill_number, OLD.part, OLD.quantity, OLD.owed_after,
        OLD.days_supply, OLD.pharmacist_id, OLD.dispensed_at, OLD.request_id, OLD.notes,
        OLD.scan_text, OLD.scan_ndc, OLD.scan_gtin, OLD.scan_lot, OLD.scan_expiry,
        OLD.no_scan_reason, OLD.screening_data, OLD.dispensed_product_id) THEN
        RAISE EXCEPTION 'what was filled is a permanent record and cannot be changed'
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'Return the fill to stock and fill it again.';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
           (OLD.status = 'filled' AND NEW.status = 'verified')
        OR (OLD.status = 'filled' AND NEW.status = 'returned'
            AND NEW.return_reason = 'verification_refused')
        OR (OLD.status = 'verified' AND NEW.status = 'released')
        OR (OLD.status = 'verified' AND NEW.status = 'returned'
            AND NEW.return_reason <> 'verification_refused')) THEN
        RAISE EXCEPTION 'a fill that is % cannot become %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_steps';
    END IF;
    -- each step's columns change only with that step's own change of status, once
    IF ((NEW.verified_by, NEW.verified_at) IS DISTINCT FROM (OLD.verified_by, OLD.verified_at)
        AND NOT (OLD.status = 'filled' AND NEW.status = 'verified'))
       OR ((NEW.released_by, NEW.released_at, NEW.counseling, NEW.id_checked)
           IS DISTINCT FROM (OLD.released_by, OLD.released_at, OLD.counseling, OLD.id_checked)
           AND NOT (OLD.status = 'verified' AND NEW.status = 'released'))
       OR ((NEW.returned_by, NEW.returned_at, NEW.return_reason, NEW.return_note)
           IS DISTINCT FROM (OLD.returned_by, OLD.returned_at, OLD.return_reason,
                             OLD.return_note)
           AND NOT (OLD.status <> 'returned' AND NEW.status = 'returned')) THEN
        RAISE EXCEPTION 'a step of a fill is recorded only with the step itself, and once: '
            'it cannot be written or changed on its own'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.status = 'returned' AND OLD.status <> 'returned' AND EXISTS (
           SELECT 1 FROM @s.dispenses AS x
            WHERE x.prescription_id = NEW.prescription_id AND x.id <> NEW.id
              AND x.status <> 'returned'
              AND (x.fill_number, x.part) > (NEW.fill_number, NEW.part)) THEN
        RAISE EXCEPTION 'a later fill of this prescription is not returned: return it first'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_steps';
    END IF;
    IF @s.getmeds_trusted_session() OR NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NEW;
    END IF;
    SELECT st.id, st.role INTO me, my_role FROM @s.staff AS st
     WHERE st.username = session_user AND st.active;
    SELECT a.self_verify, a.id_check_controlled INTO settings FROM @s.app_settings AS a
     WHERE a.id = 1;
    SELECT p.schedule <> 'none' INTO controlled
      FROM @s.prescriptions AS r JOIN @s.products AS p ON p.id = r.product_id
     WHERE r.id = NEW.prescription_id;
    IF NEW.status = 'verified' OR NEW.return_reason = 'verification_refused' THEN
        IF NOT (my_role = 'pharmacist'
                AND pg_catalog.pg_has_role(session_user, @g_pharmacist, 'USAGE')) THEN
            RAISE EXCEPTION 'only a pharmacist verifies a fill'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.status = 'verified' AND NEW.verified_by IS DISTINCT FROM me
           OR NEW.status = 'returned' AND NEW.returned_by IS DISTINCT FROM me THEN
            RAISE EXCEPTION 'dispenses: the step is recorded as the signed-in staff member'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.status = 'verified' AND NEW.pharmacist_id = me
           AND NOT coalesce(settings.self_verify, false) THEN
            RAISE EXCEPTION 'a pharmacist does not verify their own fill here (setting: '
                'one pharmacist may fill and verify)'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        -- the time of a step is the server's
        IF NEW.status = 'verified' THEN
            NEW.verified_at := pg_catalog.now();
        ELSE
            NEW.returned_at := pg_catalog.now();
        END IF;
    ELSIF NEW.status = 'released' THEN
        IF my_role IS NULL OR my_role NOT IN ('pharmacist', 'technician', 'clerk') THEN
            RAISE EXCEPTION 'staff with the role % do not hand out fills', my_role
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF EXISTS (SELECT 1 FROM @s.prescriptions AS r WHERE r.id = NEW.prescription_id
                      AND r.status IN ('cancelled', 'on_hold')) THEN
            RAISE EXCEPTION 'the prescription is cancelled or on hold: its fill is not handed '
                'out' USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_steps';
        END IF;
        IF EXISTS (SELECT 1 FROM @s.stock_movements AS m
                     JOIN @s.stock_lots AS l ON l.id = m.lot_id
                    WHERE m.dispense_id = NEW.id AND m.kind = 'dispense'
                      AND l.status <> 'available') THEN
            RAISE EXCEPTION 'a lot of this fill is quarantined or recalled: it is not handed '
                'out' USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_steps';
        END IF;
        NEW.released_at := pg_catalog.now();
        IF NEW.released_by IS DISTINCT FROM me THEN
            RAISE EXCEPTION 'dispenses.released_by must be the signed-in staff member''s own id'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.counseling IS NULL THEN
            RAISE EXCEPTION 'a release records the offer to counsel'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_steps';
        END IF;
        IF controlled AND coalesce(settings.id_check_controlled, true)
           AND coalesce(pg_catalog.btrim(NEW.id_checked), '') = '' THEN
            RAISE EXCEPTION 'a controlled substance is released only after an ID is checked'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_steps';
        END IF;
    ELSE  -- returned after verification
        IF NOT (my_role = 'pharmacist' OR my_role = 'technician' AND NOT controlled) THEN
            RAISE EXCEPTION '%', CASE WHEN controlled
                THEN 'only a pharmacist returns a controlled substance to stock'
                ELSE 'only a pharmacist or a technician returns a fill to stock' END
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        NEW.returned_at := pg_catalog.now();
        IF NEW.returned_by IS DISTINCT FROM me THEN
            RAISE EXCEPTION 'dispenses.returned_by must be the signed-in staff member''s own id'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    RETURN NEW;
END $body$
"""

# At commit: a returned fill's stock went back to the lots it came from, in the
# quantities it took, and nothing else was put back in its name.
CHECK_RESTOCK = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_check_restock() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    d @s.dispenses;
    bad integer;
BEGIN
    IF TG_TABLE_NAME = 'dispenses' THEN
        d := NEW;
    ELSE
        SELECT * INTO d FROM @s.dispenses AS x WHERE x.id = NEW.dispense_id;
    END IF;
    IF d.status IS DISTINCT FROM 'returned' THEN
        RAISE EXCEPTION 'stock goes back for a fill only when the fill is returned'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_restock';
    END IF;
    SELECT pg_catalog.count(*) INTO bad FROM (
        SELECT m.lot_id,
               pg_catalog.sum(CASE WHEN m.kind = 'dispense' THEN -m.quantity ELSE 0 END) AS took,
               pg_catalog.sum(CASE WHEN m.kind = 'restock' THEN m.quantity ELSE 0 END) AS back
          FROM @s.stock_movements AS m WHERE m.dispense_id = d.id GROUP BY m.lot_id) AS x
     WHERE x.took <> x.back;
    IF bad > 0 THEN
        RAISE EXCEPTION 'a returned fill goes back to the lots it came from, in the quantities '
            'it took' USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_restock';
    END IF;
    RETURN NULL;
END $body$
"""

# A fill starts filled, with no step taken: a staff login cannot write one
# verified or released (the steps are UPDATEs, held to the steps guard).
GUARD_NEW_FILL = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_new_fill() RETURNS trigger
LANGUAGE plpgsql @path AS $body$
BEGIN
    IF NEW.status IS DISTINCT FROM 'filled' OR NEW.verified_by IS NOT NULL
       OR NEW.verified_at IS NOT NULL OR NEW.released_by IS NOT NULL
       OR NEW.released_at IS NOT NULL OR NEW.counseling IS NOT NULL
       OR NEW.id_checked IS NOT NULL OR NEW.returned_by IS NOT NULL
       OR NEW.returned_at IS NOT NULL OR NEW.return_reason IS NOT NULL THEN
        RAISE EXCEPTION 'a fill is written as filled; verification and release are steps '
            'taken afterwards' USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_steps';
    END IF;
    RETURN NEW;
END $body$
"""

# 0015's rule for who acknowledges what: a technician never a severe warning.
GUARD_WARNING_ROLE = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_warning_role() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
BEGIN
    IF NEW.severity = 'severe' AND NOT EXISTS (
           SELECT 1 FROM @s.staff AS st WHERE st.username = session_user AND st.active
              AND st.role IN ('pharmacist', 'admin')) THEN
        RAISE EXCEPTION 'only a pharmacist overrides a severe warning'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $body$
"""


class _Names:
    """0007's renderer, knowing the technician group too."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.prefix = base.prefix
        self.schema = base.schema

    def sql(self, text: str) -> str:
        groups = ("ARRAY[" + ", ".join(f"'{self.prefix}{g}'" for g in (*ROLES, "technician"))
                  + "]::text[]")
        text = text.replace("@groups", groups).replace(
            "@g_technician", f"'{self.prefix}technician'").replace("@schema", self.schema)
        return str(self.base.sql(text))


def _login_functions(m: Any, with_technician: bool) -> list[str]:
    """0007's login functions (and the database restriction), rendered for the
    groups of this revision."""
    out = []
    for text in m._functions():
        if not any(f"getmeds_{name}(" in text.split("\n", 2)[1] for name in (
                "create_login", "add_staff", "alter_login", "restrict_database")):
            continue
        if with_technician:
            text = text.replace(
                "WHEN @g_doctor THEN 'doctor' END;",
                "WHEN @g_doctor THEN 'doctor'\n"
                "                                WHEN @g_technician THEN 'technician' END;")
            text = text.replace(
                "groups text := pg_catalog.format('%I, %I, %I, %I, %I', @g_admin, @g_pharmacist,\n"
                "                                     @g_clerk, @g_doctor, @g_backup);",
                "groups text := pg_catalog.format('%I, %I, %I, %I, %I, %I', @g_admin,"
                " @g_pharmacist,\n                                     @g_clerk, @g_doctor,"
                " @g_technician, @g_backup);")
            if ("getmeds_add_staff(" in text or "restrict_database(" in text) \
                    and "@g_technician" not in text:
                raise RuntimeError("0007's login functions are not as 0007 made them")
        out.append(text)
    if len(out) != 4:
        raise RuntimeError("0007's login functions are not as 0007 made them")
    return out


def _check_dispense(text: str) -> str:
    """The commit-time dispense check (0007, as 0012 left it), counting only
    fills not returned and only the dispense's own movements."""
    old_part = ("           AND p.part = d.part - 1;")
    old_moved = "     WHERE m.dispense_id = d.id;"
    if text.count(old_part) != 1 or text.count(old_moved) != 1:
        raise RuntimeError("getmeds_check_dispense is not as 0012 left it")
    return (text.replace(old_part, "           AND p.part = d.part - 1 AND p.status <> "
                                   "'returned';")
            .replace(old_moved, "     WHERE m.dispense_id = d.id AND m.kind = 'dispense';"))


def _current_check_dispense(n: Any) -> str:
    m12 = importlib.import_module("getmeds_desktop.migrations.versions.0012_substitution")
    return str(m12._substituting(_m0007().CHECK_DISPENSE))


TECH_POLICIES = (
    "CREATE POLICY rx_read_technician ON prescriptions FOR SELECT TO {t} USING (true)",
    "CREATE POLICY rx_insert_technician ON prescriptions FOR INSERT TO {t}"
    " WITH CHECK (status = 'new')",
    "CREATE POLICY rx_update_technician ON prescriptions FOR UPDATE TO {t} USING (true)"
    " WITH CHECK (true)",
    "CREATE POLICY dsp_read_technician ON dispenses FOR SELECT TO {t} USING (true)",
    "CREATE POLICY dsp_insert_technician ON dispenses FOR INSERT TO {t} WITH CHECK (true)",
    "CREATE POLICY mv_read_technician ON stock_movements FOR SELECT TO {t} USING (true)",
    # the fill itself; receipts and returns to stock of ordinary products only
    "CREATE POLICY mv_insert_technician ON stock_movements FOR INSERT TO {t} WITH CHECK ("
    "kind = 'dispense' OR (kind IN ('receipt', 'restock') AND NOT"
    " getmeds_lot_controlled(lot_id)))",
    "CREATE POLICY lot_read_technician ON stock_lots FOR SELECT TO {t} USING (true)",
    "CREATE POLICY lot_insert_technician ON stock_lots FOR INSERT TO {t} WITH CHECK ("
    "NOT getmeds_product_controlled(product_id))",
    # a fill locks its lots (SELECT ... FOR UPDATE needs an UPDATE privilege and
    # policy); no row may be changed through it
    "CREATE POLICY lot_lock_technician ON stock_lots FOR UPDATE TO {t} USING (true)"
    " WITH CHECK (false)",
)
FUNCTIONS = ("getmeds_guard_dispense_steps()", "getmeds_check_restock()",
             "getmeds_guard_warning_role()", "getmeds_guard_new_fill()")
# the steps of a fill: who may take which is getmeds_guard_dispense_steps' rule
STEP_UPDATERS = ("admin", "pharmacist", "technician", "clerk")


def _upgrade_pg() -> None:
    bind = op.get_bind()
    m = _m0007()
    base = m._names()
    n = _Names(base)
    p = n.prefix
    tech = f"{p}technician"
    # constraints
    for name, (table, _old, new) in CHECKS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({new})")
    for name, spec in SETTINGS_COLUMNS:
        op.execute(f"ALTER TABLE app_settings ADD COLUMN {name} "
                   + spec.format(false="false", true="true"))
    for column in _step_columns_sql("UUID", "TIMESTAMP WITH TIME ZONE"):
        op.execute(f"ALTER TABLE dispenses ADD COLUMN {column}")
    op.execute("ALTER TABLE dispenses DISABLE TRIGGER dispenses_permanent_row")
    op.execute("ALTER TABLE dispenses DISABLE TRIGGER dispenses_audit_update")
    op.execute(BACKFILL)
    op.execute("ALTER TABLE dispenses ENABLE TRIGGER dispenses_audit_update")
    op.execute("DROP TRIGGER dispenses_permanent_row ON dispenses")
    for name, check in DISPENSE_CHECKS.items():
        op.execute(f"ALTER TABLE dispenses ADD CONSTRAINT {name} CHECK ({check})")
    op.execute("ALTER TABLE dispenses DROP CONSTRAINT "
               "uq_dispenses_prescription_id_fill_number_part")
    op.execute("CREATE UNIQUE INDEX ux_dispenses_fill_part ON dispenses"
               " (prescription_id, fill_number, part) WHERE status <> 'returned'")
    op.execute("CREATE INDEX ix_dispenses_status ON dispenses (status, dispensed_at)")
    # functions and triggers
    for text in (GUARD_STEPS, CHECK_RESTOCK, GUARD_WARNING_ROLE, GUARD_NEW_FILL,
                 _check_dispense(_current_check_dispense(n))):
        op.execute(n.sql(text))
    trusted = m.NOT_TRUSTED
    for statement in (
        "CREATE TRIGGER dispenses_permanent_delete BEFORE DELETE ON @s.dispenses FOR EACH ROW"
        " EXECUTE FUNCTION @s.getmeds_forbid_change()",
        "CREATE TRIGGER dispenses_new_fill BEFORE INSERT ON @s.dispenses FOR EACH ROW"
        f" WHEN ({trusted}) EXECUTE FUNCTION @s.getmeds_guard_new_fill()",
        "CREATE TRIGGER dispenses_steps BEFORE UPDATE ON @s.dispenses FOR EACH ROW"
        " EXECUTE FUNCTION @s.getmeds_guard_dispense_steps()",
        "CREATE CONSTRAINT TRIGGER dispenses_restock AFTER UPDATE ON @s.dispenses"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.status = 'returned'"
        f" AND OLD.status <> 'returned' AND {trusted})"
        " EXECUTE FUNCTION @s.getmeds_check_restock()",
        "CREATE CONSTRAINT TRIGGER stock_movements_restock AFTER INSERT ON @s.stock_movements"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.kind = 'restock'"
        f" AND {trusted}) EXECUTE FUNCTION @s.getmeds_check_restock()",
        "DROP TRIGGER stock_movements_dispense_consistent ON @s.stock_movements",
        "CREATE CONSTRAINT TRIGGER stock_movements_dispense_consistent AFTER INSERT"
        " ON @s.stock_movements DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
        f" WHEN (NEW.dispense_id IS NOT NULL AND NEW.kind = 'dispense' AND {trusted})"
        " EXECUTE FUNCTION @s.getmeds_check_dispense()",
        "CREATE TRIGGER dispense_warnings_role BEFORE INSERT ON @s.dispense_warnings"
        f" FOR EACH ROW WHEN ({trusted}) EXECUTE FUNCTION @s.getmeds_guard_warning_role()",
        # the queue on other workstations follows each step
        "CREATE TRIGGER getmeds_notify_update AFTER UPDATE ON @s.dispenses"
        " REFERENCING NEW TABLE AS rows FOR EACH STATEMENT"
        " EXECUTE FUNCTION @s.getmeds_notify_dispenses()",
    ):
        op.execute(n.sql(statement))
    for fn in FUNCTIONS:
        op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".{fn} FROM PUBLIC')

    # the technician group: what a pharmacist may do, less verification (the
    # steps guard), stocktakes, lot status and controlled stock (the policies)
    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{tech}') THEN
                CREATE ROLE "{tech}" NOLOGIN;
            END IF;
        END $$""")
    for text in _login_functions(m, with_technician=True):
        op.execute(n.sql(text))
    op.execute(n.sql("SELECT @s.getmeds_restrict_database()"))
    op.execute(f'GRANT USAGE ON SCHEMA "{n.schema}" TO "{tech}"')
    op.execute(f'GRANT USAGE ON SEQUENCE rx_number_seq TO "{tech}"')
    rows = bind.execute(sa.text(
        "SELECT table_name, string_agg(privilege_type, ', ' ORDER BY privilege_type)"
        " FROM information_schema.role_table_grants WHERE grantee = :g"
        " AND table_schema = current_schema() GROUP BY table_name"),
        {"g": f"{p}pharmacist"}).all()
    for table, privs in rows:
        if table in ("stocktakes", "stocktake_lines", "stock_lots"):
            privs = "SELECT" if table != "stock_lots" else "SELECT, INSERT"
        op.execute(f'GRANT {privs} ON "{table}" TO "{tech}"')
    for statement in TECH_POLICIES:
        op.execute(statement.format(t=f'"{tech}"'))
    op.execute(f'GRANT UPDATE (version) ON stock_lots TO "{tech}"')
    op.execute("CREATE POLICY dsp_steps ON dispenses FOR UPDATE TO "
               + ", ".join(f'"{p}{g}"' for g in STEP_UPDATERS) + " USING (true) WITH CHECK (true)")
    op.execute(f"GRANT UPDATE ({', '.join(STEP_COLUMNS)}) ON dispenses TO "
               + ", ".join(f'"{p}{g}"' for g in STEP_UPDATERS))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        raise RuntimeError(
            "The embedded database cannot go back before revision 0015: restore the copy "
            "GetMeds made before the upgrade (it sits next to the database file).")
    bind = op.get_bind()
    m = _m0007()
    base = m._names()
    n = _Names(base)
    p = n.prefix
    tech = f"{p}technician"
    if bind.execute(sa.text("SELECT 1 FROM dispenses WHERE status = 'returned' LIMIT 1")
                    ).scalar() or bind.execute(sa.text(
                        "SELECT 1 FROM staff WHERE role = 'technician' LIMIT 1")).scalar():
        raise RuntimeError("Fills were returned to stock or technicians were added: revision "
                           "0014 cannot hold them. Restore a backup made before 0015 instead.")
    op.execute(f"REVOKE UPDATE ({', '.join(STEP_COLUMNS)}) ON dispenses FROM "
               + ", ".join(f'"{p}{g}"' for g in STEP_UPDATERS))
    op.execute("DROP POLICY dsp_steps ON dispenses")
    for statement in TECH_POLICIES:
        name, table = re.findall(r"CREATE POLICY (\w+) ON (\w+)", statement)[0]
        op.execute(f"DROP POLICY {name} ON {table}")
    op.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{n.schema}" FROM "{tech}"')
    op.execute(f'REVOKE ALL ON SEQUENCE rx_number_seq FROM "{tech}"')
    op.execute(f'REVOKE ALL ON SCHEMA "{n.schema}" FROM "{tech}"')
    db_name = bind.execute(sa.text("SELECT current_database()")).scalar()
    op.execute(f'REVOKE ALL ON DATABASE "{db_name}" FROM "{tech}"')
    for text in _login_functions(m, with_technician=False):
        op.execute(base.sql(text.replace("@schema", n.schema)))
    for statement in (
        "DROP TRIGGER getmeds_notify_update ON @s.dispenses",
        "DROP TRIGGER dispense_warnings_role ON @s.dispense_warnings",
        "DROP TRIGGER stock_movements_dispense_consistent ON @s.stock_movements",
        "CREATE CONSTRAINT TRIGGER stock_movements_dispense_consistent AFTER INSERT"
        " ON @s.stock_movements DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
        f" WHEN (NEW.dispense_id IS NOT NULL AND {m.NOT_TRUSTED})"
        " EXECUTE FUNCTION @s.getmeds_check_dispense()",
        "DROP TRIGGER stock_movements_restock ON @s.stock_movements",
        "DROP TRIGGER dispenses_restock ON @s.dispenses",
        "DROP TRIGGER dispenses_steps ON @s.dispenses",
        "DROP TRIGGER dispenses_new_fill ON @s.dispenses",
        "DROP TRIGGER dispenses_permanent_delete ON @s.dispenses",
        "CREATE TRIGGER dispenses_permanent_row BEFORE DELETE OR UPDATE ON @s.dispenses"
        " FOR EACH ROW EXECUTE FUNCTION @s.getmeds_forbid_change()",
    ):
        op.execute(base.sql(statement))
    op.execute(base.sql(_current_check_dispense(n)))
    for fn in FUNCTIONS:
        op.execute(f'DROP FUNCTION "{n.schema}".{fn}')
    op.execute("DROP INDEX ix_dispenses_status")
    op.execute("DROP INDEX ux_dispenses_fill_part")
    op.execute("ALTER TABLE dispenses ADD CONSTRAINT "
               "uq_dispenses_prescription_id_fill_number_part UNIQUE (prescription_id, "
               "fill_number, part)")
    for name in DISPENSE_CHECKS:
        op.execute(f"ALTER TABLE dispenses DROP CONSTRAINT {name}")
    for column in reversed(STEP_COLUMNS):
        op.execute(f"ALTER TABLE dispenses DROP COLUMN {column}")
    for name, _spec in reversed(SETTINGS_COLUMNS):
        op.execute(f"ALTER TABLE app_settings DROP COLUMN {name}")
    for name, (table, old, _new) in CHECKS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({old})")
