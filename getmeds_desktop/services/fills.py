"""A fill's way from the shelf to the patient: filled -> verified -> released,
or back to stock.

* **Filled** (services.dispensing): packages scanned, lots taken, label
  printed. Stock leaves the shelf here. A technician may fill.
* **Verified**: a pharmacist's final check of what was filled: the scan, the
  lots, the label, the warnings and the reasons they were overridden. A
  pharmacist does not verify their own fill unless the pharmacy's setting
  allows it (one pharmacist on duty); both steps are recorded either way. A
  refusal sends the fill back: its stock returns to its lots.
* **Released** to the patient: who and when, the offer to counsel (OBRA '90,
  42 USC 1396r-8(g)(2)(A)(ii): the offer must be made; the patient may
  decline), and for a controlled substance the ID seen (a setting).
* **Returned to stock**: a verified fill not picked up (listed after the
  setting's days, default 14) or declined at the counter. Restock movements put
  back exactly what the fill took, to the same lots; the controlled register
  shows them. The fill no longer counts: its refill (or its part) may be filled
  again. Only the latest fill of a prescription goes back. Nothing is deleted.

On PostgreSQL the database holds staff logins to the same steps
(migration 0015: getmeds_guard_dispense_steps, getmeds_check_restock).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased, sessionmaker

from .. import db
from ..enums import Counseling, FillStatus, LotStatus, ReturnReason, Role
from ..models import (
    AppSettings,
    Dispense,
    DispenseWarning,
    LabelPrint,
    MovementKind,
    Patient,
    Prescriber,
    Prescription,
    Product,
    RxStatus,
    Schedule,
    Staff,
    StockLot,
    StockMovement,
)
from . import clock, ledger, rxstate, uow
from ._common import Query, text
from .context import Actor, Perm
from .errors import InvalidState, NotFound, PermissionDenied, ValidationError

__all__ = ["FillDetail", "FillRow", "StepResult", "StoredOverride", "fill_counts",
           "fill_detail", "fill_queue", "latest_fill", "refuse", "release", "return_to_stock",
           "verify"]


@dataclasses.dataclass(frozen=True)
class FillRow:
    """One fill in the queue."""

    dispense_id: uuid.UUID
    rx_number: int
    patient: str
    product: str
    quantity: int
    unit: str
    fill_number: int
    part: int
    status: FillStatus
    filled_by: str
    filled_at: dt.datetime
    verified_by: str | None
    verified_at: dt.datetime | None
    schedule: Schedule
    overdue: bool  # verified and waiting longer than the setting's days
    labels_printed: int = 0

    @property
    def fill_label(self) -> str:
        return rxstate.fill_label(self.fill_number, self.part)


@dataclasses.dataclass(frozen=True)
class StoredOverride:
    kind: str
    severity: str
    detail: str
    reason_code: str | None
    reason: str
    by: str


@dataclasses.dataclass(frozen=True)
class TakenLot:
    lot_number: str
    expiry_date: dt.date
    quantity: int


@dataclasses.dataclass(frozen=True)
class FillDetail:
    """Everything the verifying pharmacist checks."""

    row: FillRow
    prescription_id: uuid.UUID
    patient_id: uuid.UUID
    born: dt.date | None
    prescriber: str
    sig: str
    days_supply: int
    ndc: str | None
    scan_text: str | None
    scan_lot: str | None
    scan_expiry: dt.date | None
    no_scan_reason: str | None
    lots: tuple[TakenLot, ...]
    overrides: tuple[StoredOverride, ...]
    labels_printed: int
    released_by: str | None
    released_at: dt.datetime | None
    counseling: Counseling | None
    id_checked: str | None
    returned_by: str | None
    returned_at: dt.datetime | None
    return_reason: ReturnReason | None
    return_note: str | None
    self_verify_allowed: bool
    id_check_controlled: bool
    filled_by_id: uuid.UUID
    # what was prescribed, to check the fill against
    prescribed_product: str = ""
    substituted: bool = False  # another package of the same drug was dispensed
    prescribed_quantity: int = 0
    owed_after: int = 0
    daw_code: int = 0
    partial_reason: str | None = None

    @property
    def controlled(self) -> bool:
        return self.row.schedule.controlled


@dataclasses.dataclass(frozen=True)
class StepResult:
    dispense_id: uuid.UUID
    rx_number: int
    status: FillStatus
    by: str
    at: dt.datetime
    replayed: bool = False


_filler = aliased(Staff)
_verifier = aliased(Staff)


def _rows_query() -> Query:
    return (
        sa.select(Dispense.id, Prescription.rx_number,
                  (Patient.last_name + ", " + Patient.first_name).label("patient"),
                  Product.name, Product.strength, Product.unit, Dispense.quantity,
                  Dispense.fill_number, Dispense.part, Dispense.status,
                  _filler.full_name, Dispense.dispensed_at, _verifier.full_name,
                  Dispense.verified_at, Product.schedule,
                  sa.select(sa.func.count()).where(LabelPrint.dispense_id == Dispense.id)
                  .correlate(Dispense).scalar_subquery())
        .join(Prescription, Prescription.id == Dispense.prescription_id)
        .join(Patient, Patient.id == Prescription.patient_id)
        .join(Product, Product.id == sa.func.coalesce(Dispense.dispensed_product_id,
                                                      Prescription.product_id))
        .join(_filler, _filler.id == Dispense.pharmacist_id)
        .outerjoin(_verifier, _verifier.id == Dispense.verified_by))


def _row(r: Any, cutoff: dt.datetime) -> FillRow:
    (did, rx_number, patient, name, strength, unit, qty, fill, part, status, filled_by,
     filled_at, verified_by, verified_at, schedule, labels) = r
    status = FillStatus(status)
    return FillRow(
        dispense_id=did, rx_number=rx_number, patient=patient,
        product=" ".join(x for x in (name, strength) if x), quantity=qty, unit=unit,
        fill_number=fill, part=part, status=status, filled_by=filled_by, filled_at=filled_at,
        verified_by=verified_by, verified_at=verified_at, schedule=Schedule(schedule),
        overdue=status is FillStatus.VERIFIED and verified_at is not None
        and verified_at < cutoff, labels_printed=int(labels or 0))


def _may_see_queue(actor: Actor) -> None:
    if not (actor.can(Perm.DISPENSE) or actor.can(Perm.VERIFY) or actor.can(Perm.RELEASE)):
        raise PermissionDenied(f"Your role ({actor.role.label}) does not work with fills.")


def fill_queue(sf: sessionmaker[Session], actor: Actor, status: FillStatus, *,
               limit: int = 500) -> tuple[FillRow, ...]:
    """The fills in ``status`` (filled: to verify; verified: ready for pickup),
    oldest first; ready-for-pickup fills waiting longer than the setting's days
    are marked overdue (to go back to stock)."""
    _may_see_queue(actor)
    with db.read_session(sf) as s:
        days = s.scalar(sa.select(AppSettings.return_after_days).where(AppSettings.id == 1))
        cutoff = clock.now() - dt.timedelta(days=days or 14)
        rows = s.execute(_rows_query().where(Dispense.status == status)
                         .order_by(Dispense.dispensed_at, Dispense.id).limit(limit)).all()
        return tuple(_row(r, cutoff) for r in rows)


def fill_counts(sf: sessionmaker[Session], actor: Actor) -> dict[FillStatus, int]:
    """How many fills wait for verification and for pickup (the dashboard)."""
    _may_see_queue(actor)
    with db.read_session(sf) as s:
        rows = s.execute(sa.select(Dispense.status, sa.func.count()).where(
            Dispense.status.in_([FillStatus.FILLED, FillStatus.VERIFIED]))
            .group_by(Dispense.status)).all()
        return {FillStatus(k): int(n) for k, n in rows}


def latest_fill(sf: sessionmaker[Session], actor: Actor, prescription_id: uuid.UUID
                ) -> uuid.UUID | None:
    """The prescription's latest fill that is not returned (None: none)."""
    _may_see_queue(actor)
    with db.read_session(sf) as s:
        return s.scalar(sa.select(Dispense.id).where(
            Dispense.prescription_id == prescription_id,
            Dispense.status != FillStatus.RETURNED)
            .order_by(Dispense.fill_number.desc(), Dispense.part.desc()).limit(1))


