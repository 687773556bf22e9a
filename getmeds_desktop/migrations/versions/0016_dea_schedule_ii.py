"""Schedule II fill dates and partial fills, DAW product-selection codes,
electronic prescriptions

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 15:00:00

* ``prescriptions.not_before``: the earliest date the prescriber lets the
  pharmacy fill it (21 CFR 1306.12(b)(1)(ii): multiple Schedule II prescriptions
  for up to a 90-day supply); NULL: no such date.
* ``prescriptions.daw_code``: the NCPDP product-selection (DAW) code 0-9
  (services/rxstate.py lists them). Existing prescriptions get 1 where
  ``daw`` was true and 0 where it was false. ``daw`` stays, kept equal by a
  CHECK (a trigger on the embedded database) to "the code forbids substituting
  another product" (codes 1, 2, 7 and 9), which is what the commit-time check of
  0012 reads.
* ``prescriptions.electronic``: the prescription arrived electronically
  (existing rows: false, nothing says they did; the app records it for every
  new one, true unless the form says paper).
* ``prescriptions.remainder_void_at`` / ``remainder_void_by`` /
  ``prescriber_notice``: a Schedule II remainder declared void, by whom, and how
  the prescriber was told (21 CFR 1306.13(a)).
* ``dispenses.partial_reason``: why a fill left some owed (shortage,
  patient_request, long_term_care; 21 CFR 1306.13(a)-(c), 21 U.S.C. 829(f)).
* PostgreSQL: ``getmeds_check_dea_schedule_ii`` (before a staff session's
  dispense is written) refuses a fill before ``not_before``, a Schedule II
  partial fill without its reason, and a Schedule II remainder after its limit
  or once void (the server's clock; a time the client wrote only where it is
  stricter);
  ``getmeds_guard_dea_prescriptions`` (before a staff session changes a
  prescription) lets only the prescriber move ``not_before`` earlier or remove
  it, freezes ``not_before``, ``daw_code`` and ``electronic`` once it has been
  dispensed, records the void as the signed-in staff member, and never undoes
  it. Dates are the pharmacy's: the time zone set on the database
  (``ALTER DATABASE ... SET timezone``), UTC when none is set.
* SQLite: the audit triggers of both tables list their columns, so they are
  made again (over the columns the tables have now).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# NCPDP codes under which the product dispensed must be the one prescribed
NO_SUBSTITUTION = "(1, 2, 7, 9)"
PARTIAL_REASONS = "('shortage', 'patient_request', 'long_term_care')"
RX_COLUMNS = ("not_before", "daw_code", "electronic", "remainder_void_at",
              "remainder_void_by", "prescriber_notice")

# The pharmacy's time zone: the one set on this database (by its owner; a staff
# login cannot change it, unlike its own session's TimeZone), else UTC.
PHARMACY_ZONE = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_pharmacy_time_zone() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER @path AS $body$
    SELECT coalesce((
        SELECT pg_catalog.substr(c, 10)
          FROM pg_catalog.pg_db_role_setting AS s, pg_catalog.unnest(s.setconfig) AS c
         WHERE s.setrole = 0 AND pg_catalog.lower(c) LIKE 'timezone=%'
           AND s.setdatabase = (SELECT d.oid FROM pg_catalog.pg_database AS d
                                 WHERE d.datname = pg_catalog.current_database())
         LIMIT 1), 'UTC')
$body$
"""

# Before a staff session's dispense is written. The clock is the server's, and a
# time the client wrote counts only where it is stricter: the earliest fill
# date is judged at the earlier of the two, a time limit at the later, and the
# 72 hours start at the earlier of the first part's dispensed_at and the moment
# the server recorded it (its audit row). 21 CFR 1306.12(b)(1)(ii);
# 1306.13(a) (shortage: 72 hours after the first partial filling), (b) and 21
# U.S.C. 829(f)(2)(A) (at the patient's or prescriber's request: 30 days after
# the date written), (c) (long-term care or terminal illness: 60 days).
CHECK_DEA = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_check_dea_schedule_ii() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    rx record;
    first record;
    zone text := @s.getmeds_pharmacy_time_zone();
    -- GREATEST and LEAST are constructs of the language, not functions
    at timestamptz := GREATEST(pg_catalog.now(), NEW.dispensed_at);
    today date := (GREATEST(pg_catalog.now(), NEW.dispensed_at) AT TIME ZONE zone)::date;
    earliest date := (LEAST(pg_catalog.now(), NEW.dispensed_at) AT TIME ZONE zone)::date;
    started timestamptz;
    last_day date;
