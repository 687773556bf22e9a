"""a fill prepared from unlocked reads is checked under its locks when it is written; an index of a prescription's fills by time

Revision ID: 0025
Revises: 0020
Create Date: 2026-12-01 21:30:00

On PostgreSQL a dispense now reads what it needs (the prescription, the lots,
the screening) without locking it, in one round trip, and sends its writes with
BEGIN and COMMIT in a second (psycopg's pipeline mode), so that no lock is held
while the answer travels to the workstation and back. The first write of that
transaction is ``getmeds_fill_unchanged``: it locks the prescription and the
lots the fill takes (in a fixed order) and refuses the whole transaction
(SQLSTATE 40001, constraint ``fill_unchanged``) if the prescription's version
is no longer the one read, or a lot is no longer available, expired by the
pharmacy's day, or short of what the fill takes. The app then reads again and
decides again (services/dispensing.py). It returns the fill's time, taken once
the locks are held, and leaves it in the transaction's ``getmeds.fill_at``
for the rows the fill writes.

The function runs with the caller's own privileges (SECURITY INVOKER): it can
lock only rows the caller could lock itself with SELECT ... FOR UPDATE, and it
writes nothing. Every other rule of a dispense stays where it was (the
triggers of 0007, 0015, 0016, 0020, 0022 and 0023).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from alembic import op

revision: str = "0025"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAFF_GROUPS = ("admin", "pharmacist", "technician", "clerk", "doctor")
SIGNATURE = "getmeds_fill_unchanged(uuid, integer, uuid[], integer[], date, timestamptz)"

FILL_UNCHANGED = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_fill_unchanged(
    rx uuid, rx_version integer, lots uuid[], takes integer[], day date, at timestamptz)
    RETURNS timestamptz
LANGUAGE plpgsql SECURITY INVOKER @path AS $body$
DECLARE
    found_version integer;
    good integer;
    fill_at timestamptz;
BEGIN
    SELECT p.version INTO found_version FROM @s.prescriptions AS p
     WHERE p.id = rx FOR UPDATE;
    IF found_version IS DISTINCT FROM rx_version THEN
        RAISE EXCEPTION 'the prescription changed after this fill was prepared'
            USING ERRCODE = 'serialization_failure', CONSTRAINT = 'fill_unchanged';
    END IF;
    -- the lots in one order whoever locks them, so that fills never deadlock
    PERFORM 1 FROM @s.stock_lots AS l WHERE l.id = ANY (lots) ORDER BY l.id FOR UPDATE;
    SELECT pg_catalog.count(*) INTO good
      FROM ROWS FROM (pg_catalog.unnest(lots), pg_catalog.unnest(takes)) AS w(lot_id, take)
      JOIN @s.stock_lots AS l ON l.id = w.lot_id
     WHERE l.status = 'available' AND l.expiry_date >= day AND l.on_hand >= w.take;
    IF good <> pg_catalog.cardinality(lots) THEN
        RAISE EXCEPTION 'the stock of a lot of this fill changed after it was prepared'
            USING ERRCODE = 'serialization_failure', CONSTRAINT = 'fill_unchanged';
    END IF;
    -- the fill is timed when it holds the stock: the workstation's time when it
    -- sent the fill, plus how long the fill waited here for its locks (so that
    -- the dispense times show the order in which stock was taken, and a test
    -- clock on the workstation still sets them)
    fill_at := at + (pg_catalog.clock_timestamp() - pg_catalog.statement_timestamp());
    PERFORM pg_catalog.set_config('getmeds.fill_at', fill_at::text, true);
    RETURN fill_at;
END $body$
"""


def _m0007() -> Any:
    return importlib.import_module("getmeds_desktop.migrations.versions.0007_database_boundary")


INDEX = "ix_dispenses_prescription_dispensed_at"


def upgrade() -> None:
    # a prescription's latest fill by time (what the fill reads to say a refused
    # verification's note): without it the planner walked the whole time index of
    # the dispenses for a prescription never filled (11 ms at a year's history)
    op.create_index(INDEX, "dispenses", ["prescription_id", "dispensed_at"])
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite takes its write lock before a fill reads anything
    n = _m0007()._names()
    op.execute(n.sql(FILL_UNCHANGED))
    op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".{SIGNATURE} FROM PUBLIC')
    groups = ", ".join(f'"{n.prefix}{g}"' for g in STAFF_GROUPS)
    op.execute(f'GRANT EXECUTE ON FUNCTION "{n.schema}".{SIGNATURE} TO {groups}')


def downgrade() -> None:
    op.drop_index(INDEX, table_name="dispenses")
    if op.get_bind().dialect.name != "postgresql":
        return
    n = _m0007()._names()
    op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".{SIGNATURE}')