def fill_detail(sf: sessionmaker[Session], actor: Actor, dispense_id: uuid.UUID) -> FillDetail:
    _may_see_queue(actor)
    with db.read_session(sf) as s:
        return _detail(s, dispense_id)


def _detail(s: Session, dispense_id: uuid.UUID) -> FillDetail:
    settings = s.get(AppSettings, 1)
    days = settings.return_after_days if settings else 14
    r = s.execute(_rows_query().where(Dispense.id == dispense_id)).first()
    if r is None:
        raise NotFound("That fill does not exist.", field="dispense")
    d = s.get(Dispense, dispense_id)
    assert d is not None
    rx = s.get(Prescription, d.prescription_id)
    assert rx is not None
    patient = s.get(Patient, rx.patient_id)
    prescriber = s.get(Prescriber, rx.prescriber_id)
    product = s.get(Product, d.dispensed_product_id or rx.product_id)
    prescribed = s.get(Product, rx.product_id)
    lots = s.execute(
        sa.select(StockLot.lot_number, StockLot.expiry_date, -StockMovement.quantity)
        .join(StockLot, StockLot.id == StockMovement.lot_id)
        .where(StockMovement.dispense_id == dispense_id,
               StockMovement.kind == MovementKind.DISPENSE)
        .order_by(StockLot.expiry_date, StockLot.lot_number)).all()
    overrides = s.execute(
        sa.select(DispenseWarning.kind, DispenseWarning.severity, DispenseWarning.detail,
                  DispenseWarning.reason_code, DispenseWarning.reason, Staff.full_name)
        .join(Staff, Staff.id == DispenseWarning.acknowledged_by)
        .where(DispenseWarning.dispense_id == dispense_id)
        .order_by(DispenseWarning.kind, DispenseWarning.key)).all()
    labels = s.scalar(sa.select(sa.func.count()).select_from(LabelPrint).where(
        LabelPrint.dispense_id == dispense_id)) or 0

    def name(staff_id: uuid.UUID | None) -> str | None:
        if staff_id is None:
            return None
        st = s.get(Staff, staff_id)
        return st.full_name if st else None

    return FillDetail(
        row=_row(r, clock.now() - dt.timedelta(days=days)), prescription_id=rx.id,
        patient_id=rx.patient_id, born=patient.date_of_birth if patient else None,
        prescriber=prescriber.display_name if prescriber else "", sig=rx.sig,
        days_supply=d.days_supply, ndc=product.ndc if product else None,
        scan_text=d.scan_text, scan_lot=d.scan_lot, scan_expiry=d.scan_expiry,
        no_scan_reason=d.no_scan_reason,
        lots=tuple(TakenLot(*x) for x in lots),
        overrides=tuple(StoredOverride(str(getattr(k, "value", k)), str(getattr(sv, "value", sv)),
                                       det, str(getattr(rc, "value", rc)) if rc else None,
                                       why, by) for k, sv, det, rc, why, by in overrides),
        labels_printed=int(labels), released_by=name(d.released_by), released_at=d.released_at,
        counseling=Counseling(d.counseling) if d.counseling else None, id_checked=d.id_checked,
        returned_by=name(d.returned_by), returned_at=d.returned_at,
        return_reason=ReturnReason(d.return_reason) if d.return_reason else None,
        return_note=d.return_note,
        self_verify_allowed=bool(settings and settings.self_verify),
        id_check_controlled=bool(settings is None or settings.id_check_controlled),
        filled_by_id=d.pharmacist_id,
        prescribed_product=" ".join(x for x in (prescribed.name, prescribed.strength,
                                                prescribed.dosage_form) if x)
        if prescribed else "",
        substituted=d.dispensed_product_id not in (None, rx.product_id),
        prescribed_quantity=rx.quantity, owed_after=d.owed_after,
        daw_code=int(getattr(rx, "daw_code", 0) or 0), partial_reason=d.partial_reason)


