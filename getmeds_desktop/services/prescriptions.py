"""Prescriptions: creation with the legal checks, edits, and the status flow.

Status flow::

    new -> in_progress -> ready_for_check -> dispensed
                                        \\-> partially_dispensed (owed quantity) -> dispensed
    any open status -> on_hold -> (back where it was)
    any open status -> cancelled

A dispensed prescription with refills left is filled again (a refill) from
``dispensed``; each fill counts the refills down.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from .. import screening as sc
from ..enums import AllergyStatus, PartialReason
from ..models import (
    RX_NUMBER_START,
    AppSettings,
    Dispense,
    Patient,
    Prescriber,
    Prescription,
    PrescriptionTransfer,
    Product,
    Role,
    RxStatus,
    Schedule,
    Staff,
    table_of,
)
from . import clinical, clock, uow
from ._common import text, whole_number
from .clinical import SafetyWarning
from .clock import add_months
from .context import Actor, Perm, require
from .errors import InvalidState, NotFound, PermissionDenied, ValidationError
from .identifiers import format_ndc
from .rxstate import (
    DAW_CODES,
    FILLABLE,
    OPEN_STATUSES,
    RxState,
    daw_label,
    substitution_allowed,
    validity_months,
)
from .settings import Settings, get_settings
from .settings import load as load_settings

MAX_REFILLS_III_V = 5


@dataclasses.dataclass(frozen=True)
class PrescriptionDraft:
    patient_id: uuid.UUID | None
    prescriber_id: uuid.UUID | None
    product_id: uuid.UUID | None
    sig: str
    quantity: int
    days_supply: int
    refills_authorized: int = 0
    daw: bool = False  # shorthand for daw_code 1 when daw_code is not given
    date_written: dt.date | None = None
    notes: str | None = None
    # the NCPDP product-selection (DAW) code 0-9 (rxstate.DAW_CODES)
    daw_code: int | None = None
    # the earliest day it may be filled (21 CFR 1306.12(b)(1)(ii)); None: any day
    not_before: dt.date | None = None
    electronic: bool = True  # arrived as an electronic prescription

    @property
    def code(self) -> int:
        return (1 if self.daw else 0) if self.daw_code is None else self.daw_code


@dataclasses.dataclass(frozen=True)
class PrescriptionInfo:
    id: uuid.UUID
    rx_number: int
    patient_id: uuid.UUID
    patient_name: str
    patient_dob: dt.date
    prescriber_id: uuid.UUID
    prescriber_name: str
    product_id: uuid.UUID
    product_name: str
    product_ndc: str | None
    product_gtin: str | None
    schedule: Schedule
    sig: str
    quantity: int
    days_supply: int
    refills_authorized: int
    daw: bool  # the DAW code forbids substitution
    date_written: dt.date
    status: RxStatus
    owed_quantity: int
    notes: str | None
    created_by: str
    version: int
    updated_by: str | None
    updated_at: dt.datetime
    state: RxState  # refills left, expiry, next fill, why it cannot be filled
    daw_code: int = 0
    not_before: dt.date | None = None
    electronic: bool = False
    prescriber_notice: str | None = None  # how the prescriber was told of a void remainder
    # its transfers to or from other pharmacies (read by get_prescription, for
    # the details; the state knows whether it was transferred either way)
    transfers: tuple[TransferInfo, ...] = ()

    @property
    def fills(self) -> int:
        return self.state.fills_used

    @property
    def refills_left(self) -> int:
        return self.state.refills_left

    @property
    def expires_on(self) -> dt.date:
        return self.state.expires_on

    @property
    def ndc_display(self) -> str:
        return format_ndc(self.product_ndc)

    def expired_on(self, day: dt.date) -> bool:
        return self.state.expired_on(day)

    def draft(self) -> PrescriptionDraft:
        return PrescriptionDraft(
            patient_id=self.patient_id, prescriber_id=self.prescriber_id,
            product_id=self.product_id, sig=self.sig, quantity=self.quantity,
            days_supply=self.days_supply, refills_authorized=self.refills_authorized,
            daw=self.daw, date_written=self.date_written, notes=self.notes,
            daw_code=self.daw_code, not_before=self.not_before, electronic=self.electronic,
        )

    @property
    def daw_text(self) -> str:
        return daw_label(self.daw_code)


@dataclasses.dataclass(frozen=True)
class TransferInfo:
    """A transfer of a prescription to (``out``) or from (``in``) another
    pharmacy, as recorded (21 CFR 1306.25(b), 1306.08(h))."""

    id: uuid.UUID
    direction: str  # "out" or "in"
    pharmacy_name: str
    pharmacy_address: str
    pharmacy_dea: str | None
    other_pharmacist: str  # receiving (out) or transferring (in) pharmacist there
    pharmacist: str  # the pharmacist here: transferring (out) or receiving (in)
    transferred_at: dt.datetime
    original_rx_number: str | None = None
    original_dispensed_on: dt.date | None = None
    refills_authorized_original: int | None = None
    refills_remaining: int | None = None
    previous_refills: str | None = None
    original_pharmacy: str | None = None

    @property
    def summary(self) -> str:
        when = self.transferred_at.astimezone()
        dea = f", DEA {self.pharmacy_dea}" if self.pharmacy_dea else ""
        if self.direction == "out":
            return (f"Transferred to {self.pharmacy_name} ({self.pharmacy_address}{dea}) on "
                    f"{when:%Y-%m-%d %H:%M} by {self.pharmacist}; received there by "
                    f"{self.other_pharmacist}.")
        first = (f"first dispensed {self.original_dispensed_on:%Y-%m-%d}"
                 if self.original_dispensed_on else "never dispensed")
        return (f"Transferred in from {self.pharmacy_name} ({self.pharmacy_address}{dea}), "
                f"their Rx {self.original_rx_number}, {first}, "
                f"{self.refills_remaining} of {self.refills_authorized_original} refills "
                f"remaining; transferred by {self.other_pharmacist}, received here by "
                f"{self.pharmacist} on {when:%Y-%m-%d %H:%M}.")


def months_valid(schedule: Schedule, settings: Settings) -> int:
    return validity_months(schedule, settings.rx_validity_months,
                           settings.controlled_validity_months)


def next_rx_number(s: Session) -> int:
    """From the database sequence (PostgreSQL), or max+1 under SQLite's write lock."""
    if db.is_sqlite(s):
        current = s.scalar(sa.select(sa.func.max(Prescription.rx_number)))
        return (current or RX_NUMBER_START - 1) + 1
    return int(s.scalar(sa.text("SELECT nextval('rx_number_seq')")))


