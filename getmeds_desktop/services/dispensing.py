"""Dispensing: FEFO lot allocation, safety warnings, and the one transaction that
writes the fill, its ledger movements, the controlled register and the audit.

Never oversells: the available lots are locked (SELECT ... FOR UPDATE on
PostgreSQL; SQLite's single writer holds the write lock from BEGIN IMMEDIATE)
before they are counted, and the database's CHECK on the lot balance refuses
anything that would still go below zero.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import (
    Dispense,
    DispenseWarning,
    LotStatus,
    MovementKind,
    Patient,
    PatientAllergy,
    Prescription,
    Product,
    ProductDrugClass,
    ProductIngredient,
    RxStatus,
    Staff,
    StockLot,
    StockMovement,
    WarningKind,
)
from . import clock
from ._common import constraint_of, text, whole_number
from .context import Actor, Perm, require
from .errors import (
    InsufficientStock,
    InvalidState,
    NotFound,
    StaleEdit,
    ValidationError,
    WarningsNeedAcknowledgement,
)
from .prescriptions import OPEN_STATUSES, PrescriptionInfo, _settings_of, fill_problem, rx_info


@dataclasses.dataclass(frozen=True)
class SafetyWarning:
    kind: WarningKind
    key: str  # stable: the acknowledgement is given for this key
    message: str


@dataclasses.dataclass(frozen=True)
class Allocation:
    lot_id: uuid.UUID
    lot_number: str
    expiry_date: dt.date
    quantity: int


@dataclasses.dataclass(frozen=True)
class DispensePreview:
    prescription: PrescriptionInfo
    fill_number: int
    part: int
    quantity: int
    available: int
    allocations: tuple[Allocation, ...]
    warnings: tuple[SafetyWarning, ...]
    allergies: tuple[str, ...]
    problem: str | None  # why it cannot be filled at all, or None

    @property
    def short(self) -> int:
        return max(self.quantity - self.available, 0)

    @property
    def is_refill(self) -> bool:
        return self.fill_number > 0 and self.part == 1


@dataclasses.dataclass(frozen=True)
class DispenseRequest:
    prescription_id: uuid.UUID
    request_id: uuid.UUID
    quantity: int | None = None  # default: the prescribed (or owed) quantity
    allow_partial: bool = False
    acknowledgements: Mapping[str, str] = dataclasses.field(default_factory=dict)
    expected_version: int | None = None
    notes: str | None = None


@dataclasses.dataclass(frozen=True)
class DispenseResult:
    dispense_id: uuid.UUID
    prescription_id: uuid.UUID
    rx_number: int
    fill_number: int
    part: int
    quantity: int
    owed_after: int
    allocations: tuple[Allocation, ...]
    acknowledged: tuple[str, ...]
    dispensed_at: dt.datetime
    pharmacist: str
    replayed: bool = False  # True when the request id had already been carried out


# ------------------------------------------------------------------ warnings


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", s.lower()).split())


def _word_prefix(needle: str, hay: str) -> bool:
    """``needle`` starts a word run of ``hay`` ('penicillin' in 'penicillins [cs]')."""
    return bool(needle) and (" " + hay).find(" " + needle) >= 0


def allergy_matches(allergen: str, names: list[str]) -> str | None:
    """The ingredient or drug class an allergy matches, or None."""
    a = _norm(allergen)
    for name in names:
        n = _norm(name)
        if a == n or _word_prefix(a, n) or _word_prefix(n, a):
            return name
    return None


def _ingredients(s: Session, product_id: uuid.UUID) -> list[str]:
    return list(s.scalars(sa.select(ProductIngredient.name).where(
        ProductIngredient.product_id == product_id)))


def _classes(s: Session, product_id: uuid.UUID) -> list[str]:
    return list(s.scalars(sa.select(ProductDrugClass.name).where(
        ProductDrugClass.product_id == product_id)))


def safety_warnings(
    s: Session, rx: Prescription, product: Product, part: int, now: dt.datetime,
    early_percent: int,
) -> list[SafetyWarning]:
    warnings: list[SafetyWarning] = []
    ingredients = _ingredients(s, product.id) or [product.name]
    classes = _classes(s, product.id)

    for allergy in s.scalars(sa.select(PatientAllergy).where(
            PatientAllergy.patient_id == rx.patient_id).order_by(PatientAllergy.allergen)):
        hit = allergy_matches(allergy.allergen, ingredients + classes)
        if hit:
            reaction = f" ({allergy.reaction})" if allergy.reaction else ""
            warnings.append(SafetyWarning(
                WarningKind.ALLERGY, f"allergy:{_norm(allergy.allergen)}",
                f"Allergy: the patient is allergic to {allergy.allergen}{reaction}; "
                f"{product.name} contains or belongs to {hit}."))

    # Duplicate therapy: another active prescription sharing an ingredient.
    lower_ings = [i.lower() for i in ingredients]
    others = s.execute(
        sa.select(Prescription.rx_number, Prescription.status, Product.name,
                  Prescription.refills_authorized, Prescription.id)
        .join(Product, Product.id == Prescription.product_id)
        .join(ProductIngredient, ProductIngredient.product_id == Product.id)
        .where(
            Prescription.patient_id == rx.patient_id,
            Prescription.id != rx.id,
            Prescription.status.in_((*OPEN_STATUSES, RxStatus.ON_HOLD, RxStatus.DISPENSED)),
            sa.func.lower(ProductIngredient.name).in_(lower_ings),
        )
        .distinct()
        .order_by(Prescription.rx_number)
    ).all()
    settings = _settings_of(s)
    today = now.astimezone().date()
    for number, status, name, refills, other_id in others:
        if status is RxStatus.DISPENSED:
            other = rx_info(s, s.get(Prescription, other_id), settings)
            if other.refills_left <= 0 or other.expired_on(today):
                continue  # finished therapy, not a duplicate
        warnings.append(SafetyWarning(
            WarningKind.DUPLICATE_THERAPY, f"duplicate:{number}",
            f"Duplicate therapy: the patient also has Rx {number} for {name} "
            f"({status.label.lower()}) with the same active ingredient."))

    # Early refill of a controlled product: < N% of the last fill's supply used.
    if product.schedule.controlled and part == 1:
        last = s.execute(
            sa.select(Dispense.id, Dispense.dispensed_at, Dispense.days_supply,
                      Prescription.rx_number)
            .join(Prescription, Prescription.id == Dispense.prescription_id)
            .where(Prescription.patient_id == rx.patient_id,
                   Prescription.product_id == product.id)
            .order_by(Dispense.dispensed_at.desc())
            .limit(1)
        ).first()
        if last is not None:
            dispense_id, when, days, number = last
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            elapsed = now - when
            threshold = dt.timedelta(days=days * early_percent / 100)
            if elapsed < threshold:
                used = max(elapsed.total_seconds(), 0) / dt.timedelta(days=days).total_seconds()
                warnings.append(SafetyWarning(
                    WarningKind.EARLY_REFILL, f"early_refill:{dispense_id}",
                    f"Early refill: Rx {number} was filled {when.astimezone():%Y-%m-%d} for "
                    f"{days} days; only {used:.0%} of that supply should be used (a refill "
                    f"is due after {early_percent}%)."))
    return warnings


# ----------------------------------------------------------------- allocation


def _lots_query(product_id: uuid.UUID, day: dt.date) -> sa.Select:
    return (
        sa.select(StockLot)
        .where(
            StockLot.product_id == product_id,
            StockLot.status == LotStatus.AVAILABLE,
            StockLot.expiry_date >= day,
            StockLot.on_hand > 0,
        )
        .order_by(StockLot.expiry_date, StockLot.lot_number, StockLot.id)
    )


def allocate_fefo(lots: list[StockLot], quantity: int) -> tuple[list[Allocation], int]:
    """First-expiring-first-out over dispensable lots. Returns (allocations, available)."""
    allocations: list[Allocation] = []
    left = quantity
    available = 0
    for lot in lots:
        available += lot.on_hand
        if left > 0:
            take = min(lot.on_hand, left)
            allocations.append(Allocation(lot.id, lot.lot_number, lot.expiry_date, take))
            left -= take
    return allocations, available


def _next_fill(s: Session, rx: Prescription) -> tuple[int, int]:
    """(fill number, part) of the next dispense of this prescription."""
    row = s.execute(
        sa.select(Dispense.fill_number, Dispense.part)
        .where(Dispense.prescription_id == rx.id)
        .order_by(Dispense.fill_number.desc(), Dispense.part.desc())
        .limit(1)
    ).first()
    if row is None:
        return 0, 1
    fill, part = row
    if rx.status is RxStatus.PARTIALLY_DISPENSED and rx.owed_quantity > 0:
        return fill, part + 1
    return fill + 1, 1


def _default_quantity(rx: Prescription) -> int:
    if rx.status is RxStatus.PARTIALLY_DISPENSED and rx.owed_quantity > 0:
        return rx.owed_quantity
    return rx.quantity


def preview_dispense(
    sf: sessionmaker[Session],
    actor: Actor,
    prescription_id: uuid.UUID,
    quantity: int | None = None,
) -> DispensePreview:
    """What a dispense would do now: allocation, warnings, and any blocking problem."""
    require(actor, Perm.DISPENSE)
    with db.read_session(sf) as s:
        rx = s.get(Prescription, prescription_id)
        if rx is None:
            raise NotFound("That prescription does not exist.")
        product = s.get(Product, rx.product_id)
        assert product is not None
        settings = _settings_of(s)
        info = rx_info(s, rx, settings)
        now = clock.now()
        qty = _default_quantity(rx) if quantity is None else quantity
        fill, part = _next_fill(s, rx)
        lots = list(s.scalars(_lots_query(product.id, now.astimezone().date())))
        allocations, available = allocate_fefo(lots, qty)
        warnings = safety_warnings(s, rx, product, part, now, settings.early_refill_percent)
        allergies = tuple(s.scalars(sa.select(PatientAllergy.allergen).where(
            PatientAllergy.patient_id == rx.patient_id).order_by(PatientAllergy.allergen)))
        return DispensePreview(
            prescription=info, fill_number=fill, part=part, quantity=qty, available=available,
            allocations=tuple(allocations), warnings=tuple(warnings), allergies=allergies,
            problem=fill_problem(info, now.astimezone().date()),
        )


def _result(s: Session, d: Dispense, replayed: bool) -> DispenseResult:
    rx = s.get(Prescription, d.prescription_id)
    pharmacist = s.get(Staff, d.pharmacist_id)
    assert rx is not None and pharmacist is not None
    moves = s.execute(
        sa.select(StockMovement.lot_id, StockLot.lot_number, StockLot.expiry_date,
                  StockMovement.quantity)
        .join(StockLot, StockLot.id == StockMovement.lot_id)
        .where(StockMovement.dispense_id == d.id)
        .order_by(StockLot.expiry_date, StockLot.lot_number)
    ).all()
    acks = tuple(s.scalars(sa.select(DispenseWarning.key).where(
        DispenseWarning.dispense_id == d.id).order_by(DispenseWarning.key)))
    return DispenseResult(
        dispense_id=d.id, prescription_id=rx.id, rx_number=rx.rx_number,
        fill_number=d.fill_number, part=d.part, quantity=d.quantity, owed_after=d.owed_after,
        allocations=tuple(Allocation(lot, num, exp, -q) for lot, num, exp, q in moves),
        acknowledged=acks, dispensed_at=d.dispensed_at, pharmacist=pharmacist.username,
        replayed=replayed,
    )


def _replay(sf: sessionmaker[Session], request_id: uuid.UUID) -> DispenseResult | None:
    with db.read_session(sf) as s:
        d = s.scalar(sa.select(Dispense).where(Dispense.request_id == request_id))
        return _result(s, d, True) if d is not None else None


def dispense(sf: sessionmaker[Session], actor: Actor, req: DispenseRequest) -> DispenseResult:
    """Fill a prescription (or the owed part of a partial fill) in one transaction."""
    require(actor, Perm.DISPENSE)
    if req.quantity is not None:
        whole_number(req.quantity, "quantity", "Quantity", minimum=1)
    notes = text(req.notes, "notes", "Notes", required=False, max_len=1000)
    try:
        return _dispense(sf, actor, req, notes)
    except sa.exc.IntegrityError as exc:
        name = constraint_of(exc)
        if "request_id" in name:
            # The same request committed concurrently (a retry racing its original).
            replay = _replay(sf, req.request_id)
            if replay is not None:
                return replay
        if "on_hand_nonneg" in name:
            raise InsufficientStock(
                "The stock changed while dispensing and is no longer enough. Review the "
                "allocation and try again.", available=0, requested=req.quantity or 0,
            ) from None
        raise
    except sa.orm.exc.StaleDataError:
        raise StaleEdit("prescription", None, None) from None


def _dispense(sf: sessionmaker[Session], actor: Actor, req: DispenseRequest,
              notes: str | None) -> DispenseResult:
    with db.write_transaction(sf, actor.username) as s:
        done = s.scalar(sa.select(Dispense).where(Dispense.request_id == req.request_id))
        if done is not None:
            return _result(s, done, True)
        rx = s.scalar(sa.select(Prescription).where(
            Prescription.id == req.prescription_id).with_for_update())
        if rx is None:
            raise NotFound("That prescription does not exist.")
        if req.expected_version is not None and rx.version != req.expected_version:
            raise StaleEdit("prescription", rx.updated_by, rx.updated_at)
        product = s.scalar(sa.select(Product).where(Product.id == rx.product_id))
        assert product is not None
        settings = _settings_of(s)
        now = clock.now()
        today = now.astimezone().date()
        problem = fill_problem(rx_info(s, rx, settings), today)
        if problem:
            raise InvalidState(problem)

        fill, part = _next_fill(s, rx)
        wanted = _default_quantity(rx)
        qty = wanted if req.quantity is None else req.quantity
        if qty > wanted:
            raise ValidationError(
                f"Rx {rx.rx_number} is for {wanted} {product.unit}; more cannot be dispensed.",
                field="quantity")

        warnings = safety_warnings(s, rx, product, part, now, settings.early_refill_percent)
        reasons = {k: (v or "").strip() for k, v in req.acknowledgements.items()}
        missing = [w for w in warnings if not reasons.get(w.key)]
        if missing:
            raise WarningsNeedAcknowledgement(missing)

        lots = list(s.scalars(
            _lots_query(product.id, today).with_for_update()
            .execution_options(populate_existing=True)))
        allocations, available = allocate_fefo(lots, qty)
        if available < qty:
            if not req.allow_partial or available == 0:
                raise InsufficientStock(
                    f"Not enough stock of {product.name}: {available} {product.unit} available "
                    f"in dispensable lots, {qty} needed."
                    + (" A partial fill is possible." if available else ""),
                    available=available, requested=qty)
            qty = available
        owed_after = wanted - qty

        d = Dispense(
            prescription_id=rx.id, fill_number=fill, part=part, quantity=qty,
            owed_after=owed_after, days_supply=rx.days_supply, pharmacist_id=actor.staff_id,
            dispensed_at=now, request_id=req.request_id, notes=notes,
        )
        s.add(d)
        s.flush()
        s.add_all([
            StockMovement(lot_id=a.lot_id, kind=MovementKind.DISPENSE, quantity=-a.quantity,
                          dispense_id=d.id, staff_id=actor.staff_id, created_at=now,
                          reference=f"Rx {rx.rx_number}")
            for a in allocations
        ])
        s.add_all([
            DispenseWarning(dispense_id=d.id, kind=w.kind, key=w.key, detail=w.message[:500],
                            reason=reasons[w.key][:500], acknowledged_by=actor.staff_id)
            for w in warnings
        ])
        rx.owed_quantity = owed_after
        rx.status = RxStatus.PARTIALLY_DISPENSED if owed_after else RxStatus.DISPENSED
        rx.updated_by = actor.username
        s.flush()
        return DispenseResult(
            dispense_id=d.id, prescription_id=rx.id, rx_number=rx.rx_number, fill_number=fill,
            part=part, quantity=qty, owed_after=owed_after, allocations=tuple(allocations),
            acknowledged=tuple(sorted(w.key for w in warnings)), dispensed_at=now,
            pharmacist=actor.username,
        )


def patient_of(sf: sessionmaker[Session], prescription_id: uuid.UUID) -> uuid.UUID:
    with db.read_session(sf) as s:
        pid = s.scalar(sa.select(Prescription.patient_id).where(
            Prescription.id == prescription_id))
        if pid is None:
            raise NotFound("That prescription does not exist.")
        return pid


__all__ = [
    "Allocation",
    "DispensePreview",
    "DispenseRequest",
    "DispenseResult",
    "Patient",
    "SafetyWarning",
    "allergy_matches",
    "allocate_fefo",
    "dispense",
    "preview_dispense",
]
