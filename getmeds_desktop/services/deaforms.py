"""DEA Form 41 and Form 106 records, and the stock they take away.

* **Form 41**, Registrant Record of Controlled Substances Destroyed (21 CFR
  1304.21(e); OMB 1117-0007): what was destroyed (section B: NDC, name,
  strength, form, package quantity, full packages, partial count, total), the
  date, the method and the place of the destruction (section C), and two
  authorized employees who witnessed it (section D; 21 CFR 1317.95(d): two
  employees handle or observe the destruction until the substance is
  non-retrievable, 1317.90). One write-off is posted per lot destroyed.
* **Form 106**, Report of Theft or Loss of Controlled Substances (21 CFR
  1301.76(b): the registrant tells the DEA Field Division Office in writing
  within one business day of discovering a theft or significant loss, and
  files Form 106 online within 45 days; OMB 1117-0001): the date of discovery
  and of the theft or loss, its type (item 10), the police (items 7, 8), the
  common carrier of a loss in transit (item 14), the security measures taken
  (item 17), and what was lost by NDC and quantity. One (negative) adjustment
  is posted per lot. DEA: Form 106 is not for minor inventory discrepancies,
  which stay ordinary count corrections.

Each record and its movements are one unit of work: the record's lines *are*
its ledger movements (``stock_movements.dea_form_id``), so the form, the
ledger and the controlled register always agree. Only a pharmacist files one
(Perm.DEA_FORMS; the database holds a staff login to the same). Records are
permanent: a correction is a new record naming the one it corrects, with what
was wrong; it may post more stock taken away, or nothing.

The official filing is DEA's: Form 106 online (Theft/Loss Reporting), Form 41
kept on file (or as the DEA asks); the PDF worksheet here (reports) carries the
fields to copy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased, sessionmaker

from .. import db
from ..enums import DeaForm, LossType, MovementKind, Role, Schedule
from ..models import DeaFormRecord, Product, Staff, StockLot, StockMovement
from . import clock, ledger, uow
from ._common import text, whole_number
from .context import Actor, Perm, require
from .errors import NotFound, ValidationError


@dataclasses.dataclass(frozen=True)
class FormLine:
    """A lot and how many units of it were destroyed, stolen or lost."""

    lot_id: uuid.UUID
    quantity: int


@dataclasses.dataclass(frozen=True)
class DestructionRequest:
    """DEA Form 41: what was destroyed, when, how, where, and the two witnesses."""

    lines: Sequence[FormLine]
    destroyed_on: dt.date | None
    method: str | None
    place: str | None
    witness1_id: uuid.UUID | None
    witness2_id: uuid.UUID | None
    corrects_id: uuid.UUID | None = None
    correction_note: str | None = None
    request_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)


@dataclasses.dataclass(frozen=True)
class TheftLossRequest:
    """DEA Form 106: a theft or significant loss and what was taken."""

    lines: Sequence[FormLine]
    discovered_on: dt.date | None
    loss_type: LossType | str | None
    police_notified: bool | None
    occurred_on: dt.date | None = None
    police_department: str | None = None
    loss_detail: str | None = None
    carrier: str | None = None
    security_measures: str | None = None
    corrects_id: uuid.UUID | None = None
    correction_note: str | None = None
    request_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)


@dataclasses.dataclass(frozen=True)
class FormItem:
    """One line of a record: the movement posted from it, with its product."""

    movement_id: uuid.UUID
    lot_id: uuid.UUID
    lot_number: str
    product: str
    strength: str | None
    dosage_form: str | None
    ndc: str | None
    schedule: Schedule
    unit: str
    pack_size: int
    quantity: int  # units taken away (positive)
    unit_cost: decimal.Decimal

    @property
    def full_packages(self) -> int:
        return self.quantity // max(self.pack_size, 1)

    @property
    def partial_count(self) -> int:
        return self.quantity % max(self.pack_size, 1)


@dataclasses.dataclass(frozen=True)
class DeaFormInfo:
    id: uuid.UUID
    form: DeaForm
    filed_by: str
    filed_at: dt.datetime
    corrects_id: uuid.UUID | None
    correction_note: str | None
    items: tuple[FormItem, ...]
    # Form 41
    destroyed_on: dt.date | None = None
    method: str | None = None
    place: str | None = None
    witness1: str | None = None
    witness2: str | None = None
    # Form 106
    discovered_on: dt.date | None = None
    occurred_on: dt.date | None = None
    loss_type: LossType | None = None
    loss_detail: str | None = None
    police_notified: bool | None = None
    police_department: str | None = None
    carrier: str | None = None
    security_measures: str | None = None
    corrected_by: tuple[uuid.UUID, ...] = ()

    @property
    def title(self) -> str:
        return self.form.label

    @property
    def total_units(self) -> int:
        return sum(i.quantity for i in self.items)

    @property
    def value(self) -> decimal.Decimal:
        """What the stock taken cost the pharmacy (Form 106 item 12)."""
        return sum((i.unit_cost * i.quantity for i in self.items),
                   decimal.Decimal("0")).quantize(decimal.Decimal("0.01"))


@dataclasses.dataclass(frozen=True)
class Witness:
    id: uuid.UUID
    name: str
    role: Role


# ------------------------------------------------------------------ checks


def _lines(lines: Sequence[FormLine], *, correction: bool) -> list[FormLine]:
    out: list[FormLine] = []
    seen: set[uuid.UUID] = set()
    for ln in lines:
        qty = whole_number(ln.quantity, "quantity", "The quantity", minimum=1)
        if ln.lot_id in seen:
            raise ValidationError("A lot is listed twice: give each lot once with its whole "
                                  "quantity.", field="lines")
        seen.add(ln.lot_id)
        out.append(FormLine(ln.lot_id, qty))
    if not out and not correction:
        raise ValidationError("List what was taken: at least one lot and its quantity.",
                              field="lines")
    return out


def _past(day: dt.date | None, field: str, what: str) -> dt.date:
    if not isinstance(day, dt.date):
        raise ValidationError(f"{what} is required.", field=field)
    if day > clock.today():
        raise ValidationError(f"{what} ({day:%Y-%m-%d}) is in the future.", field=field)
    return day


def _correction(s: Session, form: DeaForm, corrects_id: uuid.UUID | None,
                note: str | None) -> str | None:
    if corrects_id is None:
        if note is not None and note.strip():
            raise ValidationError("A correction note goes with the record it corrects.",
                                  field="corrects_id")
        return None
    earlier = s.get(DeaFormRecord, corrects_id)
    if earlier is None or earlier.form != form.value:
        raise NotFound(f"There is no earlier {form.label} record to correct.",
                       field="corrects_id")
    return text(note, "correction_note", "What the correction changes", max_len=300)


def _witnesses(s: Session, first: uuid.UUID | None, second: uuid.UUID | None
               ) -> tuple[uuid.UUID, uuid.UUID]:
    """21 CFR 1317.95(d): two employees of the registrant witness the destruction."""
    if first is None or second is None:
        raise ValidationError("A destruction has two witnesses: choose both (21 CFR "
                              "1317.95(d)).", field="witnesses")
    if first == second:
        raise ValidationError("The two witnesses must be two different people (21 CFR "
                              "1317.95(d)).", field="witnesses")
    for who in (first, second):
        person = s.get(Staff, who)
        if person is None or not person.active or person.role is Role.DOCTOR:
            raise ValidationError("A witness is an active employee of the pharmacy (a staff "
                                  "member, not a prescriber's login).", field="witnesses")
    return first, second


def _post_lines(w: uow.Work, record_id: uuid.UUID, lines: list[FormLine], kind: MovementKind,
                reason: str, reference: str) -> None:
    movements = []
    for ln in lines:
        row, lot = ledger.lock_lot(w.session, ln.lot_id)
        product = w.session.get(Product, row.product_id)
        assert product is not None
        if not product.schedule.controlled:
            raise ValidationError(
                f"Lot {lot.lot_number} ({product.name}) is not a controlled substance: DEA "
                "Forms 41 and 106 are for controlled substances. Use a write-off or an "
                "adjustment.", field="lines")
        movements.append(ledger.Movement(lot, kind, -ln.quantity, reason=reason,
                                         reference=reference, dea_form_id=record_id))
    ledger.post(w, movements)


def _replay(w: uow.Work, entity: str) -> DeaFormInfo:
    return _info(w.session, uuid.UUID(entity))


# ------------------------------------------------------------------ writes


def record_destruction(sf: sessionmaker[Session], actor: Actor, req: DestructionRequest
                       ) -> DeaFormInfo:
    """File a DEA Form 41 record and write off what it says was destroyed."""
    correction = req.corrects_id is not None
    lines = _lines(req.lines, correction=correction)
    destroyed_on = _past(req.destroyed_on, "destroyed_on", "The date of the destruction")
    method = text(req.method, "method", "The method of destruction", max_len=200)
    place = text(req.place, "place", "Where it was destroyed (location or business name and "
                 "address)", max_len=300)

    def body(w: uow.Work) -> DeaFormInfo:
        s = w.session
        note = _correction(s, DeaForm.DESTRUCTION, req.corrects_id, req.correction_note)
        first, second = _witnesses(s, req.witness1_id, req.witness2_id)
        row = DeaFormRecord(
            id=uuid.uuid4(), form=DeaForm.DESTRUCTION.value, corrects_id=req.corrects_id,
            correction_note=note, filed_by=w.staff_id, filed_at=clock.now(),
            destroyed_on=destroyed_on, method=method, place=place, witness1_id=first,
            witness2_id=second)
        s.add(row)
        s.flush()
        _post_lines(w, row.id, lines, MovementKind.WRITE_OFF,
                    f"Destroyed: {method}"[:300], "DEA Form 41")
        w.touched("dea_forms", row.id)
        s.expire(row)  # the database's time of filing
        return _info(s, row.id)

    return uow.write(sf, actor, Perm.DEA_FORMS, body, request_id=req.request_id,
                     operation="dea_forms.41", replay=_replay)


def report_theft_or_loss(sf: sessionmaker[Session], actor: Actor, req: TheftLossRequest
                         ) -> DeaFormInfo:
    """File a DEA Form 106 record and take away what it says was stolen or lost."""
    correction = req.corrects_id is not None
    lines = _lines(req.lines, correction=correction)
    discovered = _past(req.discovered_on, "discovered_on",
                       "The date the theft or loss was discovered")
    occurred = req.occurred_on
    if occurred is not None and occurred > discovered:
        raise ValidationError("The theft or loss cannot have happened after it was "
                              "discovered.", field="occurred_on")
    try:
        kind = LossType(req.loss_type) if req.loss_type is not None else None
    except ValueError:
        kind = None
    if kind is None:
        raise ValidationError("Choose the type of theft or loss (DEA Form 106 item 10).",
                              field="loss_type")
    if req.police_notified is None:
        raise ValidationError("Say whether the theft or loss was reported to the police "
                              "(DEA Form 106 item 7).", field="police_notified")
    police = text(req.police_department, "police_department", "The police department's name "
                  "and telephone number", required=req.police_notified, max_len=200)
    detail = text(req.loss_detail, "loss_detail", "What happened",
                  required=kind is LossType.OTHER, max_len=500)
    carrier = text(req.carrier, "carrier", "The common carrier's name",
                   required=kind is LossType.LOST_IN_TRANSIT, max_len=200)
    measures = text(req.security_measures, "security_measures", "The security measures taken",
                    required=False, max_len=500)

    def body(w: uow.Work) -> DeaFormInfo:
        s = w.session
        note = _correction(s, DeaForm.THEFT_LOSS, req.corrects_id, req.correction_note)
        row = DeaFormRecord(
            id=uuid.uuid4(), form=DeaForm.THEFT_LOSS.value, corrects_id=req.corrects_id,
            correction_note=note, filed_by=w.staff_id, filed_at=clock.now(),
            discovered_on=discovered, occurred_on=occurred, loss_type=kind.value,
            loss_detail=detail, police_notified=bool(req.police_notified),
            police_department=police if req.police_notified else None,
            carrier=carrier, security_measures=measures)
        s.add(row)
        s.flush()
        _post_lines(w, row.id, lines, MovementKind.ADJUSTMENT,
                    f"{kind.label} (DEA Form 106)", "DEA Form 106")
        w.touched("dea_forms", row.id)
        s.expire(row)
        return _info(s, row.id)

    return uow.write(sf, actor, Perm.DEA_FORMS, body, request_id=req.request_id,
                     operation="dea_forms.106", replay=_replay)


# ------------------------------------------------------------------ reads


def _info(s: Session, form_id: uuid.UUID) -> DeaFormInfo:
    row = s.get(DeaFormRecord, form_id)
    if row is None:
        raise NotFound("That DEA form record does not exist.", field="form")
    names = dict(s.execute(sa.select(Staff.id, Staff.full_name).where(Staff.id.in_(
        [x for x in (row.filed_by, row.witness1_id, row.witness2_id) if x is not None])
    )).all())
    items = tuple(
        FormItem(mid, lot_id, lot_no, name, strength, form, ndc, Schedule(schedule), unit,
                 pack, -qty, decimal.Decimal(cost))
        for mid, lot_id, lot_no, name, strength, form, ndc, schedule, unit, pack, qty, cost
        in s.execute(
            sa.select(StockMovement.id, StockLot.id, StockLot.lot_number, Product.name,
                      Product.strength, Product.dosage_form, Product.ndc, Product.schedule,
                      Product.unit, Product.pack_size, StockMovement.quantity,
                      StockLot.unit_cost)
            .join(StockLot, StockLot.id == StockMovement.lot_id)
            .join(Product, Product.id == StockLot.product_id)
            .where(StockMovement.dea_form_id == form_id)
            .order_by(Product.name, StockLot.lot_number)))
    later = aliased(DeaFormRecord)
    corrected_by = tuple(s.scalars(sa.select(later.id).where(later.corrects_id == form_id)
                                   .order_by(later.filed_at)))
    return DeaFormInfo(
        id=row.id, form=DeaForm(row.form), filed_by=names.get(row.filed_by, "?"),
        filed_at=row.filed_at, corrects_id=row.corrects_id,
        correction_note=row.correction_note, items=items, destroyed_on=row.destroyed_on,
        method=row.method, place=row.place,
        witness1=names.get(row.witness1_id) if row.witness1_id else None,
        witness2=names.get(row.witness2_id) if row.witness2_id else None,
        discovered_on=row.discovered_on, occurred_on=row.occurred_on,
        loss_type=LossType(row.loss_type) if row.loss_type else None,
        loss_detail=row.loss_detail, police_notified=row.police_notified,
        police_department=row.police_department, carrier=row.carrier,
        security_measures=row.security_measures, corrected_by=corrected_by)


def get_form(sf: sessionmaker[Session], actor: Actor, form_id: uuid.UUID) -> DeaFormInfo:
    require(actor, Perm.REPORTS)
    with db.read_session(sf) as s:
        return _info(s, form_id)


def form_info(s: Session, form_id: uuid.UUID) -> DeaFormInfo:
    """The record in an open session (the PDF worksheet's reader)."""
    return _info(s, form_id)


def forms_of_lot(sf: sessionmaker[Session], actor: Actor, lot_id: uuid.UUID
                 ) -> list[DeaFormInfo]:
    """The records that took stock from a lot, newest first."""
    require(actor, Perm.REPORTS)
    with db.read_session(sf) as s:
        ids = s.scalars(
            sa.select(DeaFormRecord.id)
            .join(StockMovement, StockMovement.dea_form_id == DeaFormRecord.id)
            .where(StockMovement.lot_id == lot_id)
            .order_by(DeaFormRecord.filed_at.desc(), DeaFormRecord.id)).all()
        return [_info(s, i) for i in dict.fromkeys(ids)]


def thefts_and_losses_since(sf: sessionmaker[Session], actor: Actor, day: dt.date) -> int:
    """Form 106 records filed since ``day`` (item 9 counts those of 24 months)."""
    require(actor, Perm.REPORTS)
    lo, _ = clock.day_range(day, day)
    with db.read_session(sf) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(DeaFormRecord).where(
            DeaFormRecord.form == DeaForm.THEFT_LOSS.value, DeaFormRecord.corrects_id.is_(None),
            DeaFormRecord.filed_at >= lo)) or 0


def witnesses(sf: sessionmaker[Session], actor: Actor) -> list[Witness]:
    """Who may witness a destruction: the pharmacy's active employees."""
    require(actor, Perm.READ_LOTS)
    with db.read_session(sf) as s:
        return [Witness(i, name, role) for i, name, role in s.execute(
            sa.select(Staff.id, Staff.full_name, Staff.role)
            .where(Staff.active.is_(True), Staff.role != Role.DOCTOR)
            .order_by(Staff.full_name, Staff.id))]


__all__ = ["DeaFormInfo", "DestructionRequest", "FormItem", "FormLine", "TheftLossRequest",
           "Witness", "form_info", "forms_of_lot", "get_form", "record_destruction",
           "report_theft_or_loss", "thefts_and_losses_since", "witnesses"]
