"""Controlled-substance receipts and DEA Form 41 / 106 records (migration 0022),
whatever a staff member types into psql:

* a receipt of a controlled product names a supplier with a DEA number, which
  the database copies onto the movement (21 CFR 1304.22(c)); a Schedule II
  receipt carries its DEA Form 222 or CSOS order number (21 CFR 1305.13(e),
  1305.22(g));
* only a pharmacist files a Form 41 or 106 record, in their own name, at the
  server's time; a Form 41 has two different witnesses who are employees
  (21 CFR 1317.95(d)); a record is posted to the ledger; records are permanent;
* a write-off of controlled stock is posted only from a Form 41 record, in the
  transaction that files it, by the pharmacist who files it; a movement posted
  from a form is what the form says (Form 41: a write-off; Form 106: stock
  taken away).
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import catalog, clock, deaforms, inventory, staff
from getmeds_desktop.services.context import SYSTEM
from tests.fixtures.data import PASSWORD

from .conftest import Pharmacy, refused, refused_at_commit

RECEIPT = ("INSERT INTO stock_movements (id, lot_id, kind, quantity, reference, staff_id, "
           "created_at, supplier_id, order_form, supplier_dea) VALUES (gen_random_uuid(), "
           "%(lot)s, 'receipt', %(qty)s, 'psql', %(staff)s, now(), %(supplier)s, %(form)s, "
           "%(dea)s)")
FROM_FORM = ("INSERT INTO stock_movements (id, lot_id, kind, quantity, reason, reference, "
             "staff_id, created_at, dea_form_id) VALUES (gen_random_uuid(), %(lot)s, %(kind)s, "
             "%(qty)s, 'psql', 'psql', %(staff)s, now(), %(form)s)")
FORM_41 = ("INSERT INTO dea_forms (id, form, filed_by, filed_at, destroyed_on, method, place, "
           "witness1_id, witness2_id) VALUES (%(id)s, '41', %(by)s, %(at)s, current_date, "
           "'Chemical digestion', 'Back room', %(w1)s, %(w2)s)")
FORM_106 = ("INSERT INTO dea_forms (id, form, filed_by, filed_at, discovered_on, loss_type, "
            "police_notified, police_department) VALUES (%(id)s, '106', %(by)s, now(), "
            "current_date, 'night_break_in', true, 'City PD 555-0100')")
WRITE_OFF = ("INSERT INTO stock_movements (id, lot_id, kind, quantity, reason, staff_id, "
             "created_at) VALUES (gen_random_uuid(), %(lot)s, 'write_off', %(qty)s, 'Expired', "
             "%(staff)s, now())")


def _controlled(ph: Pharmacy, name: str, schedule: Schedule = Schedule.II, qty: int = 50):
    return ph.stocked(name, qty, schedule)


def _form41(ph: Pharmacy, **kw) -> dict:
    w = ph.world
    return {"id": uuid.uuid4(), "by": w.pharmacist.staff_id, "at": "2001-01-01T00:00:00Z",
            "w1": w.pharmacist.staff_id, "w2": w.technician.staff_id, **kw}


def test_the_app_files_both_forms_as_a_pharmacist_login(pharmacy: Pharmacy):
    """The services, signed in as a pharmacist's own login, meet every guard."""
    w = pharmacy.world
    engine = db.make_engine(pharmacy.url, username=w.pharmacist.username, password=PASSWORD,
                            poolclass=sa.NullPool)
    try:
        sf = db.session_factory(engine)
        me = staff.actor_from_session(sf)
        product, lot = _controlled(pharmacy, "Formapp")
        received = inventory.receive_stock(sf, me, inventory.ReceiptRequest(
            product_id=product.id, lot_number="FA-2", expiry_date=clock.today()
            + dt.timedelta(days=300), quantity=10, supplier_id=w.supplier_id,
            order_form="CSOS-4411"))
        dea = pharmacy.one("SELECT supplier_dea FROM stock_movements WHERE id = %s",
                           (received.id,))
        assert dea == pharmacy.one("SELECT dea_number FROM suppliers WHERE id = %s",
                                   (w.supplier_id,))
        f41 = deaforms.record_destruction(sf, me, deaforms.DestructionRequest(
            lines=[deaforms.FormLine(lot, 5)], destroyed_on=clock.today(),
            method="Chemical digestion (denaturing kit)", place="Back room",
            witness1_id=w.pharmacist.staff_id, witness2_id=w.technician.staff_id))
        f106 = deaforms.report_theft_or_loss(sf, me, deaforms.TheftLossRequest(
            lines=[deaforms.FormLine(lot, 3)], discovered_on=clock.today(),
            loss_type="customer_theft", police_notified=False))
        assert [i.quantity for i in f41.items] == [5]
        assert [i.quantity for i in f106.items] == [3]
        assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 42
        # the server's time of filing, not the workstation's
        at = pharmacy.one("SELECT filed_at FROM dea_forms WHERE id = %s", (f41.id,))
        assert abs((at - dt.datetime.now(dt.UTC)).total_seconds()) < 300
    finally:
        engine.dispose()


