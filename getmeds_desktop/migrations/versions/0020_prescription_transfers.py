"""prescription transfers between pharmacies

Revision ID: 0020
Revises: 0024
Create Date: 2026-12-01 18:00:00

* ``prescription_transfers``: one row per transfer of a prescription to
  (``out``) or from (``in``) another pharmacy, with what 21 CFR 1306.25(b)
  and 1306.08(h) require to be recorded: the other pharmacy's name, address
  and DEA number, the pharmacist there, the pharmacist here, the date; for a
  transfer in, the original Rx number, the date of original dispensing, the
  refills authorized on the original and those remaining, the dates and
  locations of previous refills, and the pharmacy that filled it first when
  that is not the transferring one. The date written of the prescription made
  here is the original's (validity counts from it, 1306.22(a)). Permanent rows:
  nobody changes or removes them. At most one of each direction per
  prescription.
* ``prescriptions.status`` gets ``transferred``: closed here once its refills
  went to another pharmacy; nothing more is filled from it.

PostgreSQL, on top:

* ``getmeds_guard_transfers`` (before a staff session's transfer is written):
  only a pharmacist (or an administrator whose practice role is pharmacist)
  transfers; the row is the signed-in login's own, at the server's time. A
  transfer out: not of a cancelled or transferred prescription, nor with a fill
  still waiting to be verified or picked up; Schedule II only as the one-time
  transfer of an unfilled electronic prescription (1306.08(e)); Schedule III-V
  once only: never one that arrived by transfer (1306.25(a)), and an unfilled
  one only when electronic (1306.08(e); 1306.25 transfers refills). A transfer
  in: of a new prescription never dispensed here, whose refills are those
  remaining (less the one a first fill here uses when the original was
  dispensed before); a Schedule II or an unfilled controlled one is
  electronic, and a Schedule II one was never dispensed.
* ``getmeds_check_transfer_closed`` (at commit): a transfer out leaves its
  prescription transferred.
* ``getmeds_guard_transferred_rx`` (before a staff session writes a
  prescription): none is entered transferred, one becomes transferred only with
  its transfer out, stays so, and a prescription that arrived by transfer
  keeps its product, date written, refills and electronic flag.
* ``getmeds_guard_transferred_fill`` (before a staff session's dispense): a
  transferred prescription is not dispensed (next to 0007's
  getmeds_guard_dispenses and 0015's getmeds_guard_new_fill).
* Row-level security: every staff group reads the transfers of the
  prescriptions it may read (a doctor: their own); pharmacists and
  administrators write them (the guard decides who of them may).

SQLite: the status CHECK is loosened in place (0015's procedure); the new
table's rows are permanent and audited by triggers.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0020"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "prescription_transfers"
COLUMNS = ("id", "prescription_id", "direction", "pharmacy_name", "pharmacy_address",
           "pharmacy_dea", "other_pharmacist", "pharmacist_id", "transferred_at",
           "original_rx_number", "original_dispensed_on", "refills_authorized_original",
           "refills_remaining", "previous_refills", "original_pharmacy", "request_id")
OLD_STATUSES = ("'new', 'in_progress', 'ready_for_check', 'partially_dispensed', 'dispensed', "
                "'on_hold', 'cancelled'")
STATUS_CHECK = "status IN ({})"
READERS = ("admin", "pharmacist", "technician", "clerk", "doctor")
WRITERS = ("admin", "pharmacist")

GUARD_TRANSFERS = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_transfers() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    me uuid;
    is_pharmacist boolean;
    rx record;
    arrived boolean;
    filled boolean;
    waiting boolean;
BEGIN
    SELECT st.id, (st.role = 'pharmacist' OR st.practice_role = 'pharmacist')
      INTO me, is_pharmacist FROM @s.staff AS st
     WHERE st.username = session_user AND st.active;
    IF NOT coalesce(is_pharmacist, false) THEN
        RAISE EXCEPTION 'only a pharmacist transfers a prescription (21 CFR 1306.25(b)(1))'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.pharmacist_id IS DISTINCT FROM me THEN
        RAISE EXCEPTION '%.pharmacist_id must be the signed-in staff member''s own id',
            TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.transferred_at := pg_catalog.now();  -- the server's time, not the client's
    SELECT r.rx_number, r.status, r.electronic, r.refills_authorized, r.date_written,
           p.schedule INTO rx
      FROM @s.prescriptions AS r JOIN @s.products AS p ON p.id = r.product_id
     WHERE r.id = NEW.prescription_id FOR NO KEY UPDATE OF r;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key refuses it
    END IF;
    SELECT EXISTS (SELECT 1 FROM @s.prescription_transfers AS t
                    WHERE t.prescription_id = NEW.prescription_id AND t.direction = 'in'),
           EXISTS (SELECT 1 FROM @s.dispenses AS d
                    WHERE d.prescription_id = NEW.prescription_id AND d.status <> 'returned'),
           EXISTS (SELECT 1 FROM @s.dispenses AS d
                    WHERE d.prescription_id = NEW.prescription_id
                      AND d.status IN ('filled', 'verified'))
      INTO arrived, filled, waiting;
    IF NEW.direction = 'out' THEN
        IF rx.status IN ('cancelled', 'transferred') THEN
            RAISE EXCEPTION 'Rx % is %: it cannot be transferred', rx.rx_number, rx.status
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
        IF waiting THEN
            RAISE EXCEPTION 'Rx % has a fill waiting for verification or pickup: hand it out '
                'or return it to stock first', rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
        IF rx.schedule = 'II' AND (NOT rx.electronic OR filled OR arrived) THEN
            RAISE EXCEPTION 'Rx % is Schedule II: only an electronic prescription never '
                'filled is transferred, once (21 CFR 1306.08(e))', rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
        IF rx.schedule IN ('III', 'IV', 'V') AND arrived THEN
            RAISE EXCEPTION 'Rx % arrived by transfer: a Schedule III-V prescription is '
                'transferred once only (21 CFR 1306.25(a))', rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
        IF rx.schedule IN ('III', 'IV', 'V') AND NOT filled AND NOT rx.electronic THEN
            RAISE EXCEPTION 'Rx % was never filled and is not electronic: only an electronic '
                'prescription is transferred for its initial filling (21 CFR 1306.08(e))',
                rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
    ELSE
        IF rx.status <> 'new' OR filled OR EXISTS (
               SELECT 1 FROM @s.dispenses AS d WHERE d.prescription_id = NEW.prescription_id) THEN
            RAISE EXCEPTION 'Rx %: a transfer in is recorded with the new prescription, '
                'before any fill', rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
        -- a first fill here of an original dispensed before is one of its refills
        IF rx.refills_authorized IS DISTINCT FROM
               NEW.refills_remaining - (NEW.original_dispensed_on IS NOT NULL)::integer THEN
            RAISE EXCEPTION 'Rx %: a transferred prescription has only the refills remaining',
                rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
        IF NEW.original_dispensed_on IS NULL
           AND NEW.refills_remaining IS DISTINCT FROM NEW.refills_authorized_original THEN
            RAISE EXCEPTION 'Rx %: an original never dispensed has all its refills remaining',
                rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
        IF NEW.original_dispensed_on < rx.date_written THEN
            RAISE EXCEPTION 'Rx %: the original was dispensed before it was written',
                rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
        IF rx.schedule = 'II' AND NEW.original_dispensed_on IS NOT NULL THEN
            RAISE EXCEPTION 'Rx %: a Schedule II prescription is transferred only for its '
                'initial filling (21 CFR 1306.08(e))', rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
        IF rx.schedule <> 'none' AND NEW.original_dispensed_on IS NULL AND NOT rx.electronic THEN
            RAISE EXCEPTION 'Rx %: a controlled prescription transferred for its initial '
                'filling is electronic (21 CFR 1306.08(e), (g))', rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
    END IF;
    RETURN NEW;
END $body$
"""

