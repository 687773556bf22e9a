"""A fill's way to the patient: filled -> verified (by a pharmacist) -> released,
or back to stock; technicians fill but never verify; a returned fill no longer
counts (issue: technician fill and pharmacist verification)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.enums import Counseling, FillStatus, ReturnReason
from getmeds_desktop.models import (
    AppSettings,
    ControlledRegisterEntry,
    Dispense,
    MovementKind,
    Prescription,
    RxStatus,
    Schedule,
    StockLot,
    StockMovement,
)
from getmeds_desktop.services import dispensing, fills, ledger, prescriptions
from getmeds_desktop.services.errors import (
    InvalidState,
    PermissionDenied,
    ValidationError,
)
from tests.fixtures.data import NO_SCAN


def _fill(world, actor=None, *, schedule=Schedule.NONE, qty=30, refills=0, lots=(50,),
          product=None):
    p = product or world.product("Fillcheck", schedule=schedule)
    for n in lots:
        world.receive(p.id, n)
    rx = world.rx(world.patient().id, p.id, quantity=qty, refills=refills)
    d = dispensing.dispense(world.sf, actor or world.technician, dispensing.DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    return p, rx, d


def _status(world, dispense_id):
    with db.read_session(world.sf) as s:
        return FillStatus(s.get(Dispense, dispense_id).status)


def test_technician_fills_pharmacist_verifies_and_the_counter_releases(world):
    _p, rx, d = _fill(world)
    assert _status(world, d.dispense_id) is FillStatus.FILLED
    queue = fills.fill_queue(world.sf, world.pharmacist, FillStatus.FILLED)
    assert [r.dispense_id for r in queue] == [d.dispense_id]
    assert queue[0].filled_by == "Test Technician"
    # a technician, a clerk and an administrator never verify
    for who in (world.technician, world.clerk, world.admin):
        with pytest.raises(PermissionDenied):
            fills.verify(world.sf, who, d.dispense_id)
    # the clerk cannot release what no pharmacist has verified
    with pytest.raises(InvalidState, match="not been verified"):
        fills.release(world.sf, world.clerk, d.dispense_id, counseling=Counseling.DECLINED)
    v = fills.verify(world.sf, world.pharmacist, d.dispense_id)
    assert (v.status, v.replayed) == (FillStatus.VERIFIED, False)
    assert fills.verify(world.sf, world.pharmacist, d.dispense_id).replayed  # a retry
    with pytest.raises(InvalidState, match="already verified by Test Pharmacist"):
        fills.verify(world.sf, world.pharmacist2, d.dispense_id)
    with pytest.raises(ValidationError, match="offer to counsel"):
        fills.release(world.sf, world.clerk, d.dispense_id, counseling=None)
    r = fills.release(world.sf, world.clerk, d.dispense_id, counseling=Counseling.OFFERED)
    assert r.status is FillStatus.RELEASED
    detail = fills.fill_detail(world.sf, world.pharmacist, d.dispense_id)
    assert (detail.row.verified_by, detail.released_by, detail.counseling) == (
        "Test Pharmacist", "Test Clerk", Counseling.OFFERED)
    # released is final: it does not go back to stock
    with pytest.raises(InvalidState, match="already released"):
        fills.return_to_stock(world.sf, world.pharmacist, d.dispense_id,
                              ReturnReason.NOT_PICKED_UP)
    assert fills.fill_queue(world.sf, world.pharmacist, FillStatus.FILLED) == ()
    del rx


def test_a_pharmacist_verifies_their_own_fill_only_where_the_setting_allows(world):
    _p, _rx, d = _fill(world, world.pharmacist)
    with pytest.raises(PermissionDenied, match="another pharmacist verifies it"):
        fills.verify(world.sf, world.pharmacist, d.dispense_id)
    with world.sf.begin() as s:
        s.get(AppSettings, 1).self_verify = True
    v = fills.verify(world.sf, world.pharmacist, d.dispense_id)
    with db.read_session(world.sf) as s:
        row = s.get(Dispense, d.dispense_id)
        # both steps recorded, by the same pharmacist
        assert (row.pharmacist_id, row.verified_by) == (world.pharmacist.staff_id,) * 2
    assert v.status is FillStatus.VERIFIED


def test_a_refused_verification_returns_the_stock_and_the_fill_no_longer_counts(world):
    p, rx, d = _fill(world, qty=30, refills=1, lots=(20, 40))
    with db.read_session(world.sf) as s:
        before = {lot.lot_number: lot.on_hand for lot in s.scalars(
            sa.select(StockLot).where(StockLot.product_id == p.id))}
    assert sum(before.values()) == 30
    for thin in (None, "", "bad"):
        with pytest.raises(ValidationError):
            fills.refuse(world.sf, world.pharmacist, d.dispense_id, thin)
    with pytest.raises(PermissionDenied):
        fills.refuse(world.sf, world.technician, d.dispense_id, "wrong strength picked")
    fills.refuse(world.sf, world.pharmacist, d.dispense_id, "wrong strength picked")
    with db.read_session(world.sf) as s:
        after = {lot.lot_number: lot.on_hand for lot in s.scalars(
            sa.select(StockLot).where(StockLot.product_id == p.id))}
        back = s.execute(sa.select(StockMovement.lot_id, StockMovement.quantity).where(
            StockMovement.dispense_id == d.dispense_id,
            StockMovement.kind == MovementKind.RESTOCK)).all()
        taken = s.execute(sa.select(StockMovement.lot_id, -StockMovement.quantity).where(
            StockMovement.dispense_id == d.dispense_id,
            StockMovement.kind == MovementKind.DISPENSE)).all()
        assert sorted(back) == sorted(taken)  # the same lots, the same quantities
        r = s.get(Prescription, rx.id)
        assert (r.status, r.owed_quantity) == (RxStatus.NEW, 0)
    assert sum(after.values()) == 60
    ledger.verify(world.sf)
    # the refill is not used up: the original fill can be made again, twice in all
    info = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id)
    assert info.refills_left == 1
    again = dispensing.dispense(world.sf, world.technician, dispensing.DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    assert (again.fill_number, again.part) == (0, 1)
    assert _status(world, d.dispense_id) is FillStatus.RETURNED


def test_not_picked_up_goes_back_and_controlled_returns_show_in_the_register(world):
    p, rx, d = _fill(world, world.pharmacist, schedule=Schedule.IV, qty=10, lots=(30,))
    fills.verify(world.sf, world.pharmacist2, d.dispense_id)
    # a technician does not return controlled stock; a clerk returns nothing
    with pytest.raises(PermissionDenied, match="controlled"):
        fills.return_to_stock(world.sf, world.technician, d.dispense_id,
                              ReturnReason.NOT_PICKED_UP)
    with pytest.raises(PermissionDenied):
        fills.return_to_stock(world.sf, world.clerk, d.dispense_id, ReturnReason.NOT_PICKED_UP)
    with pytest.raises(ValidationError):
        fills.return_to_stock(world.sf, world.pharmacist, d.dispense_id, ReturnReason.OTHER)
    fills.return_to_stock(world.sf, world.pharmacist, d.dispense_id,
                          ReturnReason.NOT_PICKED_UP)
    with db.read_session(world.sf) as s:
        reg = s.execute(sa.select(ControlledRegisterEntry.kind, ControlledRegisterEntry.quantity,
                                  ControlledRegisterEntry.balance_after)
                        .where(ControlledRegisterEntry.product_id == p.id)
                        .order_by(ControlledRegisterEntry.id)).all()
    assert [(MovementKind(k), q, b) for k, q, b in reg] == [
        (MovementKind.RECEIPT, 30, 30), (MovementKind.DISPENSE, -10, 20),
        (MovementKind.RESTOCK, 10, 30)]
    ledger.verify(world.sf)
    del rx


def test_a_controlled_release_needs_the_id_seen(world):
    _p, _rx, d = _fill(world, schedule=Schedule.II, qty=10, lots=(10,))
    fills.verify(world.sf, world.pharmacist, d.dispense_id)
    with pytest.raises(ValidationError, match="check the ID"):
        fills.release(world.sf, world.technician, d.dispense_id, counseling="declined")
    r = fills.release(world.sf, world.technician, d.dispense_id, counseling="declined",
                      id_checked="Driver licence ...4821")
    assert r.status is FillStatus.RELEASED


def test_only_the_latest_fill_goes_back(world):
    p = world.product("Lateronly")
    world.receive(p.id, 100)
    rx = world.rx(world.patient().id, p.id, quantity=10, refills=2)
    first = dispensing.dispense(world.sf, world.pharmacist, dispensing.DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    fills.verify(world.sf, world.pharmacist2, first.dispense_id)
    early = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id).warnings
    second = dispensing.dispense(world.sf, world.pharmacist, dispensing.DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN, acknowledgements={
            w.key: "prescriber_consulted: needs a spare supply for travel" for w in early}))
    fills.verify(world.sf, world.pharmacist2, second.dispense_id)
    with pytest.raises(InvalidState, match="later fill"):
        fills.return_to_stock(world.sf, world.pharmacist, first.dispense_id,
                              ReturnReason.NOT_PICKED_UP)
    fills.return_to_stock(world.sf, world.pharmacist, second.dispense_id,
                          ReturnReason.PATIENT_DECLINED)
    info = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id)
    assert (info.refills_left, info.status) == (2, RxStatus.DISPENSED)


def test_a_technician_never_overrides_a_severe_warning(world):
    p = world.product("Amoxicillin", classes=("Penicillins",))
    world.receive(p.id, 50)
    pt = world.patient(allergies=("penicillin",))
    rx = world.rx(pt.id, p.id)
    # refused for the role, whatever the reason given (the rules runner's "permission")
    with pytest.raises(PermissionDenied, match="^Allergy: this is a stop; a pharmacist") as e:
        dispensing.dispense(world.sf, world.technician, dispensing.DispenseRequest(
            rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN, acknowledgements={
                w.key: "prescriber_consulted: patient tolerated amoxicillin last year"
                for w in dispensing.preview_dispense(world.sf, world.technician,
                                                     rx.id).warnings}))
    assert "pharmacist" in str(e.value).lower()


def test_a_held_prescription_or_a_recalled_lot_is_not_handed_out(world):
    from getmeds_desktop.enums import LotStatus
    from getmeds_desktop.services import inventory
    from getmeds_desktop.services.prescriptions import RxAction

    p, rx, d = _fill(world)
    fills.verify(world.sf, world.pharmacist, d.dispense_id)
    prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.HOLD,
                                reason="Prescriber called: stop")
    with pytest.raises(InvalidState, match="on hold: do not hand this fill out"):
        fills.release(world.sf, world.clerk, d.dispense_id, counseling="declined")
    prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.RELEASE)
    lot = d.allocations[0].lot_id
    inventory.set_lot_status(world.sf, world.pharmacist, lot, LotStatus.RECALLED, "FDA recall")
    with pytest.raises(InvalidState, match="quarantined or recalled"):
        fills.release(world.sf, world.clerk, d.dispense_id, counseling="declined")
    # it goes back to stock instead (to the recalled lot, where it is held)
    fills.return_to_stock(world.sf, world.pharmacist, d.dispense_id, "other",
                          "lot recalled before pickup")
    del p


def test_the_next_filler_sees_why_the_fill_was_refused(world):
    _p, rx, d = _fill(world)
    assert dispensing.preview_dispense(world.sf, world.technician, rx.id).refused_note is None
    fills.refuse(world.sf, world.pharmacist, d.dispense_id, "wrong strength picked")
    again = dispensing.preview_dispense(world.sf, world.technician, rx.id)
    assert again.refused_note == "wrong strength picked"
    assert (again.fill_number, again.part) == (0, 1)