def test_a_schedule_ii_receipt_needs_its_order_form(pharmacy: Pharmacy):
    w = pharmacy.world
    _product, lot = _controlled(pharmacy, "Oxyrecv")
    p = {"lot": lot, "qty": 10, "staff": w.pharmacist.staff_id, "supplier": w.supplier_id,
         "form": None, "dea": None}
    with pharmacy.login(w.pharmacist) as c:
        refused(c, RECEIPT, p, match="DEA Form 222 or CSOS order")
        refused(c, RECEIPT, dict(p, form="   "), match="DEA Form 222 or CSOS order")
        # the supplier's DEA number is the database's, whatever the client says
        c.execute(RECEIPT, dict(p, form="222-7788", dea="AB1234563"))
        c.commit()
    assert pharmacy.one("SELECT supplier_dea FROM stock_movements WHERE lot_id = %s AND "
                        "order_form = '222-7788'", (lot,)) == pharmacy.one(
        "SELECT dea_number FROM suppliers WHERE id = %s", (w.supplier_id,))


def test_a_controlled_receipt_needs_a_supplier_with_a_dea_number(pharmacy: Pharmacy):
    w = pharmacy.world
    _product, lot = _controlled(pharmacy, "Tramrecv", Schedule.IV)
    plain = catalog.create_supplier(pharmacy.sf, SYSTEM, name=f"No DEA {uuid.uuid4().hex[:6]}")
    p = {"lot": lot, "qty": 10, "staff": w.pharmacist.staff_id, "supplier": None,
         "form": None, "dea": "AB1234563"}
    with pharmacy.login(w.pharmacist) as c:
        refused(c, RECEIPT, p, match="DEA registration number")
        refused(c, RECEIPT, dict(p, supplier=plain.id), match="DEA registration number")
        c.execute(RECEIPT, dict(p, supplier=w.supplier_id))  # no order form for III-V
        c.commit()
    # an ordinary product: as before, with or without a supplier
    _ordinary, olot = pharmacy.stocked("Plainrecv", 5)
    with pharmacy.login(w.clerk) as c:
        c.execute(RECEIPT, {"lot": olot, "qty": 5, "staff": w.clerk.staff_id,
                            "supplier": None, "form": None, "dea": None})
        c.commit()
        # only a receipt carries an order form or a supplier's DEA number
        refused(c, "INSERT INTO stock_movements (id, lot_id, kind, quantity, reason, staff_id, "
                "created_at, order_form) VALUES (gen_random_uuid(), %(lot)s, 'adjustment', -1, "
                "'x', %(staff)s, now(), '222-1')", {"lot": olot, "staff": w.clerk.staff_id})


def test_a_controlled_write_off_is_posted_only_from_its_form_41(pharmacy: Pharmacy):
    w = pharmacy.world
    _product, lot = _controlled(pharmacy, "Morphoff")
    with pharmacy.login(w.pharmacist) as c:
        refused(c, WRITE_OFF, {"lot": lot, "qty": -5, "staff": w.pharmacist.staff_id},
                match="DEA Form 41")
    # ordinary stock is written off as before
    _ordinary, olot = pharmacy.stocked("Plainoff", 5)
    with pharmacy.login(w.pharmacist) as c:
        c.execute(WRITE_OFF, {"lot": olot, "qty": -5, "staff": w.pharmacist.staff_id})
        c.commit()


def test_only_a_pharmacist_files_a_form(pharmacy: Pharmacy):
    w = pharmacy.world
    for who in (w.clerk, w.technician, w.doctor, w.admin):
        with pharmacy.login(who) as c:
            refused(c, FORM_41, _form41(pharmacy, by=who.staff_id))
    with pharmacy.login(w.admin) as c:  # an administrator without a practice role
        refused(c, FORM_41, _form41(pharmacy, by=w.admin.staff_id),
                match="only a pharmacist")
    # in another pharmacist's name
    with pharmacy.login(w.pharmacist) as c:
        refused(c, FORM_41, _form41(pharmacy, by=w.pharmacist2.staff_id), match="filed_by")


def test_the_witnesses_are_two_different_employees(pharmacy: Pharmacy):
    w = pharmacy.world
    _product, lot = _controlled(pharmacy, "Witness")
    with pharmacy.login(w.pharmacist) as c:
        refused(c, FORM_41, _form41(pharmacy, w2=w.pharmacist.staff_id),
                match="form_41_complete")
        refused(c, FORM_41, _form41(pharmacy, w2=None))
        refused(c, FORM_41, _form41(pharmacy, w2=w.doctor.staff_id), match="employee")
        # a complete record, written off from it: the server's time of filing
        good = _form41(pharmacy)
        c.execute(FORM_41, good)
        c.execute(FROM_FORM, {"lot": lot, "kind": "write_off", "qty": -4,
                              "staff": w.pharmacist.staff_id, "form": good["id"]})
        c.commit()
    at = pharmacy.one("SELECT filed_at FROM dea_forms WHERE id = %s", (good["id"],))
    assert at.year > 2001
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 46