CHECK_CLOSED = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_check_transfer_closed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM @s.prescriptions AS r
                    WHERE r.id = NEW.prescription_id AND r.status = 'transferred') THEN
        RAISE EXCEPTION 'a prescription transferred out is closed here (status transferred)'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
    END IF;
    RETURN NULL;
END $body$
"""

GUARD_RX = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_transferred_rx() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status = 'transferred' THEN
            RAISE EXCEPTION 'a prescription is not entered transferred'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status = 'transferred' AND NEW.status IS DISTINCT FROM 'transferred' THEN
        RAISE EXCEPTION 'Rx % was transferred to another pharmacy: it stays closed here',
            OLD.rx_number
            USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
    END IF;
    IF NEW.status = 'transferred' AND OLD.status <> 'transferred' AND NOT EXISTS (
           SELECT 1 FROM @s.prescription_transfers AS t
            WHERE t.prescription_id = OLD.id AND t.direction = 'out') THEN
        RAISE EXCEPTION 'Rx % becomes transferred only with its transfer out recorded',
            OLD.rx_number
            USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
    END IF;
    IF (NEW.product_id, NEW.date_written, NEW.refills_authorized, NEW.electronic)
       IS DISTINCT FROM (OLD.product_id, OLD.date_written, OLD.refills_authorized,
                         OLD.electronic)
       AND EXISTS (SELECT 1 FROM @s.prescription_transfers AS t
                    WHERE t.prescription_id = OLD.id AND t.direction = 'in') THEN
        RAISE EXCEPTION 'Rx % arrived by transfer: its product, date written, refills and '
            'electronic flag are the original''s', OLD.rx_number
            USING ERRCODE = 'check_violation', CONSTRAINT = 'prescription_transfers_rules';
    END IF;
    RETURN NEW;
END $body$
"""

