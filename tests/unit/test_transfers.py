"""Prescription transfers between pharmacies (21 CFR 1306.25, 1306.08(e)-(i);
state law for other prescriptions), in the prescription state and the
services, on both databases. The database's side is in
tests/security/test_db_transfers.py."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from getmeds_desktop.enums import Counseling, RxStatus, Schedule
from getmeds_desktop.services import clock, dispensing, fills, prescriptions, transfers
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import (
    InvalidState,
    PermissionDenied,
    ValidationError,
)
from getmeds_desktop.services.prescriptions import PrescriptionDraft
from getmeds_desktop.services.rxstate import RxState
from getmeds_desktop.services.transfers import OtherPharmacy, TransferIn
from tests.fixtures.data import NO_SCAN, valid_dea

THERE = OtherPharmacy(name="Main Street Pharmacy", address="12 Main St, Springfield",
                      dea_number=valid_dea("B", 4242), pharmacist="Sam Lee, RPh")


def _state(**kw) -> RxState:
    base = dict(rx_number=7, status=RxStatus.NEW, schedule=Schedule.IV, quantity=30,
                refills_authorized=3, date_written=dt.date(2026, 1, 5), owed_quantity=0,
                validity_months=6)
    return RxState(**(base | kw))  # type: ignore[arg-type]


DAY = dt.date(2026, 2, 1)


def test_the_state_says_which_prescription_may_be_transferred():
    # Schedule III-V: refills once, an unfilled one only when electronic
    assert _state(status=RxStatus.DISPENSED, last_fill=0).transfer_problem_kind(DAY) is None
    assert _state().transfer_problem_kind(DAY) is None  # unfilled electronic
    assert _state(electronic=False).transfer_problem_kind(DAY) == "transfer"
    assert _state(status=RxStatus.DISPENSED, last_fill=0,
                  electronic=False).transfer_problem_kind(DAY) is None  # refills of paper
    once = _state(status=RxStatus.DISPENSED, last_fill=0, arrived_by_transfer=True)
    assert once.transfer_problem_kind(DAY) == "transfer"
    assert "once only (21 CFR 1306.25(a))" in (once.transfer_problem(DAY) or "")
    # Schedule II: unfilled and electronic, once
    ii = dict(schedule=Schedule.II, refills_authorized=0, validity_months=12)
    assert _state(**ii).transfer_problem_kind(DAY) is None
    assert "not an electronic" in (_state(**ii, electronic=False).transfer_problem(DAY) or "")
    filled = _state(**ii, status=RxStatus.PARTIALLY_DISPENSED, last_fill=0, last_part=1,
                    owed_quantity=10)
    assert "part of it has been filled" in (filled.transfer_problem(DAY) or "")
    assert _state(**ii, arrived_by_transfer=True).transfer_problem_kind(DAY) == "transfer"
    # nothing left, or closed
    assert _state(status=RxStatus.DISPENSED, last_fill=3).transfer_problem_kind(DAY) \
        == "no_refills"
    assert _state().transfer_problem_kind(dt.date(2026, 7, 6)) == "expired"
    assert _state(status=RxStatus.CANCELLED).transfer_problem_kind(DAY) == "cancelled"
    # other prescriptions: as state law allows, again and again
    assert _state(schedule=Schedule.NONE, arrived_by_transfer=True,
                  electronic=False).transfer_problem_kind(DAY) is None


def test_a_transferred_prescription_cannot_be_filled_and_says_where_it_went():
    state = _state(status=RxStatus.TRANSFERRED, transferred_to="Main Street Pharmacy",
                   transferred_on=dt.date(2026, 1, 20))
    assert state.problem_kind(DAY) == "transferred"
    assert state.problem(DAY) == ("Rx 7 was transferred to Main Street Pharmacy on 2026-01-20: "
                                  "it is closed here and cannot be filled.")
    assert state.transfer_problem_kind(DAY) == "transferred"


def _filled_and_released(world, rx_id, schedule=Schedule.NONE):
    note = "Dr Outside confirmed the refill by phone today"
    acks = {w.key: dispensing.Override("prescriber_consulted", note) for w in
            dispensing.preview_dispense(world.sf, world.pharmacist, rx_id).warnings}
    d = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        rx_id, uuid.uuid4(), no_scan_reason=NO_SCAN, acknowledgements=acks))
    fills.verify(world.sf, world.pharmacist2, d.dispense_id)
    fills.release(world.sf, world.clerk, d.dispense_id, counseling=Counseling.OFFERED,
                  id_checked="Driver licence" if schedule.controlled else None)
    return d


def test_transfer_out_records_the_parties_and_closes_the_prescription(world):
    product = world.product("Alprazolam", schedule=Schedule.IV)
    world.receive(product.id, 200)
    rx = world.rx(world.patient().id, product.id, refills=3)
    _filled_and_released(world, rx.id, Schedule.IV)
    done = transfers.transfer_out(world.sf, world.pharmacist, rx.id, THERE)
    assert done.status is RxStatus.TRANSFERRED
    assert done.state.transferred_to == "Main Street Pharmacy"
    assert done.state.transferred_on == clock.today()
    assert "Transferred out" in (done.notes or "")
    info = prescriptions.get_prescription(world.sf, world.clerk, rx.id)
    (t,) = info.transfers
    assert (t.direction, t.pharmacy_dea, t.other_pharmacist, t.pharmacist) == (
        "out", THERE.dea_number, "Sam Lee, RPh", world.pharmacist.full_name)
    assert "Transferred to Main Street Pharmacy" in t.summary
    # nothing more is filled here, and it does not go again
    with pytest.raises(InvalidState, match="was transferred to Main Street Pharmacy"):
        dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
            rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    with pytest.raises(InvalidState, match="transferred"):
        transfers.transfer_out(world.sf, world.pharmacist, rx.id, THERE)
    # nothing was deleted: the fill is still there
    assert dispensing.preview_dispense(world.sf, world.pharmacist, rx.id).problem


def test_only_a_pharmacist_transfers(world):
    product = world.product("Lisinopril")
    rx = world.rx(world.patient().id, product.id, refills=2)
    for who in (world.technician, world.clerk, world.doctor, world.admin):
        with pytest.raises(PermissionDenied, match="Only a pharmacist transfers"):
            transfers.transfer_out(world.sf, who, rx.id, THERE)
    assert prescriptions.get_prescription(world.sf, world.clerk, rx.id).status is RxStatus.NEW


def test_transfer_out_needs_the_receiving_pharmacy_and_a_valid_dea_number(world):
    product = world.product("Tramadol", schedule=Schedule.IV)
    rx = world.rx(world.patient().id, product.id, refills=1)
    with pytest.raises(ValidationError) as exc:
        transfers.transfer_out(world.sf, world.pharmacist, rx.id,
                               OtherPharmacy("X", "1 Road", None, "Pat"))
    assert exc.value.field == "pharmacy_dea"
    with pytest.raises(ValidationError, match="check digit") as exc:
        transfers.transfer_out(world.sf, world.pharmacist, rx.id,
                               OtherPharmacy("X", "1 Road", "BB1234567", "Pat"))
    with pytest.raises(ValidationError) as exc:
        transfers.transfer_out(world.sf, world.pharmacist, rx.id,
                               OtherPharmacy("X", "1 Road", THERE.dea_number, " "))
    assert exc.value.field == "other_pharmacist"
    # not controlled: state law, no DEA number needed
    plain = world.rx(world.patient().id, world.product("Metformin").id, refills=1)
    done = transfers.transfer_out(world.sf, world.pharmacist, plain.id,
                                  OtherPharmacy("X", "1 Road", None, "Pat"))
    assert done.status is RxStatus.TRANSFERRED


def test_schedule_ii_only_unfilled_electronic(world):
    product = world.product("Oxycodone", schedule=Schedule.II)
    world.receive(product.id, 100)
    patient = world.patient().id
    paper = prescriptions.create_prescription(world.sf, world.pharmacist, PrescriptionDraft(
        patient_id=patient, prescriber_id=world.prescriber_id, product_id=product.id,
        sig="Take 1", quantity=10, days_supply=5, date_written=clock.today(),
        electronic=False))
    with pytest.raises(InvalidState, match="not an electronic prescription") as exc:
        transfers.transfer_out(world.sf, world.pharmacist, paper.id, THERE)
    assert exc.value.field == "transfer"
    filled = world.rx(world.patient().id, product.id, quantity=10)
    _filled_and_released(world, filled.id, Schedule.II)
    with pytest.raises(InvalidState, match="part of it has been filled"):
        transfers.transfer_out(world.sf, world.pharmacist, filled.id, THERE)
    fresh = world.rx(world.patient().id, product.id, quantity=10)
    assert transfers.transfer_out(world.sf, world.pharmacist, fresh.id,
                                  THERE).status is RxStatus.TRANSFERRED


def test_no_transfer_while_a_fill_waits(world):
    product = world.product("Atorvastatin")
    world.receive(product.id, 100)
    rx = world.rx(world.patient().id, product.id, refills=2)
    dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    with pytest.raises(InvalidState, match="waiting for verification or pickup"):
        transfers.transfer_out(world.sf, world.pharmacist, rx.id, THERE)


def _incoming(world, product_id, *, written, dispensed_on, authorized, remaining,
              electronic=True, previous=None, quantity=30):
    return TransferIn(
        draft=PrescriptionDraft(
            patient_id=world.patient().id, prescriber_id=world.prescriber_id,
            product_id=product_id, sig="Take 1 at night", quantity=quantity, days_supply=30,
            date_written=written, electronic=electronic),
        pharmacy=THERE, original_rx_number="RX-88812", refills_authorized_original=authorized,
        refills_remaining=remaining, original_dispensed_on=dispensed_on,
        previous_refills=previous)


def test_transfer_in_has_only_the_refills_remaining_counted_from_the_original_date(world):
    product = world.product("Zolpidem", schedule=Schedule.IV)
    world.receive(product.id, 300)
    written = clock.today() - dt.timedelta(days=100)
    t = _incoming(world, product.id, written=written,
                  dispensed_on=written + dt.timedelta(days=1), authorized=5, remaining=2,
                  previous="2026: refills at Main Street Pharmacy (see their record)")
    rx = transfers.transfer_in(world.sf, world.pharmacist, t)
    assert rx.date_written == written  # validity from the original date written
    assert rx.state.arrived_by_transfer
    # the original was dispensed: a first fill here is one of the 2 remaining refills
    assert rx.refills_authorized == 1
    info = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id)
    (tin,) = info.transfers
    assert (tin.direction, tin.original_rx_number, tin.refills_remaining,
            tin.refills_authorized_original) == ("in", "RX-88812", 2, 5)
    assert "Transferred in from Main Street Pharmacy" in tin.summary
    for _ in range(2):
        _filled_and_released(world, rx.id, Schedule.IV)
    again = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id)
    assert again.problem and "no refills left" in again.problem
    # and it does not go on to a third pharmacy (III-V: once)
    with pytest.raises(InvalidState, match="once only"):
        transfers.transfer_out(world.sf, world.pharmacist, rx.id, THERE)


def test_transfer_in_refusals(world):
    iv = world.product("Lorazepam", schedule=Schedule.IV).id
    ii = world.product("Hydromorphone", schedule=Schedule.II).id
    today = clock.today()
    cases = [
        (_incoming(world, iv, written=today - dt.timedelta(days=200), dispensed_on=None,
                   authorized=2, remaining=2), "date_written"),  # past its six months
        (_incoming(world, iv, written=today, dispensed_on=today, authorized=2, remaining=3),
         "refills_remaining"),
        (_incoming(world, iv, written=today, dispensed_on=today, authorized=2, remaining=0),
         "refills_remaining"),
        (_incoming(world, iv, written=today, dispensed_on=today, authorized=3, remaining=1),
         "previous_refills"),
        (_incoming(world, iv, written=today, dispensed_on=None, authorized=2, remaining=2,
                   electronic=False), "electronic"),
        (_incoming(world, iv, written=today, dispensed_on=None, authorized=6, remaining=6),
         "refills_authorized_original"),
        (_incoming(world, ii, written=today, dispensed_on=today, authorized=0, remaining=0),
         "original_dispensed_on"),  # Schedule II: only for its initial filling
        (_incoming(world, ii, written=today - dt.timedelta(days=2),
                   dispensed_on=today - dt.timedelta(days=1), authorized=1, remaining=1),
         "original_dispensed_on"),
        (_incoming(world, ii, written=today, dispensed_on=None, authorized=0, remaining=0,
                   electronic=False), "electronic"),
    ]
    for t, field in cases:
        with pytest.raises(ValidationError) as exc:
            transfers.transfer_in(world.sf, world.pharmacist, t)
        assert exc.value.field == field, (field, exc.value)
    with pytest.raises(PermissionDenied):
        transfers.transfer_in(world.sf, world.technician, cases[0][0])
    # Schedule II: the initial fill of the electronic prescription
    rx = transfers.transfer_in(world.sf, world.pharmacist, _incoming(
        world, ii, written=today, dispensed_on=None, authorized=0, remaining=0, quantity=10))
    assert (rx.refills_authorized, rx.state.arrived_by_transfer) == (0, True)
    with pytest.raises(InvalidState, match="only once"):
        transfers.transfer_out(world.sf, world.pharmacist, rx.id, THERE)


def test_a_retried_transfer_is_made_once(world):
    product = world.product("Amlodipine")
    rx = world.rx(world.patient().id, product.id, refills=2)
    request = uuid.uuid4()
    first = transfers.transfer_out(world.sf, world.pharmacist, rx.id, THERE, request_id=request)
    again = transfers.transfer_out(world.sf, world.pharmacist, rx.id, THERE, request_id=request)
    assert first.id == again.id and again.status is RxStatus.TRANSFERRED
    assert len(prescriptions.get_prescription(world.sf, world.pharmacist, rx.id).transfers) == 1


@pytest.mark.slow
def test_the_migration_does_not_go_back_over_transfer_records(fresh_engine):
    """(Without transfers it goes back: test_dea_prescriptions goes back to 0015.)"""
    from alembic import command

    from getmeds_desktop import db
    from tests.fixtures.data import build_world

    world = build_world(db.session_factory(fresh_engine))
    rx = world.rx(world.patient().id, world.product("Xfermigrate").id, refills=1)
    transfers.transfer_out(world.sf, world.pharmacist, rx.id, THERE)
    # the refusal rolls back the whole downgrade (the later revisions' steps too)
    with pytest.raises(RuntimeError, match="transferred out or in"), fresh_engine.begin() as conn:
        command.downgrade(db.alembic_config(conn), "0024")
    assert prescriptions.get_prescription(world.sf, world.pharmacist, rx.id).transfers