def test_a_form_is_posted_and_only_as_it_is_filed(pharmacy: Pharmacy):
    w = pharmacy.world
    _product, lot = _controlled(pharmacy, "Posted")
    with pharmacy.login(w.pharmacist) as c:
        refused_at_commit(c, [(FORM_41, _form41(pharmacy))], match="has no movement")
        first = _form41(pharmacy)
        c.execute(FORM_41, first)
        c.execute(FROM_FORM, {"lot": lot, "kind": "write_off", "qty": -2,
                              "staff": w.pharmacist.staff_id, "form": first["id"]})
        c.commit()
        # a later write-off cannot hide behind an old record
        refused(c, FROM_FORM, {"lot": lot, "kind": "write_off", "qty": -20,
                               "staff": w.pharmacist.staff_id, "form": first["id"]},
                match="as it is filed")
        c.rollback()
    with pharmacy.login(w.pharmacist2) as c:  # nor behind another pharmacist's
        refused(c, FROM_FORM, {"lot": lot, "kind": "write_off", "qty": -20,
                               "staff": w.pharmacist2.staff_id, "form": first["id"]})


def test_a_movement_from_a_form_is_what_the_form_says(pharmacy: Pharmacy):
    w = pharmacy.world
    _product, lot = _controlled(pharmacy, "Formkind")
    _ordinary, olot = pharmacy.stocked("Formplain", 5)
    me = w.pharmacist.staff_id
    with pharmacy.login(w.pharmacist) as c:
        loss = uuid.uuid4()
        c.execute(FORM_106, {"id": loss, "by": me})
        for kind, qty, target in (("write_off", -1, lot), ("adjustment", 3, lot),
                                  ("adjustment", -1, olot)):
            refused(c, FROM_FORM, {"lot": target, "kind": kind, "qty": qty, "staff": me,
                                   "form": loss}, match="Form 106")
        c.execute(FROM_FORM, {"lot": lot, "kind": "adjustment", "qty": -3, "staff": me,
                              "form": loss})
        destroyed = _form41(pharmacy)
        c.execute(FORM_41, destroyed)
        refused(c, FROM_FORM, {"lot": lot, "kind": "adjustment", "qty": -1, "staff": me,
                               "form": destroyed["id"]}, match="Form 41")
        c.execute(FROM_FORM, {"lot": lot, "kind": "write_off", "qty": -1, "staff": me,
                              "form": destroyed["id"]})
        c.commit()
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 46


def test_records_are_permanent(pharmacy: Pharmacy):
    w = pharmacy.world
    _product, lot = _controlled(pharmacy, "Forever")
    f = _form41(pharmacy)
    with pharmacy.login(w.pharmacist) as c:
        c.execute(FORM_41, f)
        c.execute(FROM_FORM, {"lot": lot, "kind": "write_off", "qty": -1,
                              "staff": w.pharmacist.staff_id, "form": f["id"]})
        c.commit()
        refused(c, "UPDATE dea_forms SET method = 'flushed' WHERE id = %s", (f["id"],))
        refused(c, "DELETE FROM dea_forms WHERE id = %s", (f["id"],))
        # a correction is a new record naming it, with what was wrong
        refused(c, "INSERT INTO dea_forms (id, form, corrects_id, correction_note, filed_by, "
                "filed_at, discovered_on, loss_type, police_notified) VALUES "
                "(gen_random_uuid(), '106', %(c)s, 'wrong form', %(by)s, now(), current_date, "
                "'other', false)", {"c": f["id"], "by": w.pharmacist.staff_id})
        c.execute("INSERT INTO dea_forms (id, form, corrects_id, correction_note, filed_by, "
                  "filed_at, destroyed_on, method, place, witness1_id, witness2_id) VALUES "
                  "(gen_random_uuid(), '41', %(c)s, 'the method was incineration', %(by)s, "
                  "now(), current_date, 'Incineration', 'Back room', %(w1)s, %(w2)s)",
                  {"c": f["id"], "by": w.pharmacist.staff_id, "w1": w.pharmacist.staff_id,
                   "w2": w.pharmacist2.staff_id})
        c.commit()
    for who in (w.clerk, w.technician):
        with pharmacy.login(who) as c:
            refused(c, "SELECT count(*) FROM dea_forms")


def test_an_administrator_files_only_as_a_pharmacist(pharmacy: Pharmacy):
    """An administrator whose practice role is pharmacist files a record (the
    admin group may INSERT; the guard decides), and only then (migration 0018)."""
    w = pharmacy.world
    _product, lot = _controlled(pharmacy, "Adminform")
    me = w.admin.staff_id
    pharmacy.q("UPDATE staff SET practice_role = 'pharmacist' WHERE id = %s", (me,))
    try:
        f = _form41(pharmacy, by=me, w1=me)
        with pharmacy.login(w.admin) as c:
            c.execute(FORM_41, f)
            c.execute(FROM_FORM, {"lot": lot, "kind": "write_off", "qty": -3, "staff": me,
                                  "form": f["id"]})
            c.commit()
    finally:
        pharmacy.q("UPDATE staff SET practice_role = NULL WHERE id = %s", (me,))
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 47