GUARD_FILL = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_transferred_fill() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    number bigint;
BEGIN
    SELECT r.rx_number INTO number FROM @s.prescriptions AS r
     WHERE r.id = NEW.prescription_id AND (r.status = 'transferred' OR EXISTS (
           SELECT 1 FROM @s.prescription_transfers AS t
            WHERE t.prescription_id = r.id AND t.direction = 'out'));
    IF FOUND THEN
        RAISE EXCEPTION 'Rx % was transferred to another pharmacy: it cannot be dispensed '
            'here', number USING ERRCODE = 'check_violation',
            CONSTRAINT = 'dispenses_consistent';
    END IF;
    RETURN NEW;
END $body$
"""

FUNCTIONS = ("getmeds_guard_transfers()", "getmeds_check_transfer_closed()",
             "getmeds_guard_transferred_rx()", "getmeds_guard_transferred_fill()")
TRIGGERS = (
    ("transfers_identity", TABLE),
    ("transfers_closed", TABLE),
    ("prescriptions_transferred", "prescriptions"),
    ("dispenses_not_transferred", "dispenses"),
)


def _m(name: str) -> Any:
    return importlib.import_module(f"getmeds_desktop.migrations.versions.{name}")


def _statuses(with_transferred: bool) -> str:
    return STATUS_CHECK.format(OLD_STATUSES + (", 'transferred'" if with_transferred else ""))


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    if pg:
        op.execute("ALTER TABLE prescriptions DROP CONSTRAINT ck_prescriptions_rx_status")
        op.execute("ALTER TABLE prescriptions ADD CONSTRAINT ck_prescriptions_rx_status"
                   f" CHECK ({_statuses(True)})")
    else:
        _m("0015_fill_verify_release")._loosen_sqlite(
            "prescriptions", [(_statuses(False), _statuses(True))])
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("prescription_id", sa.Uuid(), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("pharmacy_name", sa.String(200), nullable=False),
        sa.Column("pharmacy_address", sa.String(300), nullable=False),
        sa.Column("pharmacy_dea", sa.String(9), nullable=True),
        sa.Column("other_pharmacist", sa.String(200), nullable=False),
        sa.Column("pharmacist_id", sa.Uuid(), nullable=False),
        sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("original_rx_number", sa.String(40), nullable=True),
        sa.Column("original_dispensed_on", sa.Date(), nullable=True),
        sa.Column("refills_authorized_original", sa.Integer(), nullable=True),
        sa.Column("refills_remaining", sa.Integer(), nullable=True),
        sa.Column("previous_refills", sa.String(1000), nullable=True),
        sa.Column("original_pharmacy", sa.String(500), nullable=True),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("direction IN ('out', 'in')",
                           name=op.f("ck_prescription_transfers_direction_known")),
        sa.CheckConstraint("length(pharmacy_name) > 0 AND length(pharmacy_address) > 0"
                           " AND length(other_pharmacist) > 0",
                           name=op.f("ck_prescription_transfers_parties_present")),
        sa.CheckConstraint(
            "direction = 'out' OR (original_rx_number IS NOT NULL AND length(original_rx_number)"
            " > 0 AND refills_authorized_original IS NOT NULL AND refills_remaining IS NOT NULL)",
            name=op.f("ck_prescription_transfers_original_recorded")),
        sa.CheckConstraint(
            "refills_remaining IS NULL OR (refills_remaining >= 0 AND refills_remaining <="
            " refills_authorized_original)", name=op.f("ck_prescription_transfers_refills_range")),
        sa.ForeignKeyConstraint(["prescription_id"], ["prescriptions.id"],
                                name=op.f("fk_prescription_transfers_prescription_id_prescriptions"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["pharmacist_id"], ["staff.id"],
                                name=op.f("fk_prescription_transfers_pharmacist_id_staff"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prescription_transfers")),
        sa.UniqueConstraint("request_id", name=op.f("uq_prescription_transfers_request_id")),
    )
    op.create_index("ux_prescription_transfers_one", TABLE, ["prescription_id", "direction"],
                    unique=True)
    if not pg:
        sqlite_triggers.permanent(TABLE)
        sqlite_triggers.audit(TABLE, COLUMNS)
        return
    _upgrade_pg()


def _upgrade_pg() -> None:
    bind = op.get_bind()
    m = _m("0007_database_boundary")
    n = m._names()
    trusted = m.NOT_TRUSTED
    for action, ref in (("insert", "NEW TABLE AS new_rows"), ("delete", "OLD TABLE AS old_rows")):
        op.execute(f"CREATE TRIGGER {TABLE}_audit_{action} AFTER {action.upper()} ON {TABLE}"
                   f" REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION getmeds_audit('id')")
    op.execute(f"CREATE TRIGGER {TABLE}_permanent_row BEFORE UPDATE OR DELETE ON {TABLE}"
               " FOR EACH ROW EXECUTE FUNCTION getmeds_forbid_change()")
    op.execute(f"CREATE TRIGGER {TABLE}_permanent_truncate BEFORE TRUNCATE ON {TABLE}"
               " FOR EACH STATEMENT EXECUTE FUNCTION getmeds_forbid_change()")
    for text in (GUARD_TRANSFERS, CHECK_CLOSED, GUARD_RX, GUARD_FILL):
        op.execute(n.sql(text))
    for statement in (
        f"CREATE TRIGGER transfers_identity BEFORE INSERT ON @s.{TABLE} FOR EACH ROW"
        f" WHEN ({trusted}) EXECUTE FUNCTION @s.getmeds_guard_transfers()",
        f"CREATE CONSTRAINT TRIGGER transfers_closed AFTER INSERT ON @s.{TABLE}"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
        f" WHEN (NEW.direction = 'out' AND {trusted})"
        " EXECUTE FUNCTION @s.getmeds_check_transfer_closed()",
        "CREATE TRIGGER prescriptions_transferred BEFORE INSERT OR UPDATE ON @s.prescriptions"
        f" FOR EACH ROW WHEN ({trusted}) EXECUTE FUNCTION @s.getmeds_guard_transferred_rx()",
        "CREATE TRIGGER dispenses_not_transferred BEFORE INSERT ON @s.dispenses FOR EACH ROW"
        f" WHEN ({trusted}) EXECUTE FUNCTION @s.getmeds_guard_transferred_fill()",
    ):
        op.execute(n.sql(statement))
    for fn in FUNCTIONS:
        op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".{fn} FROM PUBLIC')
    op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    readers = ", ".join(f'"{n.prefix}{g}"' for g in READERS)
    writers = ", ".join(f'"{n.prefix}{g}"' for g in WRITERS)
    # the transfers of the prescriptions the login may read (its own RLS applies)
    op.execute(f"CREATE POLICY transfers_read ON {TABLE} FOR SELECT TO {readers} USING"
               " (EXISTS (SELECT 1 FROM prescriptions AS r WHERE r.id = prescription_id))")
    op.execute(f"CREATE POLICY transfers_insert ON {TABLE} FOR INSERT TO {writers}"
               " WITH CHECK (true)")
    op.execute(f"GRANT SELECT ON {TABLE} TO {readers}")
    op.execute(f"GRANT INSERT ON {TABLE} TO {writers}")
    backup = f"{n.prefix}backup"
    if bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                    {"r": backup}).scalar():
        op.execute(f'GRANT SELECT ON {TABLE} TO "{backup}"')
        op.execute(f'CREATE POLICY transfers_backup ON {TABLE} FOR SELECT TO "{backup}"'
                   " USING (true)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text(f"SELECT 1 FROM {TABLE} LIMIT 1")).scalar() or bind.execute(
            sa.text("SELECT 1 FROM prescriptions WHERE status = 'transferred' LIMIT 1")).scalar():
        raise RuntimeError("Prescriptions were transferred out or in: the revision before 0020 "
                           "cannot hold those records. Restore a backup made before 0020 instead.")
    if bind.dialect.name == "postgresql":
        n = _m("0007_database_boundary")._names()
        for trigger, table in TRIGGERS[2:]:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        op.execute(f"DROP TABLE {TABLE}")
        for fn in FUNCTIONS:
            op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".{fn}')
        op.execute("ALTER TABLE prescriptions DROP CONSTRAINT ck_prescriptions_rx_status")
        op.execute("ALTER TABLE prescriptions ADD CONSTRAINT ck_prescriptions_rx_status"
                   f" CHECK ({_statuses(False)})")
        return
    for name in ("no_update", "no_delete", "audit_insert", "audit_update", "audit_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_{name}")
    op.drop_index("ux_prescription_transfers_one", table_name=TABLE)
    op.drop_table(TABLE)
    # no prescription is transferred (checked above): the narrower CHECK holds every row
    _m("0015_fill_verify_release")._loosen_sqlite(
        "prescriptions", [(_statuses(True), _statuses(False))])
