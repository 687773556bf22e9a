"""The steps of a fill (migration 0015), whatever a staff member types into psql.

A technician fills but never verifies, never overrides a severe warning and
never moves controlled stock other than by the fill itself; a pharmacist does
not verify their own fill unless the setting allows it; each step is recorded
as the signed-in login; what was filled never changes; a fill goes back to
stock only by returning exactly what it took to the lots it came from.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.enums import Counseling, ReturnReason
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import dispensing, fills, staff
from getmeds_desktop.services.dispensing import DispenseRequest
from tests.fixtures.data import NO_SCAN, PASSWORD

from . import dbsql as sql
from .conftest import Pharmacy, refused, refused_at_commit

VERIFY = ("UPDATE dispenses SET status = 'verified', verified_by = %(by)s, verified_at = now() "
          "WHERE id = %(d)s")
RELEASE = ("UPDATE dispenses SET status = 'released', released_by = %(by)s, "
           "released_at = now(), counseling = 'offered', id_checked = %(seen)s WHERE id = %(d)s")
RETURN = ("UPDATE dispenses SET status = 'returned', returned_by = %(by)s, returned_at = now(), "
          "return_reason = %(why)s WHERE id = %(d)s")


def _filled(ph: Pharmacy, name: str, *, schedule: Schedule = Schedule.NONE, qty: int = 10):
    product, lot = ph.stocked(name, 50, schedule)
    rx = ph.rx(product.id, quantity=qty)
    d = dispensing.dispense(ph.world.sf, ph.world.technician, DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    return d, rx, product, lot


def _status(ph: Pharmacy, dispense_id: uuid.UUID) -> str:
    return str(ph.one("SELECT status FROM dispenses WHERE id = %s", (dispense_id,)))


def test_the_steps_work_as_each_staff_login(pharmacy: Pharmacy):
    w = pharmacy.world

    def login(who):
        engine = db.make_engine(pharmacy.url, username=who.username, password=PASSWORD,
                                poolclass=sa.NullPool)
        sf = db.session_factory(engine)
        return engine, sf, staff.actor_from_session(sf)

    sessions = [login(x) for x in (w.technician, w.pharmacist, w.pharmacist2, w.clerk)]
    try:
        (_, tsf, tech), (_, psf, pharm), (_, p2sf, pharm2), (_, csf, clerk) = sessions
        product, _lot = pharmacy.stocked("Stepflow", 40)
        rx = pharmacy.rx(product.id, quantity=10, refills=1)
        d = dispensing.dispense(tsf, tech, DispenseRequest(rx.id, uuid.uuid4(),
                                                           no_scan_reason=NO_SCAN))
        dispensing.record_label(tsf, tech, d.dispense_id)
        fills.verify(psf, pharm, d.dispense_id)
        fills.release(csf, clerk, d.dispense_id, counseling=Counseling.ACCEPTED)
        # the refill: filled by a pharmacist, verified by another, not picked up
        early = {x.key: dispensing.Override("prescriber_consulted") for x in
                 dispensing.preview_dispense(psf, pharm, rx.id).warnings}
        refill = dispensing.dispense(psf, pharm, DispenseRequest(
            rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN, acknowledgements=early))
        fills.verify(p2sf, pharm2, refill.dispense_id)
        fills.return_to_stock(tsf, tech, refill.dispense_id, ReturnReason.NOT_PICKED_UP)
        # and filled again in the same slot
        again = dispensing.dispense(tsf, tech, DispenseRequest(
            rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN, acknowledgements={
                x.key: dispensing.Override("prescriber_consulted") for x in
                dispensing.preview_dispense(tsf, tech, rx.id).warnings}))
        assert (again.fill_number, again.part) == (1, 1)
        fills.refuse(psf, pharm, again.dispense_id, "wrong label on the bottle")
    finally:
        for engine, _sf, _actor in sessions:
            engine.dispose()
    assert pharmacy.q("SELECT fill_number, status, return_reason FROM dispenses WHERE "
                      "prescription_id = %s ORDER BY dispensed_at", (rx.id,)) == [
        (0, "released", None), (1, "returned", "not_picked_up"),
        (1, "returned", "verification_refused")]
    assert pharmacy.one("SELECT on_hand FROM product_stock WHERE product_id = %s",
                        (product.id,)) == 30


def test_a_technician_never_verifies_and_a_pharmacist_not_their_own_fill(pharmacy: Pharmacy):
    w = pharmacy.world
    d, _rx, _p, _lot = _filled(pharmacy, "Stepverify")
    with pharmacy.login(w.technician) as c:
        refused(c, VERIFY, {"by": w.technician.staff_id, "d": d.dispense_id},
                match="only a pharmacist verifies")
        refused(c, RETURN, {"by": w.technician.staff_id, "d": d.dispense_id,
                            "why": "verification_refused"}, match="only a pharmacist")
    with pharmacy.login(w.clerk) as c:
        refused(c, VERIFY, {"by": w.clerk.staff_id, "d": d.dispense_id},
                match="only a pharmacist verifies")
        # released before verification: not a step the database knows
        refused(c, RELEASE, {"by": w.clerk.staff_id, "d": d.dispense_id, "seen": None},
                match="cannot become released")
    with pharmacy.login(w.admin) as c:
        refused(c, VERIFY, {"by": w.admin.staff_id, "d": d.dispense_id},
                match="only a pharmacist verifies")
    with pharmacy.login(w.pharmacist) as c:
        # in another pharmacist's name
        refused(c, VERIFY, {"by": w.pharmacist2.staff_id, "d": d.dispense_id},
                match="signed-in staff member")
    assert _status(pharmacy, d.dispense_id) == "filled"
    own = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(
        pharmacy.rx(_p.id).id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    with pharmacy.login(w.pharmacist) as c:
        refused(c, VERIFY, {"by": w.pharmacist.staff_id, "d": own.dispense_id},
                match="does not verify their own fill")
    pharmacy.q("UPDATE app_settings SET self_verify = true")
    try:
        with pharmacy.login(w.pharmacist) as c:
            c.execute(VERIFY, {"by": w.pharmacist.staff_id, "d": own.dispense_id})
            c.commit()
    finally:
        pharmacy.q("UPDATE app_settings SET self_verify = false")
    assert _status(pharmacy, own.dispense_id) == "verified"


def test_a_fill_is_written_filled_and_what_was_filled_never_changes(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    product, lot = pharmacy.stocked("Stepnew", 30)
    rx = pharmacy.rx(product.id, quantity=10)
    with pharmacy.login(w.pharmacist) as c:
        statement, params = sql.dispense(rx.id, lot, 10, me)[0]
        refused(c, statement.replace("request_id)", "request_id, status, verified_by, "
                                     "verified_at)").replace("gen_random_uuid())",
                                     "gen_random_uuid(), 'verified', %(staff)s, now())"),
                params, match="a fill is written as filled")
    d, _rx, _p, _lot = _filled(pharmacy, "Stepfixed")
    # not even the owner's maintenance session changes what was filled
    with pharmacy.owner() as c:
        refused(c, "UPDATE dispenses SET quantity = 1 WHERE id = %s", (d.dispense_id,),
                match="permanent record")
    with pharmacy.login(w.pharmacist2) as c:
        refused(c, "UPDATE dispenses SET quantity = 1 WHERE id = %s", (d.dispense_id,),
                match="permission denied")
        refused(c, "DELETE FROM dispenses WHERE id = %s", (d.dispense_id,))
        c.execute(VERIFY, {"by": w.pharmacist2.staff_id, "d": d.dispense_id})
        c.commit()
        # a recorded step stays
        refused(c, "UPDATE dispenses SET verified_by = %s WHERE id = %s",
                (w.pharmacist.staff_id, d.dispense_id), match="recorded only with the step")
        c.execute(RELEASE, {"by": w.pharmacist2.staff_id, "d": d.dispense_id, "seen": None})
        c.commit()
        # released is final: it does not go back to stock
        refused(c, RETURN, {"by": w.pharmacist2.staff_id, "d": d.dispense_id,
                            "why": "not_picked_up"}, match="cannot become returned")


def test_a_step_is_never_written_on_its_own(pharmacy: Pharmacy):
    """Who verified, released or returned a fill is written only with that step
    (found by a hostile clerk: a forged "verified by" printed a pharmacist's
    initials on a label nobody checked)."""
    w = pharmacy.world
    d, _rx, _p, _lot = _filled(pharmacy, "Stepforge")
    with pharmacy.login(w.clerk) as c:
        refused(c, "UPDATE dispenses SET verified_by = %s, verified_at = now() - interval "
                   "'1 day' WHERE id = %s", (w.pharmacist.staff_id, d.dispense_id),
                match="recorded only with the step")
    fills.verify(w.sf, w.pharmacist, d.dispense_id)
    with pharmacy.login(w.technician) as c:
        refused(c, "UPDATE dispenses SET released_by = %s, counseling = 'accepted', "
                   "id_checked = 'fake' WHERE id = %s", (w.clerk.staff_id, d.dispense_id),
                match="recorded only with the step")
        refused(c, "UPDATE dispenses SET returned_by = %s WHERE id = %s",
                (w.pharmacist.staff_id, d.dispense_id), match="recorded only with the step")
    with pharmacy.login(w.pharmacist2) as c:
        # a step's time is the server's: a back-dated verification is not kept
        c.execute(RELEASE.replace("released_at = now()", "released_at = '2024-01-01'"),
                  {"by": w.pharmacist2.staff_id, "d": d.dispense_id, "seen": None})
        c.commit()
    when = pharmacy.one("SELECT released_at FROM dispenses WHERE id = %s", (d.dispense_id,))
    assert when.year >= 2026
    assert pharmacy.q("SELECT verified_by, status FROM dispenses WHERE id = %s",
                      (d.dispense_id,)) == [(w.pharmacist.staff_id, "released")]


def test_a_cancelled_prescription_or_a_recalled_lot_is_not_handed_out(pharmacy: Pharmacy):
    w = pharmacy.world
    d, rx, _p, lot = _filled(pharmacy, "Stephold")
    fills.verify(w.sf, w.pharmacist, d.dispense_id)
    pharmacy.q("UPDATE prescriptions SET status = 'on_hold' WHERE id = %s", (rx.id,))
    with pharmacy.login(w.clerk) as c:
        refused(c, RELEASE, {"by": w.clerk.staff_id, "d": d.dispense_id, "seen": None},
                match="cancelled or on hold")
    pharmacy.q("UPDATE prescriptions SET status = 'dispensed' WHERE id = %s", (rx.id,))
    pharmacy.q("UPDATE stock_lots SET status = 'recalled', status_reason = 'FDA' WHERE id = %s",
               (lot,))
    with pharmacy.login(w.clerk) as c:
        refused(c, RELEASE, {"by": w.clerk.staff_id, "d": d.dispense_id, "seen": None},
                match="quarantined or recalled")
    assert _status(pharmacy, d.dispense_id) == "verified"


def test_a_return_puts_back_exactly_what_was_taken(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist2.staff_id
    d, _rx, product, lot = _filled(pharmacy, "Steprestock")
    fills.verify(w.sf, w.pharmacist, d.dispense_id)
    other = w.receive(product.id, 5, lot="STEPOTHER").lot_id
    ret = (RETURN, {"by": me, "d": d.dispense_id, "why": "not_picked_up"})

    def back(to, qty):
        return (sql.movement("restock", reason="not picked up", dispense=True),
                {"mid": None, "lot": to, "qty": qty, "staff": me, "dispense": d.dispense_id})

    with pharmacy.login(w.pharmacist2) as c:
        refused_at_commit(c, [ret], match="lots it came from")  # nothing put back
        refused_at_commit(c, [ret, back(lot, 4)], match="lots it came from")  # too little
        refused_at_commit(c, [ret, back(other, 10)], match="lots it came from")  # elsewhere
        refused_at_commit(c, [back(lot, 10)], match="only when the fill is returned")
        refused_at_commit(c, [ret, back(lot, 10), back(lot, 10)], match="lots it came from")
    assert _status(pharmacy, d.dispense_id) == "verified"
    with pharmacy.login(w.pharmacist2) as c:
        for statement, params in (ret, back(lot, 10)):
            c.execute(statement, params)
        c.commit()
    assert _status(pharmacy, d.dispense_id) == "returned"


def test_a_technician_moves_no_controlled_stock_and_overrides_no_stop(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.technician.staff_id
    d, _rx, _product, lot = _filled(pharmacy, "Stepcii", schedule=Schedule.II)
    fills.verify(w.sf, w.pharmacist, d.dispense_id)
    with pharmacy.login(w.technician) as c:
        refused(c, RETURN, {"by": me, "d": d.dispense_id, "why": "not_picked_up"},
                match="only a pharmacist returns a controlled substance")
        refused(c, sql.movement("restock", reason="not picked up", dispense=True),
                {"mid": None, "lot": lot, "qty": 10, "staff": me, "dispense": d.dispense_id})
        refused(c, sql.movement("adjustment", reason="found more"),
                {"mid": None, "lot": lot, "qty": 5, "staff": me})
        refused(c, sql.movement("write_off", reason="broken"),
                {"mid": None, "lot": lot, "qty": -1, "staff": me})
        refused(c, "INSERT INTO stocktakes (id, scope, status, started_by, created_at, "
                   "updated_at, version) VALUES (gen_random_uuid(), 'all', 'open', %s, now(), "
                   "now(), 1)", (me,))
        refused(c, "INSERT INTO dispense_warnings (id, dispense_id, kind, key, detail, "
                   "severity, reason_code, reason, acknowledged_by) VALUES (gen_random_uuid(),"
                   " %s, 'allergy', 'allergy:x', 'x', 'severe', 'other', 'went ahead anyway',"
                   " %s)", (d.dispense_id, me), match="only a pharmacist overrides a severe")
        refused(c, "UPDATE stock_lots SET status = 'quarantined' WHERE id = %s", (lot,))
        refused(c, "SELECT * FROM audit_log LIMIT 1")
    # a released controlled fill needs the ID seen, at the database too
    with pharmacy.login(w.technician) as c:
        refused(c, RELEASE, {"by": me, "d": d.dispense_id, "seen": None},
                match="only after an ID is checked")
        c.execute(RELEASE, {"by": me, "d": d.dispense_id, "seen": "State ID ...0042"})
        c.commit()
    assert _status(pharmacy, d.dispense_id) == "released"


def test_a_label_is_printed_once_and_then_reprinted_with_its_reason(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    d, _rx, _p, _lot = _filled(pharmacy, "Steplabel")
    insert = ("INSERT INTO label_prints (id, dispense_id, printed_by, printed_at, reprint, "
              "reason) VALUES (gen_random_uuid(), %(d)s, %(me)s, %(at)s, %(re)s, %(why)s)")
    with pharmacy.login(w.pharmacist) as c:
        c.execute(insert, {"d": d.dispense_id, "me": me, "at": "2019-01-01", "re": False,
                           "why": None})
        c.commit()
        refused(c, insert, {"d": d.dispense_id, "me": me, "at": "2019-01-01", "re": False,
                            "why": None}, match="printed already")
    at = pharmacy.one("SELECT printed_at FROM label_prints WHERE dispense_id = %s",
                      (d.dispense_id,))
    assert at.year >= 2026  # the server's time, not the one written
    fills.refuse(w.sf, w.pharmacist2, d.dispense_id, "wrong label colour")
    with pharmacy.login(w.pharmacist) as c:
        refused(c, insert, {"d": d.dispense_id, "me": me, "at": "2026-12-01", "re": True,
                            "why": "smudged"}, match="went back to stock")