_rxt = table_of(Prescription)
_pat = table_of(Patient)
_prs = table_of(Prescriber)
_prd = table_of(Product)
_stf = table_of(Staff)
_dsp = table_of(Dispense)
_set = table_of(AppSettings)
_trf = table_of(PrescriptionTransfer)
_last = (sa.select(_dsp.c.fill_number, _dsp.c.part).where(_dsp.c.prescription_id == _rxt.c.id,
                                                          _dsp.c.status != "returned")
         .order_by(_dsp.c.fill_number.desc(), _dsp.c.part.desc()).limit(1).correlate(_rxt))
# the first part of the latest fill (why it was partial, when it was made)
_first = (sa.select(_dsp.c.partial_reason)
          .where(_dsp.c.prescription_id == _rxt.c.id, _dsp.c.part == 1,
                 _dsp.c.status != "returned")
          .order_by(_dsp.c.fill_number.desc()).limit(1).correlate(_rxt))
_out = (sa.select(_trf.c.pharmacy_name).where(_trf.c.prescription_id == _rxt.c.id,
                                             _trf.c.direction == "out")
        .limit(1).correlate(_rxt))
# A prescription with its patient, prescriber, product, creator, latest fill,
# its transfers and the validity settings: one statement.
_Q_RX_INFO = (
    sa.select(
        _rxt.c.id, _rxt.c.rx_number, _rxt.c.patient_id, _pat.c.first_name, _pat.c.last_name,
        _pat.c.date_of_birth, _rxt.c.prescriber_id, _prs.c.first_name.label("p_first"),
        _prs.c.last_name.label("p_last"), _prs.c.credentials, _rxt.c.product_id,
        _prd.c.name, _prd.c.strength, _prd.c.dosage_form, _prd.c.ndc, _prd.c.gtin,
        _prd.c.schedule, _rxt.c.sig, _rxt.c.quantity, _rxt.c.days_supply,
        _rxt.c.refills_authorized, _rxt.c.daw, _rxt.c.date_written, _rxt.c.status,
        _rxt.c.owed_quantity, _rxt.c.notes, _stf.c.username, _rxt.c.version,
        _rxt.c.updated_by, _rxt.c.updated_at, _set.c.rx_validity_months,
        _set.c.controlled_validity_months,
        _last.with_only_columns(_dsp.c.fill_number).scalar_subquery().label("last_fill"),
        _last.with_only_columns(_dsp.c.part).scalar_subquery().label("last_part"),
        _rxt.c.daw_code, _rxt.c.not_before, _rxt.c.electronic, _rxt.c.remainder_void_at,
        _rxt.c.prescriber_notice,
        _first.with_only_columns(_dsp.c.partial_reason).scalar_subquery()
        .label("partial_reason"),
        _first.with_only_columns(_dsp.c.dispensed_at).scalar_subquery()
        .label("partial_started"),
        _out.scalar_subquery().label("transferred_to"),
        _out.with_only_columns(_trf.c.transferred_at).scalar_subquery()
        .label("transferred_at"),
        sa.exists().where(_trf.c.prescription_id == _rxt.c.id, _trf.c.direction == "in")
        .correlate(_rxt).label("arrived"))
    .select_from(_rxt.join(_pat, _pat.c.id == _rxt.c.patient_id)
                 .join(_prs, _prs.c.id == _rxt.c.prescriber_id)
                 .join(_prd, _prd.c.id == _rxt.c.product_id)
                 .join(_stf, _stf.c.id == _rxt.c.created_by)
                 .join(_set, _set.c.id == 1))
    .where(_rxt.c.id == sa.bindparam("rx_id"))
)