BEGIN
    SELECT r.rx_number, r.not_before, r.date_written, r.remainder_void_at, p.schedule INTO rx
      FROM @s.prescriptions AS r JOIN @s.products AS p ON p.id = r.product_id
     WHERE r.id = NEW.prescription_id;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key refuses it
    END IF;
    IF rx.not_before IS NOT NULL AND earliest < rx.not_before THEN
        RAISE EXCEPTION 'Rx % may not be filled before % (21 CFR 1306.12(b))', rx.rx_number,
            rx.not_before USING ERRCODE = 'check_violation',
            CONSTRAINT = 'dispenses_dea_schedule_ii';
    END IF;
    IF rx.schedule <> 'II' THEN
        RETURN NEW;
    END IF;
    IF NEW.owed_after > 0 AND NEW.partial_reason IS NULL THEN
        RAISE EXCEPTION 'Rx %: a Schedule II partial fill records its reason (21 CFR 1306.13)',
            rx.rx_number USING ERRCODE = 'check_violation',
            CONSTRAINT = 'dispenses_dea_schedule_ii';
    END IF;
    IF NEW.part > 1 THEN
        IF rx.remainder_void_at IS NOT NULL THEN
            RAISE EXCEPTION 'Rx %: the rest of this Schedule II prescription is void',
                rx.rx_number USING ERRCODE = 'check_violation',
                CONSTRAINT = 'dispenses_dea_schedule_ii';
        END IF;
        SELECT d.id, d.partial_reason, d.dispensed_at INTO first FROM @s.dispenses AS d
         WHERE d.prescription_id = NEW.prescription_id AND d.fill_number = NEW.fill_number
           AND d.part = 1 AND d.status <> 'returned';  -- a returned fill no longer counts
        IF coalesce(first.partial_reason, 'shortage') = 'shortage' THEN
            SELECT pg_catalog.min(a.occurred_at) INTO started FROM @s.audit_log AS a
             WHERE a.table_name = 'dispenses' AND a.action = 'INSERT'
               AND a.row_id = first.id::text;
            started := LEAST(first.dispensed_at, started);
            IF at > started + interval '72 hours' THEN
                RAISE EXCEPTION 'Rx %: the rest of a Schedule II partial fill for a shortage '
                    'may be dispensed only within 72 hours of the first part (21 CFR '
                    '1306.13(a))', rx.rx_number USING ERRCODE = 'check_violation',
                    CONSTRAINT = 'dispenses_dea_schedule_ii';
            END IF;
        ELSE
            last_day := rx.date_written
                + CASE first.partial_reason WHEN 'long_term_care' THEN 60 ELSE 30 END;
            IF today > last_day THEN
                RAISE EXCEPTION 'Rx %: the rest of this Schedule II partial fill could be '
                    'dispensed until % (21 CFR 1306.13(b), (c))', rx.rx_number, last_day
                    USING ERRCODE = 'check_violation',
                    CONSTRAINT = 'dispenses_dea_schedule_ii';
            END IF;
        END IF;
    END IF;
    RETURN NEW;
END $body$
"""

GUARD_RX = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_dea_prescriptions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    me uuid;
BEGIN
    IF OLD.not_before IS NOT NULL
       AND (NEW.not_before IS NULL OR NEW.not_before < OLD.not_before)
       AND @s.getmeds_current_prescriber() IS DISTINCT FROM NEW.prescriber_id THEN
        RAISE EXCEPTION 'Rx %: only its prescriber may let it be filled earlier',
            OLD.rx_number USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.not_before, NEW.daw_code, NEW.electronic)
       IS DISTINCT FROM (OLD.not_before, OLD.daw_code, OLD.electronic)
       AND EXISTS (SELECT 1 FROM @s.dispenses AS d WHERE d.prescription_id = OLD.id) THEN
        RAISE EXCEPTION 'Rx % has been dispensed: what was prescribed cannot be changed',
            OLD.rx_number USING ERRCODE = 'check_violation',
            CONSTRAINT = 'prescriptions_dispensed_is_final';
    END IF;
    IF OLD.remainder_void_at IS NOT NULL THEN
        IF (NEW.remainder_void_at, NEW.remainder_void_by, NEW.prescriber_notice)
           IS DISTINCT FROM (OLD.remainder_void_at, OLD.remainder_void_by,
                             OLD.prescriber_notice) THEN
            RAISE EXCEPTION 'Rx %: a void remainder and its notice are a record and cannot '
                'be changed', OLD.rx_number USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF NEW.remainder_void_at IS NOT NULL THEN
        SELECT st.id INTO me FROM @s.staff AS st WHERE st.username = session_user AND st.active;
        IF NEW.remainder_void_by IS DISTINCT FROM me OR NEW.prescriber_notice IS NULL THEN
            RAISE EXCEPTION '%.remainder_void_by must be the signed-in staff member''s own id, '
                'with the prescriber notice', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        NEW.remainder_void_at := pg_catalog.now();
    END IF;
    RETURN NEW;
END $body$
"""


def _m0007() -> Any:
    return importlib.import_module("getmeds_desktop.migrations.versions.0007_database_boundary")


def _columns(table: str) -> tuple[str, ...]:
    rows = op.get_bind().execute(sa.text(f"PRAGMA table_info({table})")).all()
    return tuple(r[1] for r in rows)