# ------------------------------------------------------------------ steps


def _locked(w: uow.Work, dispense_id: uuid.UUID, *, lock_rx: bool = True
            ) -> tuple[Dispense, Prescription, Product]:
    """The fill, locked (one step at a time), with its prescription (locked
    too when the step changes it)."""
    s = w.session
    d = s.execute(sa.select(Dispense).where(Dispense.id == dispense_id)
                  .with_for_update()).scalar_one_or_none()
    if d is None:
        raise NotFound("That fill does not exist.", field="dispense")
    q = sa.select(Prescription).where(Prescription.id == d.prescription_id)
    rx = s.execute(q.with_for_update() if lock_rx else q).scalar_one()
    product = s.get(Product, d.dispensed_product_id or rx.product_id)
    assert product is not None
    return d, rx, product


def _who(s: Session, staff_id: uuid.UUID | None) -> str:
    st = s.get(Staff, staff_id) if staff_id else None
    return st.full_name if st else "someone"


def _not_in(d: Dispense, rx: Prescription, want: FillStatus, s: Session) -> InvalidState:
    status = FillStatus(d.status)
    fill = f"Rx {rx.rx_number}'s fill"
    if status is FillStatus.VERIFIED:
        what = f"was already verified by {_who(s, d.verified_by)}"
    elif status is FillStatus.RELEASED:
        what = f"was already released to the patient by {_who(s, d.released_by)}"
    elif status is FillStatus.RETURNED:
        what = f"was returned to stock by {_who(s, d.returned_by)}"
    else:
        what = "has not been verified by a pharmacist yet"
    need = {FillStatus.FILLED: "Only a fill waiting for verification can be verified or "
                               "refused.",
            FillStatus.VERIFIED: "Only a verified fill can be handed out or returned to "
                                 "stock."}
    return InvalidState(f"{fill} {what}. {need.get(want, '')}".strip(), field="status")


