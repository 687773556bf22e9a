"""dispensing another package of the same drug when the prescribed one is out

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 13:30:00

* ``dispenses.dispensed_product_id``: the product actually dispensed when it is
  not the prescribed one (NULL: the prescribed product). Only a product with
  the same ingredients and strengths, dosage form and strength may stand in,
  and never for a prescription marked dispense as written.
* PostgreSQL: the commit-time check of a staff session's dispenses
  (getmeds_check_dispense, 0007) lets the stock movements come from the
  dispensed product's lots, and refuses a substitution the rules above forbid;
  ``getmeds_equivalent_products(a, b)`` is the one definition of "the same drug".
* SQLite: the audit triggers of ``dispenses`` list their columns, so they are
  made again with the new one.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DISPENSE_COLUMNS = ("prescription_id", "fill_number", "part", "quantity", "owed_after",
                    "days_supply", "pharmacist_id", "dispensed_at", "request_id", "notes",
                    "scan_text", "scan_ndc", "scan_gtin", "scan_lot", "scan_expiry",
                    "no_scan_reason", "screening_data", "dispensed_product_id", "id")

EQUIVALENT = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_equivalent_products(a uuid, b uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER @path AS $body$
    WITH sig AS (
        SELECT p.id,
               pg_catalog.lower(pg_catalog.btrim(coalesce(p.dosage_form, ''))) AS form,
               pg_catalog.lower(pg_catalog.regexp_replace(coalesce(p.strength, ''), '\s', '',
                                                          'g')) AS strength,
               (SELECT pg_catalog.string_agg(
                           pg_catalog.lower(pg_catalog.btrim(i.name)) || '|' ||
                           pg_catalog.lower(pg_catalog.regexp_replace(coalesce(i.strength, ''),
                                                                      '\s', '', 'g')),
                           ',' ORDER BY pg_catalog.lower(pg_catalog.btrim(i.name)))
                  FROM @s.product_ingredients AS i WHERE i.product_id = p.id) AS ingredients
          FROM @s.products AS p WHERE p.id IN (a, b))
    SELECT a <> b AND x.form = y.form AND x.strength = y.strength
           AND x.ingredients IS NOT NULL AND x.ingredients = y.ingredients
      FROM sig AS x, sig AS y WHERE x.id = a AND y.id = b
$body$
"""


def _check_0007() -> Any:  # revision 0007's module: its function texts and renderer
    return importlib.import_module(
        "getmeds_desktop.migrations.versions.0007_database_boundary")


def _substituting(text: str) -> str:
    """0007's getmeds_check_dispense, letting the dispensed product's lots be used
    when the substitution is allowed."""
    out = text.replace(
        "SELECT r.rx_number, r.status, r.quantity, r.refills_authorized, r.product_id INTO rx",
        "SELECT r.rx_number, r.status, r.quantity, r.refills_authorized, r.product_id, r.daw"
        " INTO rx")
    out = out.replace(
        "coalesce(pg_catalog.bool_or(l.product_id <> rx.product_id), false)",
        "coalesce(pg_catalog.bool_or(l.product_id <> coalesce(d.dispensed_product_id,"
        " rx.product_id)), false)")
    guard = """    IF d.dispensed_product_id IS NOT NULL AND d.dispensed_product_id <> rx.product_id THEN
        IF rx.daw THEN
            RAISE EXCEPTION 'Rx % is dispense as written: no other product may be dispensed',
                rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_consistent';
        END IF;
        IF NOT coalesce(@s.getmeds_equivalent_products(rx.product_id, d.dispensed_product_id),
                        false) THEN
            RAISE EXCEPTION 'Rx %: only a product with the same ingredients, strength and '
                'dosage form may be dispensed for it', rx.rx_number
                USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_consistent';
        END IF;
    END IF;
    IF d.part = 1 THEN"""
    if out.count("    IF d.part = 1 THEN") != 1 or "r.daw INTO rx" not in out \
            or "d.dispensed_product_id, rx.product_id" not in out:
        raise RuntimeError("getmeds_check_dispense is not the function 0007 made")
    return out.replace("    IF d.part = 1 THEN", guard)


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    # no foreign key (SQLite could not name one added to an existing table): the
    # product is checked to be the same drug when the dispense is written, by
    # the service and on PostgreSQL by the commit-time check, and products are
    # never deleted once dispensed
    op.execute(f"ALTER TABLE dispenses ADD COLUMN dispensed_product_id "
               f"{'UUID' if pg else 'CHAR(32)'}")
    if pg:
        m = _check_0007()
        n = m._names()
        op.execute(n.sql(EQUIVALENT))
        op.execute(n.sql(_substituting(m.CHECK_DISPENSE)))
        # called by the commit-time check (as the owner); nobody else needs it
        op.execute(f'REVOKE ALL ON FUNCTION "{n.schema}".getmeds_equivalent_products(uuid,'
                   ' uuid) FROM PUBLIC')
    else:
        sqlite_triggers.audit("dispenses", DISPENSE_COLUMNS)


def downgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    if pg:
        m = _check_0007()
        n = m._names()
        op.execute(n.sql(m.CHECK_DISPENSE))
        op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".getmeds_equivalent_products(uuid, uuid)')
        op.execute("ALTER TABLE dispenses DROP COLUMN dispensed_product_id")
    else:
        for action in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS dispenses_audit_{action}")
        with op.batch_alter_table("dispenses") as b:
            b.drop_column("dispensed_product_id")
        sqlite_triggers.audit("dispenses",
                              tuple(c for c in DISPENSE_COLUMNS if c != "dispensed_product_id"))
