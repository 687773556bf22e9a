"""Recalls traced to patients: everyone who received a lot, and the worklist of
telling them.

Who received a lot comes from the stock ledger: the dispense movements of that
lot, which record the lot actually taken (the scanned package's lot when the
scan named one, since the fill takes it first). A fill that went back to stock
before it reached the patient is listed apart (its package was put back on the
shelf, and is in the lot's stock again); a fill still waiting for verification
or pickup is marked so it is pulled before it is handed out. Each notice is
kept for good (migration 0017): who told the patient, when, how and what came
of it.

A recall communication asks, where appropriate, that the pharmacy in turn
notify its customers who received the product (21 CFR 7.49(a)(3)); telephone
calls and personal contacts are documented (7.49(b)): the worklist is that
record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..enums import FillStatus, LotStatus
from ..models import (
    Dispense,
    MovementKind,
    Patient,
    Prescription,
    Product,
    RecallNotice,
    Staff,
    StockLot,
    StockMovement,
)
from . import clock, rxstate, uow
from ._common import text
from .context import Actor, Perm, require
from .errors import InvalidState, NotFound, ValidationError

__all__ = [
    "METHODS",
    "RecallList",
    "RecallNoticeInfo",
    "RecallRecipient",
    "recipients",
    "record_notice",
]

METHODS = {"phone": "Phone", "letter": "Letter", "in_person": "In person", "email": "Email",
           "other": "Other"}


@dataclasses.dataclass(frozen=True)
class RecallNoticeInfo:
    method: str
    outcome: str
    by: str
    at: dt.datetime


@dataclasses.dataclass(frozen=True)
class RecallRecipient:
    dispense_id: uuid.UUID
    patient_id: uuid.UUID
    patient: str
    born: dt.date
    phone: str | None
    email: str | None
    address: str
    rx_number: int
    dispensed_at: dt.datetime
    quantity: int
    fill_status: FillStatus
    notices: tuple[RecallNoticeInfo, ...]
    fill_number: int = 0
    part: int = 1
    patient_told: bool = False  # told about this lot, for this fill or another of theirs

    @property
    def returned(self) -> bool:
        """The package went back to stock: it never reached the patient."""
        return self.fill_status is FillStatus.RETURNED

    @property
    def not_handed_out(self) -> bool:
        """Still in the pharmacy: pull it before it is handed out."""
        return self.fill_status in (FillStatus.FILLED, FillStatus.VERIFIED)

    @property
    def notified(self) -> bool:
        return bool(self.notices)

    @property
    def to_contact(self) -> bool:
        return self.fill_status is FillStatus.RELEASED and not self.patient_told

    @property
    def fill_label(self) -> str:
        return rxstate.fill_label(self.fill_number, self.part)


@dataclasses.dataclass(frozen=True)
class RecallList:
    lot_id: uuid.UUID
    product: str
    lot_number: str
    expiry_date: dt.date
    status: LotStatus
    reason: str | None
    rows: tuple[RecallRecipient, ...]

    @property
    def patients(self) -> int:
        """Patients who received the lot (a patient with two fills counts once)."""
        return len({r.patient_id for r in self.rows if r.fill_status is FillStatus.RELEASED})

    @property
    def outstanding(self) -> int:
        """Patients who received it and were not told yet."""
        return len({r.patient_id for r in self.rows if r.to_contact})


def recipients(sf: sessionmaker[Session], actor: Actor, lot_id: uuid.UUID) -> RecallList:
    """Every fill that took stock from the lot, newest first, with the patient's
    contact details and the notices recorded so far."""
    require(actor, Perm.READ_DISPENSES)
    require(actor, Perm.READ_PATIENTS)
    with db.read_session(sf) as s:
        return _recipients(s, lot_id)


def _recipients(s: Session, lot_id: uuid.UUID) -> RecallList:
    lot = s.get(StockLot, lot_id)
    if lot is None:
        raise NotFound("That lot does not exist.", field="lot")
    product = s.get(Product, lot.product_id)
    assert product is not None
    took = (sa.select(StockMovement.dispense_id, sa.func.sum(-StockMovement.quantity)
                      .label("quantity"))
            .where(StockMovement.lot_id == lot_id, StockMovement.kind == MovementKind.DISPENSE)
            .group_by(StockMovement.dispense_id).subquery())
    rows = s.execute(
        sa.select(Dispense.id, Patient.id, Patient.last_name, Patient.first_name,
                  Patient.date_of_birth, Patient.phone, Patient.email, Patient.address_line,
                  Patient.city, Patient.state, Patient.postal_code, Prescription.rx_number,
                  Dispense.dispensed_at, took.c.quantity, Dispense.status,
                  Dispense.fill_number, Dispense.part)
        .select_from(took)
        .join(Dispense, Dispense.id == took.c.dispense_id)
        .join(Prescription, Prescription.id == Dispense.prescription_id)
        .join(Patient, Patient.id == Prescription.patient_id)
        .order_by(Dispense.dispensed_at.desc(), Dispense.id)).all()
    notices: dict[uuid.UUID, list[RecallNoticeInfo]] = {}
    for did, method, outcome, by, at in s.execute(
            sa.select(RecallNotice.dispense_id, RecallNotice.method, RecallNotice.outcome,
                      Staff.full_name, RecallNotice.notified_at)
            .join(Staff, Staff.id == RecallNotice.notified_by)
            .where(RecallNotice.lot_id == lot_id)
            .order_by(RecallNotice.notified_at)):
        notices.setdefault(did, []).append(RecallNoticeInfo(method, outcome, by, at))
    told = {r[1] for r in rows if r[0] in notices}
    out = []
    for (did, pid, last, first, born, phone, email, line, city, state, postal, rx_number, at,
         qty, status, fill_number, part) in rows:
        place = " ".join(x for x in (state, postal) if x)
        address = ", ".join(x for x in (line, city, place) if x)
        out.append(RecallRecipient(
            dispense_id=did, patient_id=pid, patient=f"{last}, {first}", born=born,
            phone=phone, email=email, address=address, rx_number=rx_number,
            dispensed_at=at, quantity=int(qty), fill_status=FillStatus(status),
            notices=tuple(notices.get(did, ())), fill_number=fill_number, part=part,
            patient_told=pid in told))
    return RecallList(lot_id=lot.id,
                      product=" ".join(x for x in (product.name, product.strength,
                                                   product.dosage_form) if x),
                      lot_number=lot.lot_number, expiry_date=lot.expiry_date,
                      status=LotStatus(lot.status), reason=lot.status_reason, rows=tuple(out))


def record_notice(sf: sessionmaker[Session], actor: Actor, lot_id: uuid.UUID,
                  dispense_id: uuid.UUID, method: str, outcome: str | None
                  ) -> RecallNoticeInfo:
    """Record that the patient of ``dispense_id`` was told about the recalled lot."""
    if method not in METHODS:
        raise ValidationError("Say how the patient was told: " + ", ".join(
            v.lower() for v in METHODS.values()) + ".", field="method")
    said = text(outcome, "outcome", "What was said or agreed", max_len=300)
    assert said is not None

    def body(w: uow.Work) -> RecallNoticeInfo:
        s = w.session
        lot = s.get(StockLot, lot_id)
        if lot is None:
            raise NotFound("That lot does not exist.", field="lot")
        if LotStatus(lot.status) is not LotStatus.RECALLED:
            raise InvalidState(f"Lot {lot.lot_number} is not recalled: recall it first "
                               "(Inventory, Quarantine or recall).", field="lot")
        took = s.scalar(sa.select(sa.func.count()).select_from(StockMovement).where(
            StockMovement.lot_id == lot_id, StockMovement.dispense_id == dispense_id,
            StockMovement.kind == MovementKind.DISPENSE))
        if not took:
            raise ValidationError(f"That fill took nothing from lot {lot.lot_number}.",
                                  field="dispense")
        row = RecallNotice(id=uuid.uuid4(), lot_id=lot_id, dispense_id=dispense_id,
                           method=method, outcome=said, notified_by=w.staff_id,
                           notified_at=clock.now())
        s.add(row)
        s.flush()
        w.touched("stock_lots", lot_id)
        return RecallNoticeInfo(method, said, w.actor.full_name, row.notified_at)

    return uow.write(sf, actor, Perm.WRITE_PATIENTS, body)