def _settings(s: Session) -> AppSettings:
    st = s.get(AppSettings, 1)
    assert st is not None
    return st


def _result(d: Dispense, rx: Prescription, by: str, at: dt.datetime,
            replayed: bool = False) -> StepResult:
    return StepResult(d.id, rx.rx_number, FillStatus(d.status), by, at, replayed)


def verify(sf: sessionmaker[Session], actor: Actor, dispense_id: uuid.UUID) -> StepResult:
    """The pharmacist's final check passed: the fill waits for the patient."""
    def body(w: uow.Work) -> StepResult:
        d, rx, _product = _locked(w, dispense_id, lock_rx=False)
        if d.status == FillStatus.VERIFIED and d.verified_by == w.staff_id:
            assert d.verified_at is not None
            return _result(d, rx, w.actor.username, d.verified_at, True)  # a retry
        if d.status != FillStatus.FILLED:
            raise _not_in(d, rx, FillStatus.FILLED, w.session)
        _may_verify(w, d)
        now = clock.now()
        d.status = FillStatus.VERIFIED
        d.verified_by = w.staff_id
        d.verified_at = now
        w.touched("dispenses", d.id)
        w.touched("prescriptions", rx.id)
        return _result(d, rx, w.actor.username, now)

    return uow.write(sf, actor, Perm.VERIFY, body)


def _may_verify(w: uow.Work, d: Dispense) -> None:
    if w.actor.practice is not Role.PHARMACIST:
        raise PermissionDenied("Only a pharmacist verifies a fill.")
    if d.pharmacist_id == w.staff_id and not _settings(w.session).self_verify:
        raise PermissionDenied(
            "You filled this prescription: another pharmacist verifies it. (A pharmacy "
            "with one pharmacist on duty can allow this in Settings; both steps are "
            "still recorded.)")