def _sqlite_daw_triggers() -> None:
    for event in ("insert", "update"):
        op.execute(
            f"CREATE TRIGGER prescriptions_daw_matches_code_{event} BEFORE {event.upper()} ON"
            f" prescriptions WHEN NEW.daw IS NOT (NEW.daw_code IN {NO_SUBSTITUTION}) BEGIN"
            " SELECT RAISE(ABORT, 'prescriptions.daw must say whether daw_code forbids"
            " substitution (codes 1, 2, 7, 9)'); END")


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    uuid_type = "UUID" if pg else "CHAR(32)"
    stamp = "TIMESTAMP WITH TIME ZONE" if pg else "DATETIME"
    for ddl in (
        "not_before DATE",
        "daw_code SMALLINT DEFAULT 0 NOT NULL CONSTRAINT ck_prescriptions_daw_code_range"
        " CHECK (daw_code BETWEEN 0 AND 9)",
        "electronic BOOLEAN DEFAULT false NOT NULL" if pg
        else "electronic BOOLEAN DEFAULT 0 NOT NULL",
        f"remainder_void_at {stamp}",
        f"remainder_void_by {uuid_type}",
        "prescriber_notice VARCHAR(500)",
    ):
        op.execute(f"ALTER TABLE prescriptions ADD COLUMN {ddl}")
    op.execute("ALTER TABLE dispenses ADD COLUMN partial_reason VARCHAR(20) CONSTRAINT"
               f" ck_dispenses_partial_reason_known CHECK (partial_reason IN {PARTIAL_REASONS})")
    # true -> 1 (substitution not allowed by prescriber), false -> 0 (none indicated)
    op.execute("UPDATE prescriptions SET daw_code = 1 WHERE daw")
    if pg:
        op.execute("ALTER TABLE prescriptions ADD CONSTRAINT ck_prescriptions_daw_matches_code"
                   f" CHECK (daw = (daw_code IN {NO_SUBSTITUTION}))")
        m = _m0007()
        n = m._names()
        for fn in (PHARMACY_ZONE, CHECK_DEA, GUARD_RX):
            op.execute(n.sql(fn))
        op.execute(n.sql("CREATE TRIGGER dispenses_dea_schedule_ii BEFORE INSERT ON"
                         f" @s.dispenses FOR EACH ROW WHEN ({m.NOT_TRUSTED})"
                         " EXECUTE FUNCTION @s.getmeds_check_dea_schedule_ii()"))
        op.execute(n.sql("CREATE TRIGGER prescriptions_dea_guard BEFORE UPDATE ON"
                         f" @s.prescriptions FOR EACH ROW WHEN ({m.NOT_TRUSTED})"
                         " EXECUTE FUNCTION @s.getmeds_guard_dea_prescriptions()"))
        for fn in ("getmeds_pharmacy_time_zone()", "getmeds_check_dea_schedule_ii()",
                   "getmeds_guard_dea_prescriptions()"):
            op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".{fn} FROM PUBLIC')
    else:
        _sqlite_daw_triggers()
        sqlite_triggers.audit("prescriptions", _columns("prescriptions"))
        sqlite_triggers.audit("dispenses", _columns("dispenses"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        n = _m0007()._names()
        op.execute("DROP TRIGGER IF EXISTS dispenses_dea_schedule_ii ON dispenses")
        op.execute("DROP TRIGGER IF EXISTS prescriptions_dea_guard ON prescriptions")
        for fn in ("getmeds_check_dea_schedule_ii()", "getmeds_guard_dea_prescriptions()",
                   "getmeds_pharmacy_time_zone()"):
            op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".{fn}')
        op.execute("ALTER TABLE prescriptions DROP CONSTRAINT ck_prescriptions_daw_matches_code")
        op.execute("ALTER TABLE dispenses DROP COLUMN partial_reason")
        for col in RX_COLUMNS:
            op.execute(f"ALTER TABLE prescriptions DROP COLUMN {col}")
        return
    for event in ("insert", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS prescriptions_daw_matches_code_{event}")
    for table in ("prescriptions", "dispenses"):
        for action in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_audit_{action}")
    # SQLite drops a column that has no constraint of its own directly; the
    # checked ones need the table copied (batch mode)
    with op.batch_alter_table("dispenses") as b:
        b.drop_constraint(op.f("ck_dispenses_partial_reason_known"), type_="check")
        b.drop_column("partial_reason")
    with op.batch_alter_table("prescriptions") as b:
        b.drop_constraint(op.f("ck_prescriptions_daw_code_range"), type_="check")
        for col in RX_COLUMNS:
            b.drop_column(col)
    sqlite_triggers.audit("prescriptions", _columns("prescriptions"))
    sqlite_triggers.audit("dispenses", _columns("dispenses"))
    sqlite_triggers.permanent("dispenses")
