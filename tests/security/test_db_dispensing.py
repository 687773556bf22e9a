"""Dispensing rules the database keeps, whatever a pharmacist types into psql.

A dispense is checked at commit (a deferred constraint trigger), when its stock
movements and the prescription's new state are all there: the prescription is
not cancelled or on hold, a refill is within the refills authorised, the
quantity does not exceed what remains (the prescribed quantity, or what the
previous part of the fill left owed), the movements take exactly that quantity
from lots of the prescribed product, and the pharmacist is the signed-in one.

The same rules stay in the service (services/dispensing.py), which explains
them to the person at the counter; here they hold for everyone else too.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.services import (
    dispensing,
    inventory,
    patients,
    prescriptions,
    staff,
    stocktake,
)
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.prescriptions import PrescriptionDraft, RxAction
from tests.fixtures.data import NO_SCAN, PASSWORD

from . import dbsql as sql
from .conftest import Pharmacy, refused, refused_at_commit


def _rx(ph: Pharmacy, name: str, *, quantity: int = 10, refills: int = 0, stock: int = 100):
    product, lot = ph.stocked(name, stock)
    return ph.rx(product.id, quantity=quantity, refills=refills), product, lot


def _dispenses(ph: Pharmacy, rx_id: uuid.UUID) -> int:
    return ph.one("SELECT count(*) FROM dispenses WHERE prescription_id = %s", (rx_id,))


def test_the_app_works_as_each_staff_login(pharmacy: Pharmacy):
    """The services, signed in as the staff members' own logins: every rule
    above holds for what the app writes."""
    w = pharmacy.world

    def factory(who) -> tuple[sa.Engine, object]:
        engine = db.make_engine(pharmacy.url, username=who.username, password=PASSWORD,
                                poolclass=sa.NullPool)
        sf = db.session_factory(engine)
        return engine, (sf, staff.actor_from_session(sf))

    engines = []
    try:
        (e1, (psf, pharmacist)), (e2, (csf, clerk)), (e3, (dsf, doctor)), (e4, (asf, admin)) = (
            factory(w.pharmacist), factory(w.clerk), factory(w.doctor), factory(w.admin))
        engines = [e1, e2, e3, e4]
        product, lot = pharmacy.stocked("Appflow", 12)
        next_year = dt.date.today() + dt.timedelta(days=365)
        inventory.receive_stock(psf, pharmacist, inventory.ReceiptRequest(
            product_id=product.id, lot_number="APP-2", expiry_date=next_year, quantity=3,
            unit_cost="1.00", supplier_id=w.supplier_id, invoice_ref="INV-9"))
        patient = patients.create_patient(csf, clerk, patients.PatientDraft(
            first_name="App", last_name="Flow", date_of_birth=dt.date(1980, 2, 3),
            no_known_allergies=True))
        draft = PrescriptionDraft(patient_id=patient.id, prescriber_id=doctor.prescriber_id,
                                  product_id=product.id, sig="Take 1 daily", quantity=10,
                                  days_supply=10, refills_authorized=1,
                                  date_written=dt.date.today())
        rx = prescriptions.create_prescription(dsf, doctor, draft)
        other = prescriptions.create_prescription(csf, clerk, draft)
        prescriptions.change_status(dsf, doctor, other.id, RxAction.CANCEL, reason="Duplicate")
        # a partial fill (15 on hand, 10 wanted, then 5 more after the first refill starts)
        first = dispensing.dispense(psf, pharmacist, DispenseRequest(rx.id, uuid.uuid4(),
                                                                     no_scan_reason=NO_SCAN))
        assert (first.quantity, first.owed_after) == (10, 0)
        # the refill straight away is early: acknowledged (a dispense_warnings row
        # written by the pharmacist's own login)
        early = {x.key: dispensing.Override("prescriber_consulted") for x in
                 dispensing.preview_dispense(psf, pharmacist, rx.id).warnings}
        assert early
        refill = dispensing.dispense(psf, pharmacist, DispenseRequest(
            rx.id, uuid.uuid4(), allow_partial=True, no_scan_reason=NO_SCAN,
            acknowledgements=early))
        assert (refill.fill_number, refill.quantity, refill.owed_after) == (1, 5, 5)
        inventory.receive_stock(psf, pharmacist, inventory.ReceiptRequest(
            product_id=product.id, lot_number="APP-3", expiry_date=next_year, quantity=20,
            unit_cost="1.00", supplier_id=w.supplier_id, invoice_ref="INV-10"))
        rest = dispensing.dispense(psf, pharmacist, DispenseRequest(rx.id, uuid.uuid4(),
                                                                    no_scan_reason=NO_SCAN))
        assert (rest.fill_number, rest.part, rest.quantity, rest.owed_after) == (1, 2, 5, 0)
        # stock work and the front desk
        count = stocktake.start_stocktake(psf, pharmacist, "all")
        for line in stocktake.count_lines(psf, pharmacist, count.id):
            short = line.lot_id == lot and line.expected > 0
            stocktake.enter_count(psf, pharmacist, line.line_id, line.expected - short,
                                  "Broken on the shelf" if short else None)
        stocktake.post_stocktake(psf, pharmacist, count.id)
        fb = patients.add_feedback(csf, clerk, patient.id, "Quick service")
        patients.reply_feedback(psf, pharmacist, fb.id, "Thank you!", expected_version=fb.version)
        staff.set_active(asf, admin, staff.find_by_username(asf, w.clerk.username).id, True)
    finally:
        for e in engines:
            e.dispose()
    assert pharmacy.q("SELECT fill_number, part, quantity, owed_after FROM dispenses "
                      "WHERE prescription_id = %s ORDER BY 1, 2", (rx.id,)) == [
        (0, 1, 10, 0), (1, 1, 5, 5), (1, 2, 5, 0)]
    assert set(pharmacy.q("SELECT DISTINCT staff_id FROM stock_movements m JOIN dispenses d "
                          "ON d.id = m.dispense_id WHERE d.prescription_id = %s", (rx.id,))) == {
        (w.pharmacist.staff_id,)}


def test_a_cancelled_or_held_prescription_is_not_dispensed(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    stopped = {}
    for action in (RxAction.CANCEL, RxAction.HOLD):
        rx, _, lot = _rx(pharmacy, f"Rule{action}")
        stopped[action] = rx.id
        prescriptions.change_status(w.sf, w.pharmacist, rx.id, action, reason="Prescriber")
        with pharmacy.login(w.pharmacist) as c:
            statement, params = sql.dispense(rx.id, lot, 10, me)[0]
            refused(c, statement, params, match="cannot be dispensed")
        assert _dispenses(pharmacy, rx.id) == 0
    # written while open, and stopped in the same transaction: refused at commit
    for status, said in (("cancelled", "is cancelled"), ("on_hold", "is on hold")):
        rx, _, lot = _rx(pharmacy, f"Rulelate{status}")
        with pharmacy.login(w.pharmacist) as c:
            statements = sql.dispense(rx.id, lot, 10, me, update_rx=False)
            statements.append(("UPDATE prescriptions SET status = %(s)s WHERE id = %(rx)s",
                               {"s": status, "rx": rx.id}))
            refused_at_commit(c, statements, match=said)
        assert _dispenses(pharmacy, rx.id) == 0
    # and a cancelled prescription stays cancelled: it cannot be reopened first
    with pharmacy.login(w.pharmacist) as c:
        refused(c, "UPDATE prescriptions SET status = 'new' WHERE id = %s",
                (stopped[RxAction.CANCEL],), match="stays cancelled")


def test_a_dispense_needs_its_stock_movements(pharmacy: Pharmacy):
    w = pharmacy.world
    rx, _, lot = _rx(pharmacy, "Rulenomoves")
    with pharmacy.login(w.pharmacist) as c:
        refused_at_commit(c, sql.dispense(rx.id, lot, 10, w.pharmacist.staff_id,
                                          movements=False),
                          match="stock movements take 0")
        refused_at_commit(c, sql.dispense(rx.id, lot, 10, w.pharmacist.staff_id, moved=4),
                          match="stock movements take 4")
    assert _dispenses(pharmacy, rx.id) == 0
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 100


def test_nothing_beyond_what_remains(pharmacy: Pharmacy):
    w = pharmacy.world
    rx, _, lot = _rx(pharmacy, "Ruleremains", quantity=10)
    me = w.pharmacist.staff_id
    with pharmacy.login(w.pharmacist) as c:
        # more than prescribed
        refused_at_commit(c, sql.dispense(rx.id, lot, 50, me), match="10 remain")
        # less, but claiming nothing is owed (so a second part could take more)
        refused_at_commit(c, sql.dispense(rx.id, lot, 5, me, owed=0), match="leaving 0 owed")
        # a second part with no first part
        refused_at_commit(c, sql.dispense(rx.id, lot, 5, me, part=2, owed=0),
                          match="follows no part 1")
        # an honest partial fill, then its rest, then nothing more for that fill
        for statement, params in sql.dispense(rx.id, lot, 6, me, owed=4):
            c.execute(statement, params)
        c.commit()
        refused_at_commit(c, sql.dispense(rx.id, lot, 5, me, part=2, owed=0), match="4 remain")
        for statement, params in sql.dispense(rx.id, lot, 4, me, part=2, owed=0):
            c.execute(statement, params)
        c.commit()
        refused_at_commit(c, sql.dispense(rx.id, lot, 1, me, part=3, owed=0), match="0 remain")
        # what was prescribed cannot change once dispensed
        refused(c, "UPDATE prescriptions SET quantity = 1000 WHERE id = %s", (rx.id,),
                match="cannot be changed")
        refused(c, "UPDATE prescriptions SET refills_authorized = 5 WHERE id = %s", (rx.id,),
                match="cannot be changed")
    assert pharmacy.one("SELECT sum(quantity) FROM dispenses WHERE prescription_id = %s",
                        (rx.id,)) == 10


def test_no_refill_beyond_those_authorised(pharmacy: Pharmacy):
    w = pharmacy.world
    rx, _, lot = _rx(pharmacy, "Rulerefill", quantity=5, refills=1)
    me = w.pharmacist.staff_id
    with pharmacy.login(w.pharmacist) as c:
        for fill in (0, 1):
            for statement, params in sql.dispense(rx.id, lot, 5, me, fill=fill):
                c.execute(statement, params)
            c.commit()
        refused_at_commit(c, sql.dispense(rx.id, lot, 5, me, fill=2), match="no refills left")
        refused_at_commit(c, sql.dispense(rx.id, lot, 5, me, fill=7), match="no refills left")
    assert _dispenses(pharmacy, rx.id) == 2


def test_a_dispense_is_the_signed_in_pharmacists(pharmacy: Pharmacy):
    w = pharmacy.world
    rx, _, lot = _rx(pharmacy, "Ruleperson")
    for who, other in ((w.pharmacist, w.pharmacist2), (w.technician, w.pharmacist)):
        with pharmacy.login(who) as c:
            statements = sql.dispense(rx.id, lot, 10, other.staff_id)
            # the movement names the signed-in member; the dispense another person
            statements[1][1]["staff"] = who.staff_id
            refused_at_commit(c, statements, match="signed-in pharmacist")
    assert _dispenses(pharmacy, rx.id) == 0


def test_an_administrator_fills_only_with_a_practice_role(pharmacy: Pharmacy):
    """Issue: the administrator manages the pharmacy but does not dispense or
    verify unless that person is also a pharmacist (migration 0018)."""
    w = pharmacy.world
    rx, _, lot = _rx(pharmacy, "Ruleboss")
    me = w.admin.staff_id
    with pharmacy.login(w.admin) as c:
        statement, params = sql.dispense(rx.id, lot, 10, me)[0]
        refused(c, statement, params, match="only as a pharmacist or a technician")
    # administrators manage staff records, the practice role included (audited)
    pharmacy.q("UPDATE staff SET practice_role = 'pharmacist' WHERE id = %s", (me,))
    try:
        with pharmacy.login(w.admin) as c:
            for statement, params in sql.dispense(rx.id, lot, 10, me):
                c.execute(statement, params)
            c.commit()
    finally:
        pharmacy.q("UPDATE staff SET practice_role = NULL WHERE id = %s", (me,))
    assert _dispenses(pharmacy, rx.id) == 1


def test_only_stock_of_the_prescribed_product(pharmacy: Pharmacy):
    w = pharmacy.world
    rx, _, _ = _rx(pharmacy, "Ruleproduct")
    _, other_lot = pharmacy.stocked("Ruleexpensive", 50)
    with pharmacy.login(w.pharmacist) as c:
        refused_at_commit(c, sql.dispense(rx.id, other_lot, 10, w.pharmacist.staff_id),
                          match="another product")
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (other_lot,)) == 50


def test_stock_cannot_be_taken_later_in_the_name_of_an_old_dispense(pharmacy: Pharmacy):
    w = pharmacy.world
    rx, _, lot = _rx(pharmacy, "Rulelater")
    done = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(rx.id, uuid.uuid4(),
                                                                   no_scan_reason=NO_SCAN))
    with pharmacy.login(w.pharmacist) as c:
        refused_at_commit(c, [(sql.movement("dispense", dispense=True), {
            "mid": None, "lot": lot, "qty": -20, "staff": w.pharmacist.staff_id,
            "dispense": done.dispense_id})], match="take 30")
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 90


def test_two_transactions_cannot_both_take_what_remains(pharmacy: Pharmacy):
    """The check locks the prescription: the second of two racing fills sees the
    first one's part and is refused."""
    w = pharmacy.world
    rx, _, lot = _rx(pharmacy, "Rulerace", quantity=10)
    me = w.pharmacist.staff_id
    first, second = pharmacy.login(w.pharmacist), pharmacy.login(w.pharmacist)
    try:
        for statement, params in sql.dispense(rx.id, lot, 10, me, owed=0, update_rx=False):
            first.execute(statement, params)
        outcome: dict = {}

        def race() -> None:
            try:
                # part 2, as if part 1 had left 10 owed: valid only if part 1 did
                for statement, params in sql.dispense(rx.id, lot, 10, me, part=2,
                                                      update_rx=False):
                    second.execute(statement, params)
                second.commit()
                outcome["ok"] = True
            except Exception as exc:
                outcome["error"] = exc
                second.rollback()

        t = threading.Thread(target=race)
        t.start()
        t.join(1.0)
        assert t.is_alive() or "error" in outcome  # waiting for the first one's lock
        first.commit()
        t.join(10)
        assert "remain" in str(outcome.get("error")), outcome
    finally:
        first.close()
        second.close()
    assert _dispenses(pharmacy, rx.id) == 1