def rx_info(s: Session, rx: Prescription | uuid.UUID) -> PrescriptionInfo:
    """What the screens show of a prescription, read in one statement (a
    prescription this session wrote is flushed first, so it is seen)."""
    rx_id = rx if isinstance(rx, uuid.UUID) else rx.id
    if not isinstance(rx, uuid.UUID):
        s.flush()
    return rx_info_of(s.connection().execute(_Q_RX_INFO, {"rx_id": rx_id}).all())


def rx_info_read(rx_id: uuid.UUID) -> tuple[sa.Select[Any], dict[str, Any]]:
    """The statement of :func:`rx_info`, to be sent with others (db.together)."""
    return _Q_RX_INFO, {"rx_id": rx_id}


def rx_info_of(rows: Sequence[Any]) -> PrescriptionInfo:
    """What the screens show of a prescription, from the rows of :func:`rx_info_read`."""
    if not rows:
        raise NotFound("That prescription does not exist.")
    r = rows[0]
    schedule = Schedule(r.schedule)
    suffix = f", {r.credentials}" if r.credentials else ""
    state = RxState(
        rx_number=r.rx_number, status=RxStatus(r.status), schedule=schedule,
        quantity=r.quantity, refills_authorized=r.refills_authorized,
        date_written=r.date_written, owed_quantity=r.owed_quantity,
        validity_months=validity_months(schedule, r.rx_validity_months,
                                        r.controlled_validity_months),
        last_fill=r.last_fill, last_part=r.last_part, not_before=r.not_before,
        partial_reason=PartialReason(r.partial_reason) if r.partial_reason else None,
        partial_started=r.partial_started, remainder_void_at=r.remainder_void_at,
        electronic=bool(r.electronic), transferred_to=r.transferred_to,
        transferred_on=local_day(r.transferred_at), arrived_by_transfer=bool(r.arrived))
    return PrescriptionInfo(
        id=r.id, rx_number=r.rx_number, patient_id=r.patient_id,
        patient_name=f"{r.first_name} {r.last_name}", patient_dob=r.date_of_birth,
        prescriber_id=r.prescriber_id,
        prescriber_name=f"{r.p_first} {r.p_last}{suffix}".strip(),
        product_id=r.product_id,
        product_name=" ".join(x for x in (r.name, r.strength, r.dosage_form) if x),
        product_ndc=r.ndc, product_gtin=r.gtin, schedule=schedule, sig=r.sig,
        quantity=r.quantity, days_supply=r.days_supply,
        refills_authorized=r.refills_authorized, daw=r.daw, date_written=r.date_written,
        status=RxStatus(r.status), owed_quantity=r.owed_quantity, notes=r.notes,
        created_by=r.username, version=r.version, updated_by=r.updated_by,
        updated_at=r.updated_at, state=state, daw_code=r.daw_code, not_before=r.not_before,
        electronic=r.electronic, prescriber_notice=r.prescriber_notice,
    )


