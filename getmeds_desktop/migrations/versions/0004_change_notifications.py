"""workstations in sync: NOTIFY on every change the screens show

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 22:20:00

PostgreSQL only (the embedded database has one workstation). Statement-level
triggers with transition tables send one notification per changed row on the
channel ``getmeds_changes``; the payload is a small JSON object:

    {"t": "dispenses", "id": "...", "rx": "...", "product": "...",
     "patient": "...", "by": "pharmacist"}

with the ids a screen needs to refresh what it shows. A statement that changes
more than 100 rows (an import, the demo seed) sends one ``{"t": ..., "all": true}``
instead, and the screens showing that table reload. PostgreSQL folds identical
notifications of one transaction into one and delivers them at commit only,
so a rolled-back change is never announced. "by" is the session's login.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "getmeds_changes"
MANY = 100

# table -> (the table screens know it as, SQL giving "id" and "extra" (jsonb) for
# each row of the transition table "rows")
PAYLOADS = {
    "patients": ("patients", "SELECT r.id AS id, '{}'::jsonb AS extra FROM rows r"),
    "patient_allergies": ("patients", "SELECT DISTINCT r.patient_id AS id, '{}'::jsonb AS extra"
                                      " FROM rows r"),
    "patient_conditions": ("patients", "SELECT DISTINCT r.patient_id AS id, '{}'::jsonb AS extra"
                                       " FROM rows r"),
    "products": ("products", "SELECT r.id AS id, jsonb_build_object('product', r.id) AS extra"
                             " FROM rows r"),
    "stock_lots": ("stock_lots", "SELECT r.id AS id, jsonb_build_object('product', r.product_id)"
                                 " AS extra FROM rows r"),
    "stock_movements": (
        "stock_movements",
        "SELECT r.id AS id, jsonb_build_object('product', l.product_id, 'lot', r.lot_id) AS extra"
        " FROM rows r JOIN stock_lots l ON l.id = r.lot_id"),
    "prescriptions": (
        "prescriptions",
        "SELECT r.id AS id, jsonb_build_object('patient', r.patient_id, 'product', r.product_id,"
        " 'rx', r.id) AS extra FROM rows r"),
    "dispenses": (
        "dispenses",
        "SELECT r.id AS id, jsonb_build_object('rx', r.prescription_id, 'product', p.product_id,"
        " 'patient', p.patient_id) AS extra"
        " FROM rows r JOIN prescriptions p ON p.id = r.prescription_id"),
}
EVENTS = {"INSERT": "NEW TABLE AS rows", "UPDATE": "NEW TABLE AS rows",
          "DELETE": "OLD TABLE AS rows"}
# Tables whose payload looks up another table (a movement's product, a
# dispense's prescription): SECURITY DEFINER, so the payload does not depend on
# what the writing role may read. The others run as the writer.
LOOKUPS = {"stock_movements", "dispenses"}
# A lot's on-hand figure changes with every movement, and the movement already
# says so (with the lot): an UPDATE of stock_lots that changes nothing else is
# not announced a second time. That keeps the dispensing hot path lean.
LOT_UPDATE = (
    "SELECT r.id AS id, jsonb_build_object('product', r.product_id) AS extra"
    " FROM rows r JOIN old_rows o ON o.id = r.id"
    " WHERE (r.status, r.status_reason, r.lot_number, r.expiry_date, r.unit_cost,"
    " r.supplier_id, r.version) IS DISTINCT FROM (o.status, o.status_reason, o.lot_number,"
    " o.expiry_date, o.unit_cost, o.supplier_id, o.version)")
# the ledger and dispenses: insert only (they are never updated or deleted)
APPEND_ONLY = {"stock_movements", "dispenses"}


def _function(table: str, name: str | None = None, select: str | None = None) -> str:
    shown_as, default_select = PAYLOADS[table]
    select = select or default_select
    security = "SECURITY DEFINER SET search_path FROM CURRENT" if table in LOOKUPS else ""
    return f"""
        CREATE FUNCTION {name or f"getmeds_notify_{table}"}() RETURNS trigger
        LANGUAGE plpgsql {security} AS $fn$
        DECLARE
            base jsonb := jsonb_build_object(
                't', '{shown_as}', 'op', lower(TG_OP),
                'by', coalesce(nullif(current_setting('getmeds.actor', true), ''),
                               session_user::text));
            n integer;
            rec record;
        BEGIN
            SELECT count(*) INTO n FROM (SELECT 1 FROM rows LIMIT {MANY + 1}) x;
            IF n > {MANY} THEN
                PERFORM pg_notify('{CHANNEL}',
                                  (base || jsonb_build_object('all', true))::text);
                RETURN NULL;
            END IF;
            FOR rec IN {select} LOOP
                PERFORM pg_notify('{CHANNEL}',
                                  (base || jsonb_build_object('id', rec.id) || rec.extra)::text);
            END LOOP;
            RETURN NULL;
        END
        $fn$
    """


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in PAYLOADS:
        op.execute(_function(table))
        for event, ref in EVENTS.items():
            if table in APPEND_ONLY and event != "INSERT":
                continue
            fn = f"getmeds_notify_{table}"
            if table == "stock_lots" and event == "UPDATE":
                fn = "getmeds_notify_stock_lots_update"
                ref = "OLD TABLE AS old_rows NEW TABLE AS rows"
                op.execute(_function(table, fn, LOT_UPDATE))
            op.execute(
                f"CREATE TRIGGER getmeds_notify_{event.lower()} AFTER {event} ON {table}"
                f" REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION {fn}()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in PAYLOADS:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS getmeds_notify_{event.lower()} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS getmeds_notify_{table}()")
    op.execute("DROP FUNCTION IF EXISTS getmeds_notify_stock_lots_update()")