def refuse(sf: sessionmaker[Session], actor: Actor, dispense_id: uuid.UUID,
           note: str | None) -> StepResult:
    """Verification refused: the fill goes back, its stock to its lots, and the
    prescription may be filled again."""
    why = text(note, "note", "What was wrong", max_len=300)
    assert why is not None
    if len(why.split()) < 2:
        raise ValidationError("Say what was wrong with the fill (for example \"wrong "
                              "strength picked\"), so it is filled right the second time.",
                              field="note")

    def body(w: uow.Work) -> StepResult:
        d, rx, product = _locked(w, dispense_id)
        if d.status == FillStatus.RETURNED and d.returned_by == w.staff_id \
                and d.return_reason == ReturnReason.VERIFICATION_REFUSED:
            assert d.returned_at is not None
            return _result(d, rx, w.actor.username, d.returned_at, True)
        if d.status != FillStatus.FILLED:
            raise _not_in(d, rx, FillStatus.FILLED, w.session)
        if w.actor.practice is not Role.PHARMACIST:
            raise PermissionDenied("Only a pharmacist verifies a fill.")
        return _send_back(w, d, rx, product, ReturnReason.VERIFICATION_REFUSED, why)

    return uow.write(sf, actor, Perm.VERIFY, body)


def release(sf: sessionmaker[Session], actor: Actor, dispense_id: uuid.UUID, *,
            counseling: Counseling | str | None, id_checked: str | None = None) -> StepResult:
    """Handed to the patient."""
    if counseling is None or (isinstance(counseling, str) and not counseling.strip()):
        raise ValidationError("Record the offer to counsel: offered, accepted or declined.",
                              field="counseling")
    try:
        offer = Counseling(counseling)
    except ValueError:
        raise ValidationError(f"{counseling!r} is not a counselling answer (offered, accepted "
                              "or declined).", field="counseling") from None
    seen = text(id_checked, "id_checked", "The ID seen", required=False, max_len=100)

    def body(w: uow.Work) -> StepResult:
        d, rx, product = _locked(w, dispense_id, lock_rx=False)
        if d.status == FillStatus.RELEASED and d.released_by == w.staff_id:
            assert d.released_at is not None
            return _result(d, rx, w.actor.username, d.released_at, True)
        if d.status != FillStatus.VERIFIED:
            raise _not_in(d, rx, FillStatus.VERIFIED, w.session)
        if RxStatus(rx.status) in (RxStatus.CANCELLED, RxStatus.ON_HOLD):
            raise InvalidState(f"Rx {rx.rx_number} is {RxStatus(rx.status).label.lower()}: do "
                               "not hand this fill out. Return it to stock, or ask the "
                               "pharmacist.", field="status")
        held = w.session.scalars(
            sa.select(StockLot.lot_number)
            .join(StockMovement, StockMovement.lot_id == StockLot.id)
            .where(StockMovement.dispense_id == d.id,
                   StockMovement.kind == MovementKind.DISPENSE,
                   StockLot.status != LotStatus.AVAILABLE)).all()
        if held:
            raise InvalidState(f"Lot {', '.join(held)} of this fill is quarantined or "
                               "recalled: do not hand it out. Return it to stock and fill "
                               "the prescription again.", field="status")
        if Schedule(product.schedule).controlled and _settings(w.session).id_check_controlled \
                and not seen:
            raise ValidationError(
                f"{product.name} is a Schedule {Schedule(product.schedule).value} controlled "
                "substance: check the ID of the person picking it up and record it (type and "
                "last 4 digits).", field="id_checked")
        now = clock.now()
        d.status = FillStatus.RELEASED
        d.released_by = w.staff_id
        d.released_at = now
        d.counseling = offer
        d.id_checked = seen
        w.touched("dispenses", d.id)
        w.touched("prescriptions", rx.id)
        return _result(d, rx, w.actor.username, now)

    return uow.write(sf, actor, Perm.RELEASE, body)