def local_day(moment: dt.datetime | str | None) -> dt.date | None:
    """The pharmacy's (local) day of a UTC moment, or None."""
    if moment is None:
        return None
    if isinstance(moment, str):  # SQLite returns a scalar subquery's timestamp as text
        moment = dt.datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone().date()


def transfers_of(s: Session, rx_id: uuid.UUID) -> tuple[TransferInfo, ...]:
    """A prescription's transfers, oldest first (one statement)."""
    rows = s.execute(
        sa.select(_trf, _stf.c.full_name).join(_stf, _stf.c.id == _trf.c.pharmacist_id)
        .where(_trf.c.prescription_id == rx_id).order_by(_trf.c.transferred_at)).all()
    return tuple(TransferInfo(
        id=r.id, direction=r.direction, pharmacy_name=r.pharmacy_name,
        pharmacy_address=r.pharmacy_address, pharmacy_dea=r.pharmacy_dea,
        other_pharmacist=r.other_pharmacist, pharmacist=r.full_name,
        transferred_at=r.transferred_at, original_rx_number=r.original_rx_number,
        original_dispensed_on=r.original_dispensed_on,
        refills_authorized_original=r.refills_authorized_original,
        refills_remaining=r.refills_remaining, previous_refills=r.previous_refills,
        original_pharmacy=r.original_pharmacy) for r in rows)


def _settings_of(s: Session) -> Settings:
    from .settings import _info

    return _info(load_settings(s))


