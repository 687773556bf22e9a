"""SQL a staff member could type into psql, shared by the security tests."""

from __future__ import annotations

import uuid

NEW_PATIENT = ("INSERT INTO patients (id, first_name, last_name, date_of_birth, sex, active, "
               "created_at, updated_at, version) VALUES (%(id)s, 'Direct', 'Sql', "
               "'1970-01-01', 'unknown', true, now(), now(), 1)")

NEW_PRODUCT = ("INSERT INTO products (id, name, storage, schedule, unit, pack_size, "
               "reorder_level, reorder_quantity, unit_price, active, created_at, updated_at, "
               "version) VALUES (%(id)s, %(name)s, 'room', 'none', 'each', 1, 0, 0, 0, true, "
               "now(), now(), 1)")

NEW_LOT = ("INSERT INTO stock_lots (id, product_id, lot_number, expiry_date, status, "
           "received_at, unit_cost, created_at, updated_at, version) VALUES (%(id)s, "
           "%(product)s, %(number)s, current_date + 365, 'available', now(), 1, now(), now(), "
           "1)")


def movement(kind: str, *, reason: str | None = None, dispense: bool = False) -> str:
    return ("INSERT INTO stock_movements (id, lot_id, kind, quantity, reason, reference, "
            "staff_id, created_at, dispense_id) VALUES (coalesce(%(mid)s, gen_random_uuid()), "
            f"%(lot)s, '{kind}', %(qty)s, {'NULL' if reason is None else repr(reason)}, "
            "'psql', %(staff)s, now(), " + ("%(dispense)s" if dispense else "NULL") + ")")


def new_rx(status: str = "new") -> str:
    return (
        "INSERT INTO prescriptions (id, rx_number, patient_id, prescriber_id, product_id, sig, "
        "quantity, days_supply, refills_authorized, daw, date_written, status, owed_quantity, "
        "created_by, created_at, updated_at, updated_by, version) VALUES (coalesce(%(id)s, "
        "gen_random_uuid()), nextval('rx_number_seq'), %(patient)s, %(prescriber)s, "
        f"%(product)s, 'Take 1 daily', 30, 30, 0, false, current_date, '{status}', 0, "
        "%(staff)s, now(), now(), %(updated_by)s, 1)")


DISPENSE = ("INSERT INTO dispenses (id, prescription_id, fill_number, part, quantity, "
            "owed_after, days_supply, pharmacist_id, dispensed_at, request_id) VALUES "
            "(%(dispense)s, %(rx)s, %(fill)s, %(part)s, %(qty)s, %(owed)s, 30, %(staff)s, "
            "now(), gen_random_uuid())")
RX_FILLED = ("UPDATE prescriptions SET status = %(status)s, owed_quantity = %(owed)s, "
             "version = version + 1 WHERE id = %(rx)s")


def dispense(rx: uuid.UUID, lot: uuid.UUID, qty: int, staff: uuid.UUID, *,
             fill: int = 0, part: int = 1, owed: int = 0, moved: int | None = None,
             dispense_id: uuid.UUID | None = None, movements: bool = True,
             update_rx: bool = True) -> list[tuple[str, dict]]:
    """What the app's dispense writes, one statement at a time."""
    d = dispense_id or uuid.uuid4()
    p = {"dispense": d, "rx": rx, "fill": fill, "part": part, "qty": qty, "owed": owed,
         "staff": staff, "lot": lot, "mid": None,
         "status": "partially_dispensed" if owed else "dispensed"}
    out = [(DISPENSE, p)]
    if movements:
        out.append((movement("dispense", dispense=True),
                    dict(p, qty=-(qty if moved is None else moved))))
    if update_rx:
        out.append((RX_FILLED, p))
    return out


def receipt_with_order(*, table: str = "stock_movements") -> str:
    """A receipt as migration 0022 wants a controlled one: from a supplier (its
    DEA number is the database's to copy), on an order form (Schedule II)."""
    return (f"INSERT INTO {table} (id, lot_id, kind, quantity, reference, staff_id, "
            "created_at, supplier_id, order_form) VALUES (coalesce(%(mid)s, "
            "gen_random_uuid()), %(lot)s, 'receipt', %(qty)s, 'psql', %(staff)s, now(), "
            "%(supplier)s, '222-0001')")


# A DEA Form 41 record (migration 0022), and a movement posted from a record.
FORM_41 = ("INSERT INTO dea_forms (id, form, filed_by, filed_at, destroyed_on, method, place, "
           "witness1_id, witness2_id) VALUES (%(form)s, '41', %(staff)s, now(), current_date, "
           "'Chemical digestion', 'Back room', %(w1)s, %(w2)s)")


def from_form(kind: str, reason: str = "psql") -> str:
    return ("INSERT INTO stock_movements (id, lot_id, kind, quantity, reason, reference, "
            "staff_id, created_at, dea_form_id) VALUES (coalesce(%(mid)s, gen_random_uuid()), "
            f"%(lot)s, '{kind}', %(qty)s, {reason!r}, 'psql', %(staff)s, now(), %(form)s)")
