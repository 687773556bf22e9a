"""Prescription transfers between pharmacies.

* **Out** (:func:`transfer_out`): the rest of a prescription goes to another
  pharmacy. Recorded as 21 CFR 1306.25(b)(2) and 1306.08(h) require: the
  receiving pharmacy's name, address and DEA number, the pharmacist receiving
  the information, the date, and the pharmacist transferring it (the signed-in
  pharmacist). The prescription is then closed here (status transferred):
  nothing more is filled from it, nothing is deleted.
* **In** (:func:`transfer_in`): a new prescription entered from another
  pharmacy's, with the original's details (1306.25(b)(3)): the original Rx
  number, the date written (the prescription's own: validity counts from it,
  1306.22(a)), the date of original dispensing, the refills authorized and
  remaining, the dates and locations of previous refills, the transferring
  pharmacy's name, address and DEA number and its pharmacist; the receiving
  pharmacist is the signed-in one.

Which prescription may go is the prescription state's rule
(:meth:`~.rxstate.RxState.transfer_problem`): Schedule II only as the one-time
transfer of an unfilled electronic prescription (1306.08(e)); Schedule III-V
once only (1306.25(a)); other prescriptions as state law allows (here: with
refills left). Pharmacies that share this database are one pharmacy: a
prescription moves between their workstations without a transfer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import sqlalchemy as sa

from ..enums import FillStatus, RxStatus, Schedule
from ..models import Dispense, Prescription, PrescriptionTransfer, Product
from . import clock, uow
from ._common import text, whole_number
from .context import Actor, Perm
from .errors import InvalidState, PermissionDenied, ValidationError
from .identifiers import clean_dea
from .prescriptions import (
    PrescriptionDraft,
    PrescriptionInfo,
    _append_note,
    _check_multiple_schedule_ii,
    _lock_rx,
    _replay_rx,
    _settings_of,
    _validate,
    next_rx_number,
    rx_info,
)
from .rxstate import CONTROLLED_III_V

MAX_REFILLS_III_V = 5  # 21 CFR 1306.22(a)


@dataclasses.dataclass(frozen=True)
class OtherPharmacy:
    """The pharmacy on the other side of a transfer, and its pharmacist."""

    name: str
    address: str
    dea_number: str | None
    pharmacist: str  # receiving (out) or transferring (in)


@dataclasses.dataclass(frozen=True)
class TransferIn:
    """A prescription transferred from another pharmacy. ``draft`` is the
    prescription as written (its ``date_written`` is the original's; its
    refills are set from ``refills_remaining``)."""

    draft: PrescriptionDraft
    pharmacy: OtherPharmacy
    original_rx_number: str
    refills_authorized_original: int
    refills_remaining: int
    original_dispensed_on: dt.date | None = None  # None: never dispensed there
    previous_refills: str | None = None  # dates and locations of previous refills
    original_pharmacy: str | None = None  # where it was first filled, when elsewhere


def _may_transfer(actor: Actor) -> None:
    if not actor.can(Perm.TRANSFER):
        raise PermissionDenied(
            "Only a pharmacist transfers a prescription to or from another pharmacy (the "
            "transfer is communicated between two licensed pharmacists, 21 CFR "
            "1306.25(b)(1)).")


def _pharmacy(p: OtherPharmacy, *, controlled: bool) -> dict[str, str | None]:
    name = text(p.name, "pharmacy_name", "The other pharmacy's name", max_len=200)
    address = text(p.address, "pharmacy_address", "The other pharmacy's address", max_len=300)
    dea = clean_dea(p.dea_number, field="pharmacy_dea")
    if controlled and dea is None:
        raise ValidationError(
            "A controlled substance is transferred only with the other pharmacy's DEA "
            "registration number (21 CFR 1306.25(b)).", field="pharmacy_dea")
    pharmacist = text(p.pharmacist, "other_pharmacist", "The other pharmacist's name",
                      max_len=200)
    return dict(pharmacy_name=name, pharmacy_address=address, pharmacy_dea=dea,
                other_pharmacist=pharmacist)


def transfer_out(sf: sa.orm.sessionmaker[sa.orm.Session], actor: Actor, rx_id: uuid.UUID,
                 to: OtherPharmacy, *, expected_version: int | None = None,
                 request_id: uuid.UUID | None = None) -> PrescriptionInfo:
    """Transfer a prescription's remaining fills to another pharmacy and close
    it here."""
    _may_transfer(actor)
    request_id = request_id or uuid.uuid4()

    def body(w: uow.Work) -> PrescriptionInfo:
        s = w.session
        rx = _lock_rx(s, rx_id)
        w.expect_version(rx, expected_version, "prescription")
        state = rx_info(s, rx).state
        parties = _pharmacy(to, controlled=state.schedule.controlled)
        kind = state.transfer_problem_kind(clock.today())
        if kind is not None:
            raise InvalidState(state.transfer_problem(clock.today()) or "",
                               field="transfer" if kind == "transfer" else None)
        waiting = s.scalar(sa.select(sa.func.count()).select_from(Dispense).where(
            Dispense.prescription_id == rx.id,
            Dispense.status.in_((FillStatus.FILLED, FillStatus.VERIFIED))))
        if waiting:
            raise InvalidState(
                f"Rx {rx.rx_number} has a fill waiting for verification or pickup: hand it "
                "out or return it to stock before transferring the prescription.")
        s.add(PrescriptionTransfer(
            id=uuid.uuid4(), prescription_id=rx.id, direction="out",
            pharmacist_id=w.staff_id, transferred_at=clock.now(), request_id=request_id,
            **parties))
        s.flush()  # the transfer first: the database closes only a transferred one
        rx.status = RxStatus.TRANSFERRED
        rx.owed_quantity = 0
        dea = f", DEA {parties['pharmacy_dea']}" if parties["pharmacy_dea"] else ""
        rx.notes = _append_note(
            rx.notes, "Transferred out",
            f"to {parties['pharmacy_name']}, {parties['pharmacy_address']}{dea}; received by "
            f"{parties['other_pharmacist']}", w.actor)
        rx.updated_by = w.actor.username
        s.flush()
        return rx_info(s, rx)

    return uow.write(sf, actor, Perm.TRANSFER, body, request_id=request_id,
                     operation="prescriptions.transfer_out", replay=_replay_rx)


def transfer_in(sf: sa.orm.sessionmaker[sa.orm.Session], actor: Actor, t: TransferIn, *,
                request_id: uuid.UUID | None = None) -> PrescriptionInfo:
    """Enter a prescription transferred from another pharmacy."""
    _may_transfer(actor)
    request_id = request_id or uuid.uuid4()
    original = text(t.original_rx_number, "original_rx_number", "The original Rx number",
                    max_len=40)
    authorized = whole_number(t.refills_authorized_original, "refills_authorized_original",
                              "Refills authorized on the original", minimum=0, maximum=99)
    remaining = whole_number(t.refills_remaining, "refills_remaining", "Refills remaining",
                             minimum=0, maximum=99)
    previous = text(t.previous_refills, "previous_refills", "Previous refills",
                    required=False, max_len=1000)
    first_filled_at = text(t.original_pharmacy, "original_pharmacy",
                           "Where the original was first filled", required=False, max_len=500)
    dispensed_on = t.original_dispensed_on
    if dispensed_on is not None and not isinstance(dispensed_on, dt.date):
        raise ValidationError("The date of original dispensing is not a date.",
                              field="original_dispensed_on")
    if remaining > authorized:
        raise ValidationError(
            f"{remaining} refills cannot remain of the {authorized} authorized on the "
            "original.", field="refills_remaining")
    if dispensed_on is None and remaining != authorized:
        raise ValidationError(
            "The original was never dispensed, so all its refills remain.",
            field="refills_remaining")
    # a first fill here of an original dispensed before is one of its refills
    refills_here = max(remaining - (1 if dispensed_on is not None else 0), 0)
    draft = dataclasses.replace(t.draft, refills_authorized=refills_here)

    def body(w: uow.Work) -> PrescriptionInfo:
        s = w.session
        settings = _settings_of(s)
        chosen = s.get(Product, draft.product_id) if draft.product_id else None
        if chosen is not None and chosen.schedule in CONTROLLED_III_V \
                and authorized > MAX_REFILLS_III_V:
            raise ValidationError(
                f"A Schedule {chosen.schedule.value} prescription has at most "
                f"{MAX_REFILLS_III_V} refills (21 CFR 1306.22(a)).",
                field="refills_authorized_original")
        values, product, _ = _validate(s, w.actor, draft, settings)
        schedule = product.schedule
        parties = _pharmacy(t.pharmacy, controlled=schedule.controlled)
        if dispensed_on is not None:
            if dispensed_on < values["date_written"]:
                raise ValidationError("The original cannot have been dispensed before it was "
                                      "written.", field="original_dispensed_on")
            if dispensed_on > clock.today():
                raise ValidationError("The date of original dispensing cannot be in the "
                                      "future.", field="original_dispensed_on")
        if schedule is Schedule.II and dispensed_on is not None:
            raise ValidationError(
                "A Schedule II prescription is transferred only for its initial filling, "
                "never after any of it was dispensed (21 CFR 1306.08(e)).",
                field="original_dispensed_on")
        if dispensed_on is not None and remaining == 0:
            raise ValidationError(
                "No refills remain on the original: there is nothing to transfer (the patient "
                "needs a new prescription).", field="refills_remaining")
        if dispensed_on is not None and authorized - remaining > 0 and not previous:
            raise ValidationError(
                f"{authorized - remaining} refill(s) of the original were used: record the "
                "dates and locations of the previous refills (21 CFR 1306.25(b)(3)(iv)).",
                field="previous_refills")
        if schedule.controlled and dispensed_on is None and not values["electronic"]:
            raise ValidationError(
                "A controlled prescription transferred for its initial filling is an "
                "electronic prescription, and stays one (21 CFR 1306.08(e), (g)).",
                field="electronic")
        _check_multiple_schedule_ii(s, values, product, None)
        rx = Prescription(
            id=uuid.uuid4(), **values, rx_number=next_rx_number(s), status=RxStatus.NEW,
            created_by=w.staff_id, request_id=request_id, updated_by=w.actor.username)
        dea = f", DEA {parties['pharmacy_dea']}" if parties["pharmacy_dea"] else ""
        rx.notes = _append_note(
            rx.notes, "Transferred in",
            f"from {parties['pharmacy_name']}, {parties['pharmacy_address']}{dea}, their Rx "
            f"{original}; transferred by {parties['other_pharmacist']}", w.actor)
        s.add(rx)
        s.flush()
        s.add(PrescriptionTransfer(
            id=uuid.uuid4(), prescription_id=rx.id, direction="in",
            pharmacist_id=w.staff_id, transferred_at=clock.now(), request_id=uuid.uuid4(),
            original_rx_number=original, original_dispensed_on=dispensed_on,
            refills_authorized_original=authorized, refills_remaining=remaining,
            previous_refills=previous, original_pharmacy=first_filled_at, **parties))
        s.flush()
        return rx_info(s, rx)

    return uow.write(sf, actor, Perm.TRANSFER, body, request_id=request_id,
                     operation="prescriptions.transfer_in", replay=_replay_rx)


__all__ = ["OtherPharmacy", "TransferIn", "transfer_in", "transfer_out"]