def _validate(s: Session, actor: Actor, d: PrescriptionDraft, settings: Settings
              ) -> tuple[dict[str, Any], Product, Prescriber]:
    if d.patient_id is None:
        raise ValidationError("Choose the patient.", field="patient_id")
    if d.prescriber_id is None:
        raise ValidationError("Choose the prescriber.", field="prescriber_id")
    if d.product_id is None:
        raise ValidationError("Choose the product.", field="product_id")
    sig = text(d.sig, "sig", "Directions (sig)", max_len=1000)
    qty = whole_number(d.quantity, "quantity", "Quantity", minimum=1, maximum=100000)
    days = whole_number(d.days_supply, "days_supply", "Days supply", minimum=1, maximum=400)
    refills = whole_number(d.refills_authorized, "refills_authorized", "Refills", minimum=0,
                           maximum=99)
    if not isinstance(d.date_written, dt.date):
        raise ValidationError("Date written is required.", field="date_written")
    today = clock.today()
    if d.date_written > today:
        raise ValidationError("The date written cannot be in the future.", field="date_written")
    patient = s.get(Patient, d.patient_id)
    if patient is None or not patient.active:
        raise NotFound("That patient does not exist or is inactive.", field="patient_id")
    prescriber = s.get(Prescriber, d.prescriber_id)
    if prescriber is None or not prescriber.active:
        raise NotFound("That prescriber does not exist or is inactive.", field="prescriber_id")
    product = s.get(Product, d.product_id)
    if product is None or not product.active:
        raise NotFound("That product does not exist or is inactive.", field="product_id")
    if actor.role is Role.DOCTOR and prescriber.id != actor.prescriber_id:
        raise PermissionDenied(
            "A doctor writes prescriptions as themselves: choose your own prescriber record.",
            field="prescriber_id")
    if product.schedule.controlled:
        if not prescriber.dea_number:
            raise ValidationError(
                f"{product.name} is a Schedule {product.schedule.value} controlled substance; "
                f"{prescriber.display_name} has no DEA number on file.", field="prescriber_id")
        if product.schedule is Schedule.II and refills > 0:
            raise ValidationError(
                "Schedule II prescriptions cannot have refills (a new prescription is "
                "needed for each fill).", field="refills_authorized")
        limit = settings.schedule_ii_refused_over
        if product.schedule is Schedule.II and limit is not None and days > limit:
            raise ValidationError(
                f"A Schedule II prescription for {days} days is more than the {limit} days "
                f"this pharmacy allows (a setting, for state law): ask the prescriber for a "
                f"shorter supply.", field="days_supply")
        if refills > MAX_REFILLS_III_V:
            raise ValidationError(
                f"Schedule {product.schedule.value} prescriptions allow at most "
                f"{MAX_REFILLS_III_V} refills.", field="refills_authorized")
    last_day = add_months(d.date_written, months_valid(product.schedule, settings))
    if today > last_day:
        raise ValidationError(
            f"A prescription for this product written on {d.date_written:%Y-%m-%d} expired "
            f"on {last_day:%Y-%m-%d} and cannot be filled.", field="date_written")
    code = d.code
    if not isinstance(code, int) or isinstance(code, bool) or code not in DAW_CODES:
        raise ValidationError("The DAW code is one of the NCPDP product-selection codes 0-9.",
                              field="daw_code")
    not_before = d.not_before
    if not_before is not None:
        if not isinstance(not_before, dt.date):
            raise ValidationError("The earliest fill date is not a date.", field="not_before")
        if not_before < d.date_written:
            raise ValidationError("The earliest fill date cannot be before the date written.",
                                  field="not_before")
        if not_before > last_day:
            raise ValidationError(
                f"The earliest fill date {not_before:%Y-%m-%d} is after the last day this "
                f"prescription may be filled ({last_day:%Y-%m-%d}).", field="not_before")
    values = dict(
        patient_id=patient.id, prescriber_id=prescriber.id, product_id=product.id, sig=sig,
        quantity=qty, days_supply=days, refills_authorized=refills,
        daw=not substitution_allowed(code), daw_code=code, not_before=not_before,
        electronic=bool(d.electronic), date_written=d.date_written,
        notes=text(d.notes, "notes", "Notes", required=False, max_len=2000),
    )
    return values, product, prescriber


# 21 CFR 1306.12(b)(1): multiple Schedule II prescriptions issued together (same
# prescriber, patient, product and date) give a total of up to a 90-day supply.
MULTIPLE_SCHEDULE_II_DAYS = 90


def _check_multiple_schedule_ii(s: Session, values: dict[str, Any], product: Product,
                                rx_id: uuid.UUID | None) -> None:
    if product.schedule is not Schedule.II:
        return
    q = (sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(Prescription.days_supply), 0))
         .where(Prescription.patient_id == values["patient_id"],
                Prescription.prescriber_id == values["prescriber_id"],
                Prescription.product_id == values["product_id"],
                Prescription.date_written == values["date_written"],
                Prescription.status != RxStatus.CANCELLED))
    if rx_id is not None:
        q = q.where(Prescription.id != rx_id)
    others, days = s.execute(q).one()
    total = int(days) + values["days_supply"]
    if others and total > MULTIPLE_SCHEDULE_II_DAYS:
        raise ValidationError(
            f"With the {others} other Schedule II prescription{'s' if others > 1 else ''} "
            f"of this prescriber for this patient and product written on "
            f"{values['date_written']:%Y-%m-%d}, this one makes a {total}-day supply: "
            f"multiple Schedule II prescriptions may total at most "
            f"{MULTIPLE_SCHEDULE_II_DAYS} days (21 CFR 1306.12(b)).", field="days_supply")