def return_to_stock(sf: sessionmaker[Session], actor: Actor, dispense_id: uuid.UUID,
                    reason: ReturnReason | str, note: str | None = None) -> StepResult:
    """A verified fill that did not reach the patient goes back to its lots."""
    try:
        code = ReturnReason(reason)
    except ValueError:
        raise ValidationError(f"{reason!r} is not a reason to return a fill.",
                              field="reason") from None
    if code is ReturnReason.VERIFICATION_REFUSED:
        raise ValidationError("A fill refused at verification is sent back from the "
                              "verification screen.", field="reason")
    why = text(note, "note", "The note", required=code is ReturnReason.OTHER, max_len=300)

    def body(w: uow.Work) -> StepResult:
        d, rx, product = _locked(w, dispense_id)
        if d.status == FillStatus.RETURNED and d.returned_by == w.staff_id \
                and d.return_reason == code:
            assert d.returned_at is not None
            return _result(d, rx, w.actor.username, d.returned_at, True)
        if d.status != FillStatus.VERIFIED:
            raise _not_in(d, rx, FillStatus.VERIFIED, w.session)
        if Schedule(product.schedule).controlled and w.actor.practice is not Role.PHARMACIST:
            raise PermissionDenied(f"{product.name} is a controlled substance: a pharmacist "
                                   "returns it to stock.")
        return _send_back(w, d, rx, product, code, why)

    return uow.write(sf, actor, Perm.RETURN_TO_STOCK, body)


def _send_back(w: uow.Work, d: Dispense, rx: Prescription, product: Product,
               code: ReturnReason, note: str | None) -> StepResult:
    s = w.session
    later = s.scalar(sa.select(sa.func.count()).select_from(Dispense).where(
        Dispense.prescription_id == rx.id, Dispense.id != d.id,
        Dispense.status != FillStatus.RETURNED,
        sa.tuple_(Dispense.fill_number, Dispense.part) > sa.tuple_(d.fill_number, d.part)))
    if later:
        raise InvalidState(f"Rx {rx.rx_number} has a later fill that is not returned: return "
                           "that one first (one still waiting for verification is sent back "
                           "by a pharmacist's Refuse).", field="status")
    now = clock.now()
    d.status = FillStatus.RETURNED
    d.returned_by = w.staff_id
    d.returned_at = now
    d.return_reason = code
    d.return_note = note
    s.flush()  # the fill is returned before its stock goes back (the database checks it)
    taken = s.execute(
        sa.select(StockMovement.lot_id, StockLot.lot_number, StockLot.on_hand,
                  sa.func.sum(-StockMovement.quantity))
        .join(StockLot, StockLot.id == StockMovement.lot_id)
        .where(StockMovement.dispense_id == d.id, StockMovement.kind == MovementKind.DISPENSE)
        .group_by(StockMovement.lot_id, StockLot.lot_number, StockLot.on_hand)).all()
    label = f"Rx {rx.rx_number}: {code.label.lower()}" + (f" ({note})" if note else "")
    ledger.post(w, [
        ledger.Movement(ledger.Lot(lot_id, product.id, number, on_hand), MovementKind.RESTOCK,
                        int(qty), reason=label[:300], reference=f"Rx {rx.rx_number}",
                        dispense_id=d.id)
        for lot_id, number, on_hand, qty in taken], at=now)
    # the prescription is as it was before this fill
    if d.part > 1:
        rx.owed_quantity = d.owed_after + d.quantity
        rx.status = RxStatus.PARTIALLY_DISPENSED
    else:
        others = s.scalar(sa.select(sa.func.count()).select_from(Dispense).where(
            Dispense.prescription_id == rx.id, Dispense.status != FillStatus.RETURNED))
        rx.owed_quantity = 0
        if rx.status not in (RxStatus.CANCELLED, RxStatus.ON_HOLD):
            rx.status = RxStatus.DISPENSED if others else RxStatus.NEW
    rx.updated_by = w.actor.username
    rx.updated_at = now
    w.touched("dispenses", d.id)
    w.touched("prescriptions", rx.id)
    w.touched("patients", rx.patient_id)
    return _result(d, rx, w.actor.username, now)

