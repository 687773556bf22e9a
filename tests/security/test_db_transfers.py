"""Prescription transfers (migration 0020), whatever a staff member types into
psql: only a pharmacist transfers, each transfer is the login's own at the
server's time and permanent; a prescription transferred out is closed (never
dispensed again, never reopened); Schedule II goes only as the one-time
transfer of an unfilled electronic prescription (21 CFR 1306.08(e)); Schedule
III-V once only (1306.25(a)); a prescription transferred in has only the
refills remaining, and keeps what the original said.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.enums import Counseling, RxStatus
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import clock, dispensing, fills, prescriptions, staff, transfers
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.prescriptions import PrescriptionDraft
from getmeds_desktop.services.transfers import OtherPharmacy, TransferIn
from tests.fixtures.data import NO_SCAN, PASSWORD, valid_dea

from . import dbsql as sql
from .conftest import Pharmacy, refused, refused_at_commit

THERE = OtherPharmacy(name="Elm Street Pharmacy", address="4 Elm St", pharmacist="Jo Park, RPh",
                      dea_number=valid_dea("F", 5151))
OUT = ("INSERT INTO prescription_transfers (id, prescription_id, direction, pharmacy_name, "
       "pharmacy_address, pharmacy_dea, other_pharmacist, pharmacist_id, transferred_at, "
       "request_id) VALUES (coalesce(%(id)s, gen_random_uuid()), %(rx)s, 'out', 'Elsewhere', "
       "'1 Road', NULL, 'Pat Lee', %(me)s, coalesce(%(at)s, now()), gen_random_uuid())")
IN = ("INSERT INTO prescription_transfers (id, prescription_id, direction, pharmacy_name, "
      "pharmacy_address, other_pharmacist, pharmacist_id, transferred_at, request_id, "
      "original_rx_number, original_dispensed_on, refills_authorized_original, "
      "refills_remaining) VALUES (gen_random_uuid(), %(rx)s, 'in', 'Elsewhere', '1 Road', "
      "'Pat Lee', %(me)s, now(), gen_random_uuid(), 'R-1', %(first)s, %(authorized)s, "
      "%(remaining)s)")
CLOSE = ("UPDATE prescriptions SET status = 'transferred', version = version + 1 "
         "WHERE id = %(rx)s")


def _p(rx, me, **kw) -> dict:
    return {"rx": rx, "me": me, "id": None, "at": None} | kw


def _released(ph: Pharmacy, rx_id: uuid.UUID, controlled: bool = False) -> None:
    """A fill made, verified and handed out through the app (as the owner)."""
    w = ph.world
    d = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(
        rx_id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    fills.verify(w.sf, w.pharmacist2, d.dispense_id)
    fills.release(w.sf, w.clerk, d.dispense_id, counseling=Counseling.OFFERED,
                  id_checked="licence" if controlled else None)


def _status(ph: Pharmacy, rx_id: uuid.UUID) -> str:
    return str(ph.one("SELECT status FROM prescriptions WHERE id = %s", (rx_id,)))


def test_the_app_transfers_as_a_pharmacist_login(pharmacy: Pharmacy):
    w = pharmacy.world
    engine = db.make_engine(pharmacy.url, username=w.pharmacist.username, password=PASSWORD,
                            poolclass=sa.NullPool)
    try:
        sf = db.session_factory(engine)
        me = staff.actor_from_session(sf)
        product, _lot = pharmacy.stocked("Xferout", 100, Schedule.IV)
        rx = pharmacy.rx(product.id, refills=2)
        _released(pharmacy, rx.id, controlled=True)
        done = transfers.transfer_out(sf, me, rx.id, THERE)
        assert done.status is RxStatus.TRANSFERRED
        row = pharmacy.q("SELECT pharmacist_id, transferred_at > now() - interval '1 minute' "
                         "FROM prescription_transfers WHERE prescription_id = %s", (rx.id,))
        assert row == [(w.pharmacist.staff_id, True)]
        written = clock.today() - dt.timedelta(days=20)
        arrived = transfers.transfer_in(sf, me, TransferIn(
            draft=PrescriptionDraft(
                patient_id=w.patient("Xfer", "Inbound").id, prescriber_id=w.prescriber_id,
                product_id=product.id, sig="Take 1", quantity=30, days_supply=30,
                date_written=written),
            pharmacy=THERE, original_rx_number="E-77", refills_authorized_original=3,
            refills_remaining=2, original_dispensed_on=written,
            previous_refills="one refill at Elm Street Pharmacy"))
        assert (arrived.refills_authorized, arrived.state.arrived_by_transfer) == (1, True)
    finally:
        engine.dispose()


def test_only_a_pharmacist_login_transfers(pharmacy: Pharmacy):
    w = pharmacy.world
    product, _lot = pharmacy.stocked("Xferwho", 50)
    rx = pharmacy.rx(product.id, refills=2)
    for who in (w.technician, w.clerk, w.doctor):
        with pharmacy.login(who) as c:
            refused(c, OUT, _p(rx.id, who.staff_id), match="permission denied")
    with pharmacy.login(w.admin) as c:  # an administrator without a practice role
        refused(c, OUT, _p(rx.id, w.admin.staff_id), match="only a pharmacist transfers")
    with pharmacy.login(w.pharmacist) as c:  # in another pharmacist's name
        refused(c, OUT, _p(rx.id, w.pharmacist2.staff_id), match="own id")
    assert _status(pharmacy, rx.id) == "new"


def test_a_transfer_is_the_servers_time_and_permanent(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    product, _lot = pharmacy.stocked("Xferperm", 50)
    rx = pharmacy.rx(product.id, refills=2)
    tid = uuid.uuid4()
    with pharmacy.login(w.pharmacist) as c:
        c.execute(OUT, _p(rx.id, me, id=tid, at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
        c.execute(CLOSE, {"rx": rx.id})
        c.commit()
    assert pharmacy.one("SELECT transferred_at > now() - interval '1 minute' FROM "
                        "prescription_transfers WHERE id = %s", (tid,))
    for who in (w.pharmacist, w.admin):
        with pharmacy.login(who) as c:
            refused(c, "UPDATE prescription_transfers SET pharmacy_name = 'Other' "
                       "WHERE id = %s", (tid,))
            refused(c, "DELETE FROM prescription_transfers WHERE id = %s", (tid,))
    # closed for good: never reopened, never dispensed
    product_lot = pharmacy.one("SELECT id FROM stock_lots WHERE product_id = %s", (product.id,))
    with pharmacy.login(w.pharmacist) as c:
        refused(c, "UPDATE prescriptions SET status = 'dispensed', version = version + 1 "
                   "WHERE id = %s", (rx.id,), match="stays closed here")
        refused(c, sql.DISPENSE, {"dispense": uuid.uuid4(), "rx": rx.id, "fill": 0, "part": 1,
                                  "qty": 30, "owed": 0, "staff": me},
                match="transferred to another pharmacy")
        # and not as a second transfer out either
        refused(c, OUT, _p(rx.id, me), match="cannot be transferred")
    assert product_lot is not None
    assert pharmacy.one("SELECT count(*) FROM prescription_transfers WHERE id = %s",
                        (tid,)) == 1


def test_closed_only_with_its_transfer_and_a_transfer_closes(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    product, _lot = pharmacy.stocked("Xferclose", 50)
    rx = pharmacy.rx(product.id, refills=2)
    with pharmacy.login(w.pharmacist) as c:
        refused(c, CLOSE, {"rx": rx.id}, match="only with its transfer out")
        c.rollback()
        refused_at_commit(c, [(OUT, _p(rx.id, me))], match="closed here")
    with pharmacy.login(w.pharmacist) as c:  # entered transferred
        refused(c, sql.new_rx("transferred"), {
            "id": None, "patient": w.patient("Xfer", "Entered").id,
            "prescriber": w.prescriber_id, "product": product.id, "staff": me,
            "updated_by": w.pharmacist.username})
    assert _status(pharmacy, rx.id) == "new"


def test_schedule_ii_only_unfilled_and_electronic(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    product, _lot = pharmacy.stocked("Xferii", 100, Schedule.II)
    paper = prescriptions.create_prescription(w.sf, w.pharmacist, PrescriptionDraft(
        patient_id=w.patient("Xfer", "Paper").id, prescriber_id=w.prescriber_id,
        product_id=product.id, sig="Take 1", quantity=10, days_supply=5,
        date_written=clock.today(), electronic=False))
    filled = pharmacy.rx(product.id, quantity=10)
    _released(pharmacy, filled.id, controlled=True)
    for rx in (paper, filled):
        with pharmacy.login(w.pharmacist) as c:
            refused(c, OUT, _p(rx.id, me), match="1306.08(e)")
    # the unfilled electronic one goes, once: it cannot be filled here afterwards
    fresh = pharmacy.rx(product.id, quantity=10)
    with pharmacy.login(w.pharmacist) as c:
        c.execute(OUT, _p(fresh.id, me))
        c.execute(CLOSE, {"rx": fresh.id})
        c.commit()
    assert _status(pharmacy, fresh.id) == "transferred"


def test_schedule_iii_v_once_and_transferred_in_with_the_refills_remaining(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    product, _lot = pharmacy.stocked("Xferiv", 100, Schedule.IV)
    # a prescription entered here as arrived by transfer (1 refill left here of 2)
    rx = pharmacy.rx(product.id, refills=1)
    with pharmacy.login(w.pharmacist) as c:
        refused(c, IN, {"rx": rx.id, "me": me, "first": clock.today(), "authorized": 5,
                        "remaining": 3}, match="only the refills remaining")
        refused(c, IN, {"rx": rx.id, "me": me, "first": None, "authorized": 5,
                        "remaining": 1}, match="all its refills remaining")
        c.execute(IN, {"rx": rx.id, "me": me, "first": clock.today(), "authorized": 5,
                       "remaining": 2})
        c.commit()
    with pharmacy.login(w.pharmacist) as c:  # what the original said stays
        refused(c, "UPDATE prescriptions SET refills_authorized = 5, version = version + 1 "
                   "WHERE id = %s", (rx.id,), match="arrived by transfer")
        refused(c, "UPDATE prescriptions SET date_written = date_written - 1, version = version "
                   "+ 1 WHERE id = %s", (rx.id,), match="arrived by transfer")
    _released(pharmacy, rx.id, controlled=True)
    with pharmacy.login(w.pharmacist) as c:  # III-V: once only
        refused(c, OUT, _p(rx.id, me), match="1306.25(a)")
    # a transfer in is recorded with the new prescription, before any fill
    other = pharmacy.rx(product.id, refills=1)
    _released(pharmacy, other.id, controlled=True)
    with pharmacy.login(w.pharmacist) as c:
        refused(c, IN, {"rx": other.id, "me": me, "first": clock.today(), "authorized": 2,
                        "remaining": 2}, match="before any fill")


def test_an_administrator_who_is_a_pharmacist_transfers(pharmacy: Pharmacy):
    from getmeds_desktop.enums import Role
    from getmeds_desktop.services.context import SYSTEM

    w = pharmacy.world
    info = staff.create_staff(pharmacy.sf, SYSTEM, username=f"ownerrph{uuid.uuid4().hex[:6]}",
                              full_name="Owner Pharmacist", role=Role.ADMIN, password=PASSWORD,
                              practice_role=Role.PHARMACIST)
    owner = staff.actor_for_username(pharmacy.sf, info.username)
    product, _lot = pharmacy.stocked("Xferowner", 50)
    rx = pharmacy.rx(product.id, refills=1)
    engine = db.make_engine(pharmacy.url, username=owner.username, password=PASSWORD,
                            poolclass=sa.NullPool)
    try:
        sf = db.session_factory(engine)
        signed_in = staff.actor_from_session(sf)  # the sign-in knows the practice role
        assert signed_in.practice_role is Role.PHARMACIST
        done = transfers.transfer_out(sf, signed_in, rx.id, THERE)
        assert done.status is RxStatus.TRANSFERRED
    finally:
        engine.dispose()
    assert pharmacy.one("SELECT pharmacist_id FROM prescription_transfers WHERE "
                        "prescription_id = %s", (rx.id,)) == owner.staff_id
    with pharmacy.login(w.admin) as c:  # and an administrator who is not one cannot
        refused(c, OUT, _p(pharmacy.rx(product.id, refills=1).id, w.admin.staff_id),
                match="only a pharmacist transfers")


def test_each_login_reads_the_transfers_of_the_prescriptions_it_may_read(pharmacy: Pharmacy):
    w = pharmacy.world
    product, _lot = pharmacy.stocked("Xferread", 50)
    own = pharmacy.rx(product.id, refills=1, prescriber_id=w.doctor.prescriber_id,
                      actor=w.doctor)
    other = pharmacy.rx(product.id, refills=1)
    for rx in (own, other):
        transfers.transfer_out(w.sf, w.pharmacist, rx.id, THERE)
    count = "SELECT count(*) FROM prescription_transfers WHERE prescription_id = %s"
    for who in (w.clerk, w.technician, w.pharmacist, w.admin):
        with pharmacy.login(who) as c:
            assert c.execute(count, (other.id,)).fetchone()[0] == 1
    with pharmacy.login(w.doctor) as c:  # a doctor: only their own prescriptions'
        assert c.execute(count, (own.id,)).fetchone()[0] == 1
        assert c.execute(count, (other.id,)).fetchone()[0] == 0
    with pharmacy.login(pharmacy.doctor2) as c:
        assert c.execute(count, (own.id,)).fetchone()[0] == 0
    # and the details read through the doctor's own login show the transfer
    engine = db.make_engine(pharmacy.url, username=w.doctor.username, password=PASSWORD,
                            poolclass=sa.NullPool)
    try:
        info = prescriptions.get_prescription(db.session_factory(engine), w.doctor, own.id)
        assert info.status is RxStatus.TRANSFERRED and len(info.transfers) == 1
    finally:
        engine.dispose()