def create_prescription(
    sf: sessionmaker[Session],
    actor: Actor,
    draft: PrescriptionDraft,
    *,
    request_id: uuid.UUID | None = None,
) -> PrescriptionInfo:
    request_id = request_id or uuid.uuid4()

    def body(w: uow.Work) -> PrescriptionInfo:
        s = w.session
        existing = s.scalar(sa.select(Prescription).where(Prescription.request_id == request_id))
        if existing is not None:  # a retry: the prescription carries the request id
            return rx_info(s, existing)
        settings = _settings_of(s)
        values, product, _ = _validate(s, w.actor, draft, settings)
        _check_multiple_schedule_ii(s, values, product, None)
        rx = Prescription(
            id=uuid.uuid4(), **values, rx_number=next_rx_number(s), status=RxStatus.NEW,
            created_by=w.staff_id, request_id=request_id, updated_by=w.actor.username,
        )
        s.add(rx)
        s.flush()
        return rx_info(s, rx)

    return uow.write(sf, actor, Perm.CREATE_PRESCRIPTIONS, body)


def _lock_rx(s: Session, rx_id: uuid.UUID) -> Prescription:
    rx = s.scalar(sa.select(Prescription).where(Prescription.id == rx_id).with_for_update())
    if rx is None:
        raise NotFound("That prescription does not exist.")
    return rx


def _may_edit(actor: Actor, rx: Prescription, verb: str) -> None:
    """Only the prescriber (as a doctor) or a pharmacist/admin; doctors only their own."""
    require(actor, Perm.EDIT_PRESCRIPTIONS)
    if actor.role is Role.DOCTOR:
        if rx.prescriber_id != actor.prescriber_id:
            raise PermissionDenied(f"You may only {verb} prescriptions you wrote.")
        if rx.status is not RxStatus.NEW:
            raise PermissionDenied(
                f"A doctor may {verb} a prescription only while it is new (not yet in work "
                "at the pharmacy).")


def _replay_rx(w: uow.Work, rx_id: str) -> PrescriptionInfo:
    rx = w.session.get(Prescription, uuid.UUID(rx_id))
    assert rx is not None
    return rx_info(w.session, rx)


def update_prescription(
    sf: sessionmaker[Session],
    actor: Actor,
    rx_id: uuid.UUID,
    draft: PrescriptionDraft,
    *,
    expected_version: int,
    request_id: uuid.UUID | None = None,
) -> PrescriptionInfo:
    """Edit a new prescription. Nobody edits one that has been (partly) dispensed."""
    def body(w: uow.Work) -> PrescriptionInfo:
        s = w.session
        rx = _lock_rx(s, rx_id)
        _may_edit(w.actor, rx, "edit")
        w.expect_version(rx, expected_version, "prescription")
        if rx.status is not RxStatus.NEW:
            raise InvalidState(
                f"Rx {rx.rx_number} is {rx.status.label.lower()}: only a new prescription "
                "can be edited. Cancel it and enter a new one if it is wrong.")
        settings = _settings_of(s)
        values, product, _ = _validate(s, w.actor, draft, settings)
        _check_multiple_schedule_ii(s, values, product, rx.id)
        if rx.not_before is not None and (values["not_before"] is None
                                          or values["not_before"] < rx.not_before) \
                and not (w.actor.role is Role.DOCTOR
                         and w.actor.prescriber_id == rx.prescriber_id):
            raise PermissionDenied(
                f"Only the prescriber may let Rx {rx.rx_number} be filled before "
                f"{rx.not_before:%Y-%m-%d}.", field="not_before")
        for k, v in values.items():
            setattr(rx, k, v)
        rx.updated_by = w.actor.username
        s.flush()
        return rx_info(s, rx)

    return uow.write(sf, actor, None, body, request_id=request_id,
                     operation="prescriptions.update", replay=_replay_rx)


class RxAction:
    START = "start"  # new -> in progress
    READY = "ready"  # in progress -> ready for check
    HOLD = "hold"
    RELEASE = "release"  # off hold
    CANCEL = "cancel"


