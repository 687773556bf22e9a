"""the longest Schedule II supply (a setting) and the 90-day total of Schedule II prescriptions written together, held by the database

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 18:00:00

* ``app_settings``: ``schedule_ii_max_days`` (default 90) and
  ``schedule_ii_over_limit`` ('warn' or 'refuse'): one Schedule II prescription
  for more days is a stop in the screening, or refused.
* PostgreSQL: ``getmeds_check_schedule_ii_supply``, a constraint trigger at
  commit on a staff session's prescriptions, refuses what the service refuses:
  Schedule II prescriptions of one prescriber for one patient and product
  written on one day that total more than 90 days (21 CFR 1306.12(b)(1)(i)),
  and, when the setting says refuse, one for more days than the setting. The
  prescriptions of one patient are checked one transaction at a time (an
  advisory lock), so two workstations cannot each add half. The embedded
  database has no logins: the service is the rule there.
* PostgreSQL: the staff groups may call ``getmeds_pharmacy_time_zone()``
  (0016): the app reads the pharmacy's time zone at sign-in, so that it shows
  and judges dates as the database's rules do.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTINGS_COLUMNS = (
    ("schedule_ii_max_days", "INTEGER DEFAULT 90 NOT NULL CONSTRAINT"
                             " ck_app_settings_schedule_ii_max_days_range CHECK"
                             " (schedule_ii_max_days BETWEEN 1 AND 365)"),
    ("schedule_ii_over_limit", "VARCHAR(6) DEFAULT 'warn' NOT NULL CONSTRAINT"
                               " ck_app_settings_schedule_ii_over_limit_value CHECK"
                               " (schedule_ii_over_limit IN ('warn', 'refuse'))"),
)

STAFF_GROUPS = ("admin", "pharmacist", "technician", "clerk", "doctor")

# 21 CFR 1306.12(b)(1): multiple Schedule II prescriptions, issued on the same
# day, may total up to a 90-day supply.
MULTIPLE_DAYS = 90

CHECK = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_check_schedule_ii_supply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    rx record;
    total bigint;
    others bigint;
    cfg record;
BEGIN
    SELECT p.id, p.rx_number, p.patient_id, p.prescriber_id, p.product_id, p.date_written,
           p.days_supply, p.status, pr.schedule
      INTO rx
      FROM @s.prescriptions AS p JOIN @s.products AS pr ON pr.id = p.product_id
     WHERE p.id = NEW.id;
    IF NOT FOUND OR rx.schedule <> 'II' OR rx.status = 'cancelled' THEN
        RETURN NULL;
    END IF;
    -- one patient's Schedule II prescriptions are judged one transaction at a time
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('getmeds_schedule_ii'),
                                             pg_catalog.hashtext(rx.patient_id::text));
    SELECT pg_catalog.count(*), pg_catalog.sum(p.days_supply) INTO others, total
      FROM @s.prescriptions AS p
     WHERE p.patient_id = rx.patient_id AND p.prescriber_id = rx.prescriber_id
       AND p.product_id = rx.product_id AND p.date_written = rx.date_written
       AND p.status <> 'cancelled' AND p.id <> rx.id;
    IF others > 0 AND total + rx.days_supply > @multiple THEN
        RAISE EXCEPTION 'Rx %: Schedule II prescriptions written together total % days; '
            'at most @multiple are allowed (21 CFR 1306.12(b))', rx.rx_number,
            total + rx.days_supply
            USING ERRCODE = 'check_violation', CONSTRAINT = 'prescriptions_schedule_ii_supply';
    END IF;
    SELECT a.schedule_ii_max_days, a.schedule_ii_over_limit INTO cfg
      FROM @s.app_settings AS a WHERE a.id = 1;
    IF FOUND AND cfg.schedule_ii_over_limit = 'refuse'
       AND rx.days_supply > cfg.schedule_ii_max_days THEN
        RAISE EXCEPTION 'Rx %: a Schedule II supply of % days is more than the % days this '
            'pharmacy allows', rx.rx_number, rx.days_supply, cfg.schedule_ii_max_days
            USING ERRCODE = 'check_violation', CONSTRAINT = 'prescriptions_schedule_ii_supply';
    END IF;
    RETURN NULL;
END $body$
""".replace("@multiple", str(MULTIPLE_DAYS))


def _m0007() -> Any:
    return importlib.import_module("getmeds_desktop.migrations.versions.0007_database_boundary")


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    for name, spec in SETTINGS_COLUMNS:
        op.execute(f"ALTER TABLE app_settings ADD COLUMN {name} {spec}")
    if not pg:
        return
    m = _m0007()
    n = m._names()
    op.execute(n.sql(CHECK))
    op.execute(n.sql(
        "CREATE CONSTRAINT TRIGGER prescriptions_schedule_ii_supply AFTER INSERT OR UPDATE OF"
        " days_supply, product_id, patient_id, prescriber_id, date_written, status"
        " ON @s.prescriptions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
        f" WHEN ({m.NOT_TRUSTED}) EXECUTE FUNCTION @s.getmeds_check_schedule_ii_supply()"))
    op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".getmeds_check_schedule_ii_supply() '
               "FROM PUBLIC")
    # the app reads the pharmacy's time zone at sign-in, to show and judge dates as
    # the database's rules do (it says nothing but the zone's name)
    groups = ", ".join(f'"{n.prefix}{g}"' for g in STAFF_GROUPS)
    op.execute(f'GRANT EXECUTE ON FUNCTION "{n.schema}".getmeds_pharmacy_time_zone() '
               f"TO {groups}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        n = _m0007()._names()
        groups = ", ".join(f'"{n.prefix}{g}"' for g in STAFF_GROUPS)
        op.execute(f'REVOKE EXECUTE ON FUNCTION "{n.schema}".getmeds_pharmacy_time_zone() '
                   f"FROM {groups}")
        op.execute("DROP TRIGGER IF EXISTS prescriptions_schedule_ii_supply ON prescriptions")
        op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".getmeds_check_schedule_ii_supply()')
    for name, _spec in SETTINGS_COLUMNS:
        op.execute(f"ALTER TABLE app_settings DROP COLUMN {name}")
