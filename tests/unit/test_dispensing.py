"""Dispensing: FEFO allocation, refusals, partial fills, refills, safety warnings,
idempotency, and what one dispense writes (ledger, register, audit)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import (
    AuditEntry,
    ControlledRegisterEntry,
    Dispense,
    DispenseWarning,
    LotStatus,
    OverrideReason,
    Role,
    RxStatus,
    Schedule,
    Severity,
    StockMovement,
    WarningKind,
)
from getmeds_desktop.services import (
    clock,
    dispensing,
    fills,
    inventory,
    ledger,
    prescriptions,
    staff,
)
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import (
    InsufficientStock,
    InvalidState,
    PermissionDenied,
    StaleEdit,
    ValidationError,
    WarningsNeedAcknowledgement,
)
from getmeds_desktop.services.prescriptions import RxAction
from tests.unit.helpers import nothing_written


def req(rx, **kw) -> DispenseRequest:
    if "scan" not in kw:
        kw.setdefault("no_scan_reason", "not scanned in this test")
    return DispenseRequest(prescription_id=rx.id, request_id=kw.pop("request_id", uuid.uuid4()),
                           **kw)


def test_fefo_skips_expired_quarantined_recalled_and_splits(world):
    p = world.product()
    world.receive(p.id, 10, lot="OLD", days=5)  # will be expired
    world.receive(p.id, 10, lot="Q", days=20)
    world.receive(p.id, 4, lot="FIRST", days=40)
    world.receive(p.id, 50, lot="NEXT", days=90)
    world.receive(p.id, 50, lot="R", days=60)
    lots = {lot.lot_number: lot for lot in inventory.lots_of_product(world.sf, p.id)}
    inventory.set_lot_status(world.sf, world.pharmacist, lots["Q"].id, LotStatus.QUARANTINED,
                             "Damaged carton")
    inventory.set_lot_status(world.sf, world.pharmacist, lots["R"].id, LotStatus.RECALLED,
                             "Recall")
    rx = world.rx(world.patient().id, p.id, quantity=30)
    with clock.travel(clock.now() + dt.timedelta(days=10)):
        preview = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id)
        assert [(a.lot_number, a.quantity) for a in preview.allocations] == [
            ("FIRST", 4), ("NEXT", 26)]
        assert preview.available == 54 and preview.problem is None
        result = dispensing.dispense(world.sf, world.pharmacist, req(rx))
    assert [(a.lot_number, a.quantity) for a in result.allocations] == [("FIRST", 4), ("NEXT", 26)]
    after = {lot.lot_number: lot.on_hand
             for lot in inventory.lots_of_product(world.sf, p.id, with_empty=True)}
    assert after == {"OLD": 10, "Q": 10, "FIRST": 0, "NEXT": 24, "R": 50}
    info = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id)
    assert (info.status, info.fills, info.owed_quantity) == (RxStatus.DISPENSED, 1, 0)


def test_short_stock_is_refused_and_nothing_is_written(world):
    p = world.product()
    world.receive(p.id, 20)
    rx = world.rx(world.patient().id, p.id, quantity=30)
    with nothing_written(world.sf), pytest.raises(InsufficientStock) as err:
        dispensing.dispense(world.sf, world.pharmacist, req(rx))
    assert "20 each available" in str(err.value) and "partial fill is possible" in str(err.value)
    assert (err.value.available, err.value.requested) == (20, 30)


def test_no_stock_at_all_is_refused_even_for_partial(world):
    p = world.product()
    rx = world.rx(world.patient().id, p.id, quantity=30)
    with nothing_written(world.sf), pytest.raises(InsufficientStock):
        dispensing.dispense(world.sf, world.pharmacist, req(rx, allow_partial=True))


def test_partial_fill_records_owed_quantity_then_completes(world):
    p = world.product()
    world.receive(p.id, 20)
    rx = world.rx(world.patient().id, p.id, quantity=30, refills=1)
    first = dispensing.dispense(world.sf, world.pharmacist, req(rx, allow_partial=True))
    assert (first.quantity, first.owed_after, first.fill_number, first.part) == (20, 10, 0, 1)
    info = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id)
    assert (info.status, info.owed_quantity, info.refills_left) == (
        RxStatus.PARTIALLY_DISPENSED, 10, 1)
    world.receive(p.id, 100)
    preview = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id)
    assert (preview.quantity, preview.fill_number, preview.part) == (10, 0, 2)
    second = dispensing.dispense(world.sf, world.pharmacist, req(rx))
    assert (second.quantity, second.owed_after, second.fill_number, second.part) == (10, 0, 0, 2)
    info = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id)
    assert (info.status, info.owed_quantity, info.refills_left) == (RxStatus.DISPENSED, 0, 1)


def test_refills_count_down_and_run_out(world):
    p = world.product()
    world.receive(p.id, 500)
    rx = world.rx(world.patient().id, p.id, quantity=30, refills=2)
    start = clock.now()
    for month, expected_left in enumerate((2, 1, 0)):
        with clock.travel(start + dt.timedelta(days=30 * month)):  # each refill when due
            r = dispensing.dispense(world.sf, world.pharmacist, req(rx))
        assert r.fill_number == 2 - expected_left
        assert prescriptions.get_prescription(
            world.sf, world.pharmacist, rx.id).refills_left == expected_left
    with clock.travel(start + dt.timedelta(days=90)), nothing_written(world.sf), \
            pytest.raises(InvalidState, match="no refills left"):
        dispensing.dispense(world.sf, world.pharmacist, req(rx))


def test_held_cancelled_and_expired_prescriptions_are_not_filled(world):
    p = world.product()
    world.receive(p.id, 500, days=800)
    pat = world.patient()
    held = world.rx(pat.id, p.id)
    prescriptions.change_status(world.sf, world.pharmacist, held.id, RxAction.HOLD, reason="?")
    with pytest.raises(InvalidState, match="on hold"):
        dispensing.dispense(world.sf, world.pharmacist, req(held))
    cancelled = world.rx(pat.id, p.id)
    prescriptions.change_status(world.sf, world.pharmacist, cancelled.id, RxAction.CANCEL,
                                reason="Duplicate entry")
    with pytest.raises(InvalidState, match="cancelled"):
        dispensing.dispense(world.sf, world.pharmacist, req(cancelled))
    old = world.rx(pat.id, p.id, refills=3)
    with clock.travel(clock.now() + dt.timedelta(days=370)):
        with nothing_written(world.sf), pytest.raises(InvalidState, match="expired on"):
            dispensing.dispense(world.sf, world.pharmacist, req(old))


def test_controlled_refill_after_six_months_is_refused(world):
    p = world.product("Alprazolam", schedule=Schedule.IV)
    world.receive(p.id, 500, days=800)
    rx = world.rx(world.patient().id, p.id, refills=5)
    dispensing.dispense(world.sf, world.pharmacist, req(rx))
    with clock.travel(clock.now() + dt.timedelta(days=186)):
        with pytest.raises(InvalidState, match="Schedule III-V prescriptions cannot be filled"):
            dispensing.dispense(world.sf, world.pharmacist, req(rx))


def test_pharmacists_and_technicians_fill_and_an_administrator_only_with_a_practice_role(
        world):
    p = world.product()
    world.receive(p.id, 100)
    rx = world.rx(world.patient().id, p.id)
    for who in (world.clerk, world.doctor, world.admin):
        with pytest.raises(PermissionDenied):
            dispensing.dispense(world.sf, who, req(rx))
    # an administrator who is also a pharmacist fills and verifies as one
    staff.set_practice_role(world.sf, world.admin, world.admin.staff_id, "pharmacist")
    boss = staff.actor_for_username(world.sf, world.admin.username)
    assert boss.practice is Role.PHARMACIST
    d = dispensing.dispense(world.sf, boss, req(rx))
    assert d.quantity == 30
    fills.verify(world.sf, world.pharmacist, d.dispense_id)
    with pytest.raises(ValidationError, match="administrators"):
        staff.set_practice_role(world.sf, world.admin, world.pharmacist.staff_id, "clerk")
    with pytest.raises(ValidationError, match="pharmacist, a technician or a clerk"):
        staff.set_practice_role(world.sf, world.admin, world.admin.staff_id, "doctor")


def test_quantity_cannot_exceed_prescription(world):
    p = world.product()
    world.receive(p.id, 100)
    rx = world.rx(world.patient().id, p.id, quantity=30)
    with nothing_written(world.sf), pytest.raises(ValidationError, match="more cannot"):
        dispensing.dispense(world.sf, world.pharmacist, req(rx, quantity=31))


def test_same_request_id_twice_dispenses_once(world):
    p = world.product()
    world.receive(p.id, 100)
    rx = world.rx(world.patient().id, p.id, refills=3)
    r = req(rx)
    first = dispensing.dispense(world.sf, world.pharmacist, r)
    with nothing_written(world.sf):
        again = dispensing.dispense(world.sf, world.pharmacist, r)
    assert again.replayed and not first.replayed
    assert again.dispense_id == first.dispense_id and again.quantity == first.quantity
    assert inventory.on_hand(world.sf, p.id) == 70


def test_stale_prescription_version_is_refused(world):
    p = world.product()
    world.receive(p.id, 100)
    rx = world.rx(world.patient().id, p.id)
    prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.START)
    with nothing_written(world.sf), pytest.raises(StaleEdit):
        dispensing.dispense(world.sf, world.pharmacist, req(rx, expected_version=rx.version))


# ------------------------------------------------------------------ warnings


def test_allergy_warning_must_be_acknowledged_with_a_reason(world):
    p = world.product("Amoxicillin", classes=("Penicillin-class Antibacterial [EPC]",))
    world.receive(p.id, 100)
    pat = world.patient(allergies=("Penicillin",))
    rx = world.rx(pat.id, p.id)
    preview = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id)
    assert [w.kind for w in preview.warnings] == [WarningKind.ALLERGY]
    assert preview.allergies == ("Penicillin",)
    key = preview.warnings[0].key
    with nothing_written(world.sf):
        with pytest.raises(WarningsNeedAcknowledgement, match="allergy to Penicillin"):
            dispensing.dispense(world.sf, world.pharmacist, req(rx))
        with pytest.raises(WarningsNeedAcknowledgement):
            dispensing.dispense(world.sf, world.pharmacist, req(rx, acknowledgements={key: " "}))
        # an allergy of unknown severity is a stop: a one-word note is not a reason
        for thin in ("x", "ok ok ok", "prescriber_consulted"):
            with pytest.raises(ValidationError, match="note of at least 3 words"):
                dispensing.dispense(world.sf, world.pharmacist, req(
                    rx, acknowledgements={key: thin}))
    result = dispensing.dispense(world.sf, world.pharmacist, req(
        rx, acknowledgements={key: dispensing.Override(
            "prescriber_consulted", "Prescriber confirmed: rash only, tolerated before")}))
    assert result.acknowledged == (key,)
    with db.read_session(world.sf) as s:
        ack = s.scalar(sa.select(DispenseWarning).where(
            DispenseWarning.dispense_id == result.dispense_id))
        assert ack.reason.startswith("Prescriber confirmed")
        assert ack.reason_code is OverrideReason.PRESCRIBER_CONSULTED
        assert ack.severity is Severity.SEVERE  # unknown severity is screened as severe
        assert ack.acknowledged_by == world.pharmacist.staff_id
        assert ack.kind is WarningKind.ALLERGY
        assert "allergy" in s.scalar(sa.select(Dispense.screening_data).where(
            Dispense.id == result.dispense_id))


def test_duplicate_therapy_warning(world):
    a = world.product("Lisinopril", strength="10 mg")
    b = world.product("Lisinopril", strength="20 mg")
    combo = world.product("Lisinopril and Hydrochlorothiazide",
                          ingredients=("Lisinopril", "Hydrochlorothiazide"))
    for p in (a, b, combo):
        world.receive(p.id, 100)
    pat = world.patient()
    rx_a = world.rx(pat.id, a.id)
    rx_combo = world.rx(pat.id, combo.id)
    world.rx(world.patient().id, b.id)  # another patient: no warning
    preview = dispensing.preview_dispense(world.sf, world.pharmacist, rx_a.id)
    assert [w.kind for w in preview.warnings] == [WarningKind.DUPLICATE_THERAPY]
    assert f"Rx {rx_combo.rx_number}" in preview.warnings[0].message
    # a cancelled prescription is not active therapy
    prescriptions.change_status(world.sf, world.pharmacist, rx_combo.id, RxAction.CANCEL,
                                reason="Switched")
    assert dispensing.preview_dispense(world.sf, world.pharmacist, rx_a.id).warnings == ()


def test_early_refill_of_controlled_product(world):
    p = world.product("Alprazolam", schedule=Schedule.IV, strength="0.5 mg")
    world.receive(p.id, 500)
    rx = world.rx(world.patient().id, p.id, refills=3, days_supply=30)
    dispensing.dispense(world.sf, world.pharmacist, req(rx))
    # controlled products: due after 90% of the supply (the stricter setting)
    with clock.travel(clock.now() + dt.timedelta(days=25)):  # 83% < 90%
        preview = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id)
        assert [w.kind for w in preview.warnings] == [WarningKind.EARLY_REFILL]
        with pytest.raises(WarningsNeedAcknowledgement, match="Early refill"):
            dispensing.dispense(world.sf, world.pharmacist, req(rx))
    with clock.travel(clock.now() + dt.timedelta(days=28)):  # 93%: due
        assert dispensing.preview_dispense(world.sf, world.pharmacist, rx.id).warnings == ()
        dispensing.dispense(world.sf, world.pharmacist, req(rx))


def test_early_refill_is_checked_for_every_product(world):
    p = world.product()
    world.receive(p.id, 500)
    rx = world.rx(world.patient().id, p.id, refills=3)
    dispensing.dispense(world.sf, world.pharmacist, req(rx))
    with clock.travel(clock.now() + dt.timedelta(days=20)):  # 67% < 75%
        preview = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id)
        assert [w.kind for w in preview.warnings] == [WarningKind.EARLY_REFILL]
    with clock.travel(clock.now() + dt.timedelta(days=23)):  # 77%: due
        assert dispensing.preview_dispense(world.sf, world.pharmacist, rx.id).warnings == ()


# -------------------------------------------------- what a dispense writes


def test_controlled_dispense_writes_ledger_register_and_audit(world):
    p = world.product("Oxycodone", schedule=Schedule.II, strength="5 mg", dosage_form="tablet")
    world.receive(p.id, 10, lot="C1", days=30)
    world.receive(p.id, 40, lot="C2", days=60)
    rx = world.rx(world.patient().id, p.id, quantity=20)
    result = dispensing.dispense(world.sf, world.pharmacist, req(rx))
    with db.read_session(world.sf) as s:
        moves = s.scalars(sa.select(StockMovement).where(
            StockMovement.dispense_id == result.dispense_id)).all()
        assert sorted(m.quantity for m in moves) == [-10, -10]
        reg = s.scalars(sa.select(ControlledRegisterEntry).where(
            ControlledRegisterEntry.product_id == p.id).order_by(ControlledRegisterEntry.id)).all()
        assert [(r.kind.value, r.quantity, r.balance_after, r.register) for r in reg] == [
            ("receipt", 10, 10, "II"), ("receipt", 40, 50, "II"),
            ("dispense", -10, 40, "II"), ("dispense", -10, 30, "II")]
        audited = s.execute(sa.select(AuditEntry.table_name, AuditEntry.action).where(
            AuditEntry.row_id == str(result.dispense_id))).all()
        assert audited == [("dispenses", "INSERT")]
        rx_audit = s.scalars(sa.select(AuditEntry).where(
            AuditEntry.table_name == "prescriptions", AuditEntry.row_id == str(rx.id),
            AuditEntry.action == "UPDATE")).all()
        assert rx_audit[-1].after["status"] == "dispensed"
        assert rx_audit[-1].actor == world.pharmacist.username
    assert ledger.verify(world.sf).ok


def test_a_fill_made_offline_is_recorded_as_of_when_it_was_handed_out(world):
    """A fill made on the offline copy and sent when the link is back (sync.outbox)
    is decided and recorded at the time the patient was handed the medicine: the
    record's time, the prescription's and lots' validity. A time in the future
    or weeks old is refused with what to do."""
    p = world.product("Handedoutol")
    world.receive(p.id, 50)
    rx = world.rx(world.patient().id, p.id, quantity=10)
    then = clock.now() - dt.timedelta(hours=3)
    for wrong, said in ((clock.now() + dt.timedelta(hours=1), "in the future"),
                        (clock.now() - dt.timedelta(days=30), "too old"),
                        (then.replace(tzinfo=None), "time zone")):
        with nothing_written(world.sf), pytest.raises(ValidationError, match=said):
            dispensing.dispense(world.sf, world.pharmacist, req(rx, handed_out_at=wrong))
    done = dispensing.dispense(world.sf, world.pharmacist, req(rx, handed_out_at=then))
    assert abs(done.dispensed_at - then) < dt.timedelta(seconds=1)
    with db.read_session(world.sf) as s:
        recorded = s.scalar(sa.select(Dispense.dispensed_at).where(
            Dispense.id == done.dispense_id))
        moved = s.scalar(sa.select(StockMovement.created_at).where(
            StockMovement.dispense_id == done.dispense_id))
    assert abs(recorded.replace(tzinfo=dt.UTC) - then) < dt.timedelta(seconds=1)
    assert abs(moved.replace(tzinfo=dt.UTC) - then) < dt.timedelta(seconds=1)