def change_status(
    sf: sessionmaker[Session],
    actor: Actor,
    rx_id: uuid.UUID,
    action: str,
    *,
    reason: str | None = None,
    expected_version: int | None = None,
    request_id: uuid.UUID | None = None,
) -> PrescriptionInfo:
    def body(w: uow.Work) -> PrescriptionInfo:
        s = w.session
        actor = w.actor
        rx = _lock_rx(s, rx_id)
        w.expect_version(rx, expected_version, "prescription")
        st = rx.status
        if action == RxAction.START:
            require(actor, Perm.DISPENSE)
            if st is not RxStatus.NEW:
                raise InvalidState(f"Rx {rx.rx_number} is {st.label.lower()}, not new.")
            rx.status = RxStatus.IN_PROGRESS
        elif action == RxAction.READY:
            require(actor, Perm.DISPENSE)
            if st not in (RxStatus.NEW, RxStatus.IN_PROGRESS):
                raise InvalidState(
                    f"Rx {rx.rx_number} is {st.label.lower()}; only a new or in-progress "
                    "prescription can be marked ready for check.")
            rx.status = RxStatus.READY_FOR_CHECK
        elif action == RxAction.HOLD:
            _may_edit(actor, rx, "hold")
            if st in (RxStatus.ON_HOLD, RxStatus.CANCELLED):
                raise InvalidState(f"Rx {rx.rx_number} is already {st.label.lower()}.")
            rx.status = RxStatus.ON_HOLD
            rx.notes = _append_note(rx.notes, "On hold", reason, actor)
        elif action == RxAction.RELEASE:
            _may_edit(actor, rx, "release")
            if st is not RxStatus.ON_HOLD:
                raise InvalidState(f"Rx {rx.rx_number} is not on hold.")
            filled = s.scalar(sa.select(sa.func.count()).select_from(Dispense).where(
                Dispense.prescription_id == rx.id,
                Dispense.status != "returned")) or 0  # a returned fill does not count
            if rx.owed_quantity > 0:
                rx.status = RxStatus.PARTIALLY_DISPENSED
            elif filled > 0:
                rx.status = RxStatus.DISPENSED
            else:
                rx.status = RxStatus.NEW
        elif action == RxAction.CANCEL:
            _may_edit(actor, rx, "cancel")
            if st is RxStatus.CANCELLED:
                raise InvalidState(f"Rx {rx.rx_number} is already cancelled.")
            why = text(reason, "reason", "A reason for cancelling", max_len=300)
            rx.status = RxStatus.CANCELLED
            rx.owed_quantity = 0
            rx.notes = _append_note(rx.notes, "Cancelled", why, actor)
        else:
            raise ValidationError(f"Unknown action '{action}'.")
        rx.updated_by = actor.username
        s.flush()
        return rx_info(s, rx)

    return uow.write(sf, actor, None, body, request_id=request_id,
                     operation=f"prescriptions.{action}", replay=_replay_rx)


def _append_note(notes: str | None, what: str, reason: str | None, actor: Actor) -> str:
    stamp = clock.local(clock.now()).strftime("%Y-%m-%d %H:%M")
    line = f"[{stamp} {actor.username}] {what}" + (f": {reason}" if reason else "")
    return f"{notes}\n{line}" if notes else line


def get_prescription(sf: sessionmaker[Session], actor: Actor, rx_id: uuid.UUID
                     ) -> PrescriptionInfo:
    require(actor, Perm.READ_PRESCRIPTIONS)
    with db.read_session(sf) as s:
        rx = s.get(Prescription, rx_id)
        if rx is None:
            raise NotFound("That prescription does not exist.")
        info = rx_info(s, rx)
        if info.state.transferred or info.state.arrived_by_transfer:
            info = dataclasses.replace(info, transfers=transfers_of(s, rx.id))
        return info


def find_by_rx_number(sf: sessionmaker[Session], actor: Actor, rx_number: int
                      ) -> PrescriptionInfo:
    require(actor, Perm.READ_PRESCRIPTIONS)
    with db.read_session(sf) as s:
        rx = s.scalar(sa.select(Prescription).where(Prescription.rx_number == rx_number))
        if rx is None:
            raise NotFound(f"There is no prescription with Rx number {rx_number}.")
        return rx_info(s, rx)