def test_the_owner_loads_history_unchecked(pharmacy: Pharmacy):
    """The demo seed and imports (the owner's sessions) write history as it was,
    e.g. fills of prescriptions that were cancelled later."""
    w = pharmacy.world
    rx, _, lot = _rx(pharmacy, "Rulehistory")
    prescriptions.change_status(w.sf, w.pharmacist, rx.id, RxAction.CANCEL, reason="Later")
    with pharmacy.owner() as c:
        c.autocommit = False
        for statement, params in sql.dispense(rx.id, lot, 10, w.pharmacist.staff_id,
                                              update_rx=False):
            c.execute(statement, params)
        c.commit()
    assert _dispenses(pharmacy, rx.id) == 1


def _as_substitute(statements: list[tuple[str, dict]], product: uuid.UUID
                   ) -> list[tuple[str, dict]]:
    """The app's dispense statements, recording ``product`` as the one dispensed."""
    sql_, params = statements[0]
    insert = sql_.replace("request_id) VALUES", "request_id, dispensed_product_id) VALUES")
    insert = insert.replace("gen_random_uuid())", "gen_random_uuid(), %(sub)s)")
    return [(insert, dict(params, sub=product)), *statements[1:]]


def test_another_package_only_of_the_same_drug_and_never_dispense_as_written(
        pharmacy: Pharmacy):
    # a pharmacist's own login may take stock of another package of the same drug
    # (same ingredients, strength and form) and record it; not of another drug
    w = pharmacy.world
    rx, prescribed, _lot = _rx(pharmacy, "Subdrug", stock=5)
    same = w.product("Subdrug", strength=prescribed.strength, ndc="44444-0004-04")
    other = w.product("Subdrug", strength="99 mg", ndc="44444-0005-05")
    same_lot = w.receive(same.id, 50, lot="SAME-1").lot_id
    other_lot = w.receive(other.id, 50, lot="OTHER-1").lot_id
    me = w.pharmacist.staff_id
    with pharmacy.login(w.pharmacist) as c:
        refused_at_commit(c, _as_substitute(sql.dispense(rx.id, other_lot, 10, me), other.id),
                          match="same ingredients, strength and dosage form")
        for sql_text, params in _as_substitute(sql.dispense(rx.id, same_lot, 10, me), same.id):
            c.execute(sql_text, params)
        c.commit()
    assert pharmacy.one("SELECT dispensed_product_id FROM dispenses WHERE prescription_id = "
                        "%s", (rx.id,)) == same.id
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (other_lot,)) == 50
    daw, _p, _l = _rx(pharmacy, "Dawdrug", stock=5)
    pharmacy.q("UPDATE prescriptions SET daw = true, daw_code = 1 WHERE id = %s", (daw.id,))
    twin = w.product("Dawdrug", strength=_p.strength, ndc="44444-0006-06")
    twin_lot = w.receive(twin.id, 50, lot="TWIN-1").lot_id
    with pharmacy.login(w.pharmacist) as c:
        refused_at_commit(c, _as_substitute(sql.dispense(daw.id, twin_lot, 10, me), twin.id),
                          match="dispense as written")