def void_remainder(sf: sessionmaker[Session], actor: Actor, rx_id: uuid.UUID, notice: str, *,
                   expected_version: int | None = None) -> PrescriptionInfo:
    """Declare the rest of a Schedule II partial fill void and record how the
    prescriber was told (21 CFR 1306.13(a): a remainder that is not or cannot be
    filled within 72 hours; the pharmacist notifies the prescriber). Nothing more
    is dispensed for it; the record cannot be undone."""
    why = text(notice, "prescriber_notice", "How the prescriber was notified", max_len=500)

    def body(w: uow.Work) -> PrescriptionInfo:
        s = w.session
        rx = _lock_rx(s, rx_id)
        w.expect_version(rx, expected_version, "prescription")
        state = rx_info(s, rx).state
        if state.schedule is not Schedule.II or not state.completing \
                or rx.remainder_void_at is not None:
            raise InvalidState(f"Rx {rx.rx_number} has no rest of a Schedule II partial fill "
                               "to declare void.")
        if why is None or len(why) < 3:
            raise ValidationError("Say how and when the prescriber was notified.",
                                  field="prescriber_notice")
        rx.remainder_void_at = clock.now()
        rx.remainder_void_by = w.staff_id
        rx.prescriber_notice = why
        rx.notes = _append_note(rx.notes, f"Remaining {rx.owed_quantity} void", why, w.actor)
        rx.owed_quantity = 0
        rx.status = RxStatus.DISPENSED
        rx.updated_by = w.actor.username
        s.flush()
        return rx_info(s, rx)

    return uow.write(sf, actor, Perm.DISPENSE, body)


def fill_problem(info: PrescriptionInfo, day: dt.date) -> str | None:
    """Why this prescription cannot be filled on ``day``, or None."""
    return info.state.problem(day)


__all__ = [
    "FILLABLE",
    "OPEN_STATUSES",
    "PrescriptionDraft",
    "PrescriptionInfo",
    "RxAction",
    "change_status",
    "create_prescription",
    "fill_problem",
    "find_by_rx_number",
    "get_prescription",
    "get_settings",
    "update_prescription",
    "void_remainder",
]


@dataclasses.dataclass(frozen=True)
class PrescribingAdvice:
    """What the prescription form shows while a prescription is written: the
    patient's allergies and the findings of the prescribing checks (allergy,
    interaction, duplicate therapy, dose, age, pregnancy). Shown, not stored:
    the full screening runs again at fill."""

    allergies: tuple[str, ...]
    allergy_status: AllergyStatus
    warnings: tuple[SafetyWarning, ...]


def screen_draft(sf: sessionmaker[Session], actor: Actor, patient_id: uuid.UUID,
                 product_id: uuid.UUID, quantity: int | None, days_supply: int | None
                 ) -> PrescribingAdvice:
    """The prescribing checks for a prescription being written (or edited)."""
    require(actor, Perm.CREATE_PRESCRIPTIONS)
    with db.read_session(sf) as s:
        settings = _settings_of(s)
        screening = sc.ScreeningSettings(
            early_refill_percent=settings.early_refill_percent,
            controlled_early_refill_percent=settings.controlled_early_refill_percent,
            geriatric_age=settings.geriatric_age,
            schedule_ii_max_days=settings.schedule_ii_max_days)
        now = clock.now()
        inp = clinical.gather(s.connection(), patient_id=patient_id, product_id=product_id,
                              rx_id=None, at=now, settings=screening,
                              rx_months=settings.rx_validity_months,
                              controlled_months=settings.controlled_validity_months)
        checks = sc.PRESCRIBING_CHECKS
        if not (quantity and quantity > 0 and days_supply and days_supply > 0):
            checks = checks - {sc.FindingKind.DOSE}  # nothing to check the dose against yet
        result = clinical.screen(inp, quantity=max(quantity or 1, 1),
                                 days_supply=max(days_supply or 1, 1), at=now,
                                 settings=screening, checks=checks)
        return PrescribingAdvice(inp.allergies, inp.patient.allergy_status,
                                 clinical.warnings_of(result))
