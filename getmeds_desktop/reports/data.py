"""What each report shows, as rows: one function per report (or per part of one),
returning frozen dataclasses, streamed where a report can be long. Testable
without a PDF; the layout (reports.catalog) only formats these rows.

No ReportLab and no Qt here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from ..models import (
    AppSettings,
    Category,
    ControlledRegisterEntry,
    DeaFormRecord,
    Dispense,
    LegacyDispense,
    LegacyPrescription,
    LotStatus,
    MovementKind,
    Patient,
    PatientAllergy,
    PatientCondition,
    Prescriber,
    Prescription,
    PrescriptionTransfer,
    Product,
    Role,
    RxStatus,
    Schedule,
    Sex,
    Staff,
    StockLot,
    StockMovement,
    Supplier,
)
from ..services import clock, inventory, rxstate
from ..services.identifiers import format_ndc

Query = sa.Select[*tuple[Any, ...]]

STREAM: dict[str, Any] = {"yield_per": 1000}
def product_label(name: str, strength: str | None, form: str | None) -> str:
    return " ".join(x for x in (name, strength, form) if x)


@dataclasses.dataclass(frozen=True)
class Pharmacy:
    name: str
    address: str | None
    phone: str | None
    dea_number: str | None
    npi: str | None = None


# -------------------------------------------------------------------- label


@dataclasses.dataclass(frozen=True)
class LabelData:
    pharmacy: Pharmacy
    rx_number: int
    patient: str
    product: str
    directions: str
    quantity: int
    unit: str
    refills_left: int
    prescriber: str
    dispensed_at: dt.datetime
    pharmacist_initials: str
    controlled: bool
    schedule: str | None
    owed: int = 0
    verifier_initials: str | None = None  # the pharmacist who verified the fill
    ndc: str | None = None  # the dispensed product's, as printed
    # a refill's label: the date of the initial filling (21 CFR 1306.14(a), 1306.24(a))
    initial_fill: dt.datetime | None = None
    discard_by: dt.date | None = None  # beyond-use date: lot expiry or the setting's months

    @property
    def transfer_caution(self) -> bool:
        """21 CFR 290.5: the federal transfer caution on Schedule II, III and IV."""
        return self.schedule in ("II", "III", "IV")


def label_data(s: Session, dispense_id: uuid.UUID, pharmacy: Pharmacy) -> LabelData:
    """What the label of one dispense prints (NotFound when there is no such dispense)."""
    from ..services.errors import NotFound

    row = s.execute(
        sa.select(Dispense, Prescription, Patient, Product, Prescriber, Staff)
        .join(Prescription, Prescription.id == Dispense.prescription_id)
        .join(Patient, Patient.id == Prescription.patient_id)
        # the product dispensed (another package of the same drug, or the prescribed one)
        .join(Product, Product.id == sa.func.coalesce(Dispense.dispensed_product_id,
                                                      Prescription.product_id))
        .join(Prescriber, Prescriber.id == Prescription.prescriber_id)
        .join(Staff, Staff.id == Dispense.pharmacist_id)
        .where(Dispense.id == dispense_id)).first()
    if row is None:
        raise NotFound("That dispense does not exist.", field="dispense")
    d, rx, patient, product, prescriber, pharmacist = row
    fills = s.scalar(sa.select(sa.func.max(Dispense.fill_number)).where(
        Dispense.prescription_id == rx.id, Dispense.dispensed_at <= d.dispensed_at,
        Dispense.status != "returned")) or 0
    def initials_of(name: str) -> str:
        return "".join(w[0] for w in name.split() if w).upper()[:3]

    initials = initials_of(pharmacist.full_name)
    verifier = s.get(Staff, d.verified_by) if d.verified_by else None
    controlled = product.schedule.controlled
    initial = None
    if d.fill_number > 0 or d.part > 1:
        initial = s.scalar(sa.select(sa.func.min(Dispense.dispensed_at)).where(
            Dispense.prescription_id == rx.id, Dispense.status != "returned"))
    # transferred in after the original was dispensed elsewhere: every fill here
    # is a refill, and the initial filling is the original's (21 CFR 1306.24(a))
    first_elsewhere = s.scalar(sa.select(PrescriptionTransfer.original_dispensed_on).where(
        PrescriptionTransfer.prescription_id == rx.id, PrescriptionTransfer.direction == "in"))
    if first_elsewhere is not None:
        initial = dt.datetime.combine(first_elsewhere, dt.time(12)).astimezone()
    lot_expiry = s.scalar(sa.select(sa.func.min(StockLot.expiry_date))
                          .join(StockMovement, StockMovement.lot_id == StockLot.id)
                          .where(StockMovement.dispense_id == d.id,
                                 StockMovement.kind == "dispense"))
    months = s.scalar(sa.select(AppSettings.discard_after_months).where(AppSettings.id == 1))
    filled_on = clock.local(d.dispensed_at).date()
    discard = clock.add_months(filled_on, months or 12)
    if lot_expiry is not None:
        discard = min(discard, lot_expiry)
    return LabelData(
        pharmacy=pharmacy, rx_number=rx.rx_number,
        patient=f"{patient.first_name} {patient.last_name}",
        product=product_label(product.name, product.strength, product.dosage_form),
        directions=rx.sig, quantity=d.quantity, unit=product.unit,
        refills_left=rxstate.refills_left(rx.refills_authorized, fills),
        prescriber=prescriber.display_name, dispensed_at=d.dispensed_at,
        pharmacist_initials=initials, controlled=controlled,
        schedule=product.schedule.value if controlled else None, owed=d.owed_after,
        verifier_initials=initials_of(verifier.full_name) if verifier else None,
        ndc=format_ndc(product.ndc) or None,
        initial_fill=initial if initial is not None and initial < d.dispensed_at else None,
        discard_by=discard)


# ---------------------------------------------------------------- inventory


@dataclasses.dataclass(frozen=True)
class CategoryStock:
    id: uuid.UUID | None  # None: products without a category
    name: str
    products: int
    units: int
    value: decimal.Decimal


@dataclasses.dataclass(frozen=True)
class StockLine:
    category_id: uuid.UUID | None
    product: str
    ndc: str | None
    manufacturer: str | None
    on_hand: int
    value: decimal.Decimal


def stock_by_category(s: Session) -> list[CategoryStock]:
    """Products with stock, units and value at cost per category, by category name."""
    value = sa.func.sum(StockLot.on_hand * StockLot.unit_cost)
    rows = s.execute(
        sa.select(Category.id, Category.name, sa.func.count(sa.distinct(Product.id)),
                  sa.func.sum(StockLot.on_hand), value)
        .select_from(StockLot)
        .join(Product, Product.id == StockLot.product_id)
        .outerjoin(Category, Category.id == Product.category_id)
        .where(StockLot.on_hand > 0)
        .group_by(Category.id, Category.name)
        .order_by(Category.name)
    ).all()
    return [CategoryStock(cid, name or "Uncategorised", int(n), int(units or 0),
                          decimal.Decimal(v or 0)) for cid, name, n, units, v in rows]


def stock_lines(s: Session) -> Iterator[StockLine]:
    """Every product with stock, in the order of :func:`stock_by_category`."""
    value = sa.func.sum(StockLot.on_hand * StockLot.unit_cost)
    rows = s.execute(
        sa.select(Product.category_id, Product.name, Product.strength, Product.dosage_form,
                  Product.ndc, Product.manufacturer, sa.func.sum(StockLot.on_hand), value)
        .join(StockLot, StockLot.product_id == Product.id)
        .outerjoin(Category, Category.id == Product.category_id)
        .where(StockLot.on_hand > 0)
        .group_by(Product.id, Category.name, Product.category_id, Product.name,
                  Product.strength, Product.dosage_form, Product.ndc, Product.manufacturer)
        .order_by(Category.name, Product.name, Product.strength, Product.id)
        .execution_options(**STREAM))
    for cid, name, strength, form, ndc, maker, qty, val in rows:
        yield StockLine(cid, product_label(name, strength, form), ndc, maker, int(qty),
                        decimal.Decimal(val or 0))


# ------------------------------------------------------------------ reorder


@dataclasses.dataclass(frozen=True)
class ReorderLine:
    product: str
    on_hand: int
    reorder_level: int
    pack_size: int
    suggested: int
    last_supplier: str | None


def reorder_count(s: Session) -> int:
    return s.scalar(sa.select(sa.func.count()).select_from(
        inventory.low_stock_query().subquery())) or 0


def reorder_lines(s: Session) -> Iterator[ReorderLine]:
    for r in s.execute(inventory.low_stock_query().execution_options(**STREAM)):
        yield ReorderLine(
            product_label(r.name, r.strength, r.dosage_form), r.on_hand, r.reorder_level,
            r.pack_size, inventory.suggested_order(r.on_hand, r.reorder_level,
                                                   r.reorder_quantity, r.pack_size),
            r.last_supplier)


# ------------------------------------------------------------------- expiry


@dataclasses.dataclass(frozen=True)
class LotLine:
    product: str
    lot_number: str
    expiry_date: dt.date
    status: LotStatus
    on_hand: int
    value: decimal.Decimal


def _lot_lines(s: Session, q: Query) -> Iterator[LotLine]:
    for _lot, _pid, name, strength, lot_no, expiry, status, on_hand, cost in s.execute(
            q.execution_options(**STREAM)):
        yield LotLine(product_label(name, strength, None), lot_no, expiry, status, on_hand,
                      decimal.Decimal(cost) * on_hand)


def expired_lots(s: Session, today: dt.date) -> Iterator[LotLine]:
    return _lot_lines(s, inventory.expired_query(today))


def expiring_lots(s: Session, days: int, today: dt.date) -> Iterator[LotLine]:
    return _lot_lines(s, inventory.expiring_query(days, today))


# ---------------------------------------------------------- dispensing log


@dataclasses.dataclass(frozen=True)
class DispenseLine:
    dispensed_at: dt.datetime
    rx_number: int
    patient: str  # "Last, First"
    product: str
    quantity: int
    fill_number: int
    lots: str
    pharmacist: str


def dispenses_per_day(s: Session, lo: dt.datetime, hi: dt.datetime
                      ) -> tuple[dict[dt.date, int], int]:
    """Dispenses per local calendar day in ``[lo, hi)``, and the units dispensed."""
    per_day: dict[dt.date, int] = {}
    units = 0
    for when, qty in s.execute(sa.select(Dispense.dispensed_at, Dispense.quantity).where(
            Dispense.dispensed_at >= lo, Dispense.dispensed_at < hi).execution_options(
            **STREAM)):
        day = clock.local(when).date()
        per_day[day] = per_day.get(day, 0) + 1
        units += qty
    return per_day, units


def _lots_of_dispense(dialect: str) -> sa.ScalarSelect[Any]:
    agg = (sa.func.string_agg(StockLot.lot_number, sa.literal_column("', '"))
           if dialect == "postgresql" else sa.func.group_concat(StockLot.lot_number, ", "))
    return (sa.select(agg).select_from(StockMovement)
            .join(StockLot, StockLot.id == StockMovement.lot_id)
            .where(StockMovement.dispense_id == Dispense.id)
            .correlate(Dispense).scalar_subquery())


def dispense_lines(s: Session, lo: dt.datetime, hi: dt.datetime) -> Iterator[DispenseLine]:
    q = (
        sa.select(Dispense.dispensed_at, Prescription.rx_number,
                  Patient.last_name, Patient.first_name, Product.name, Product.strength,
                  Dispense.quantity, Dispense.fill_number,
                  _lots_of_dispense(s.get_bind().dialect.name), Staff.full_name)
        .join(Prescription, Prescription.id == Dispense.prescription_id)
        .join(Patient, Patient.id == Prescription.patient_id)
        .join(Product, Product.id == Prescription.product_id)
        .join(Staff, Staff.id == Dispense.pharmacist_id)
        .where(Dispense.dispensed_at >= lo, Dispense.dispensed_at < hi)
        .order_by(Dispense.dispensed_at, Dispense.id)
        .execution_options(**STREAM))
    for when, rx, last, first, name, strength, qty, fill, lots, who in s.execute(q):
        yield DispenseLine(when, rx, f"{last}, {first}", product_label(name, strength, None),
                           qty, fill, lots or "", who)


@dataclasses.dataclass(frozen=True)
class Buckets:
    title: str
    labels: list[str]
    values: list[int]


def chart_buckets(per_day: dict[dt.date, int], start: dt.date, end: dt.date) -> Buckets:
    """Counts per day for up to two months, per week up to two years, else per
    month over the months that have any."""
    span = (end - start).days + 1
    labels: list[str] = []
    values: list[int] = []
    if span <= 62:
        for i in range(span):
            d = start + dt.timedelta(days=i)
            labels.append(d.strftime("%d") if i % max(span // 15, 1) == 0 else "")
            values.append(per_day.get(d, 0))
        return Buckets("Dispenses per day", labels, values)
    if span <= 731:
        weeks: dict[dt.date, int] = {}
        for d, n in per_day.items():
            monday = d - dt.timedelta(days=d.weekday())
            weeks[monday] = weeks.get(monday, 0) + n
        monday = start - dt.timedelta(days=start.weekday())
        i = 0
        while monday <= end:
            labels.append(monday.strftime("%b %d") if i % 4 == 0 else "")
            values.append(weeks.get(monday, 0))
            monday += dt.timedelta(days=7)
            i += 1
        return Buckets("Dispenses per week", labels, values)
    months: dict[tuple[int, int], int] = {}
    for d, n in per_day.items():
        months[(d.year, d.month)] = months.get((d.year, d.month), 0) + n
    first, last = (min(months), max(months)) if months else (
        (start.year, start.month), (start.year, start.month))
    year, month = first
    step = max(((last[0] - first[0]) * 12 + last[1] - first[1] + 1) // 12, 1)
    i = 0
    while (year, month) <= last:
        labels.append(f"{dt.date(year, month, 1):%b %Y}" if i % step == 0 else "")
        values.append(months.get((year, month), 0))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        i += 1
    return Buckets("Dispenses per month", labels, values)


# ------------------------------------------------------- controlled register


@dataclasses.dataclass(frozen=True)
class RegisterProduct:
    id: uuid.UUID
    label: str
    ndc: str | None
    schedule: Schedule
    unit: str


@dataclasses.dataclass(frozen=True)
class RegisterLine:
    recorded_at: dt.datetime
    kind: MovementKind
    lot_number: str
    quantity: int
    balance: int
    reason: str | None
    reference: str | None
    supplier: str | None
    supplier_dea: str | None
    rx_number: int | None
    patient: str | None  # "Last, First" of a dispense
    by: str
    order_form: str | None = None  # a receipt's DEA Form 222 / CSOS order number
    dea_form: str | None = None  # "41" or "106": the record it was posted from


_reg = ControlledRegisterEntry


def register_products(s: Session, register: str, lo: dt.datetime, hi: dt.datetime
                      ) -> list[RegisterProduct]:
    """The products of that register ("II" or "III-V") with entries in [lo, hi)
    or a balance at ``lo``: a product long gone (balance 0, nothing in the
    period) is not listed."""
    last_before = (sa.select(_reg.product_id, sa.func.max(_reg.id).label("last"))
                   .where(_reg.register == register, _reg.recorded_at < lo)
                   .group_by(_reg.product_id).subquery())
    with_balance = (sa.select(last_before.c.product_id)
                    .join(_reg, _reg.id == last_before.c.last)
                    .where(_reg.balance_after != 0))
    moved = sa.select(_reg.product_id).where(_reg.register == register,
                                             _reg.recorded_at >= lo, _reg.recorded_at < hi)
    rows = s.execute(
        sa.select(Product.id, Product.name, Product.strength, Product.dosage_form, Product.ndc,
                  Product.schedule, Product.unit)
        .where(sa.or_(Product.id.in_(moved), Product.id.in_(with_balance)))
        .order_by(Product.name, Product.strength, Product.id)).all()
    return [RegisterProduct(pid, product_label(name, strength, form), ndc, schedule, unit)
            for pid, name, strength, form, ndc, schedule, unit in rows]


def register_opening(s: Session, product_id: uuid.UUID, lo: dt.datetime) -> int:
    return s.scalar(
        sa.select(_reg.balance_after).where(_reg.product_id == product_id,
                                            _reg.recorded_at < lo)
        .order_by(_reg.id.desc()).limit(1)) or 0


def register_last_count(s: Session, product_id: uuid.UUID, hi: dt.datetime
                        ) -> tuple[dt.datetime, int] | None:
    """When the product was last counted before ``hi``, and the variance found."""
    row = s.execute(
        sa.select(_reg.recorded_at, _reg.quantity).where(
            _reg.product_id == product_id, _reg.kind == MovementKind.COUNT,
            _reg.recorded_at < hi)
        .order_by(_reg.id.desc()).limit(1)).first()
    return (row[0], row[1]) if row is not None else None


def register_lines(s: Session, product_id: uuid.UUID, lo: dt.datetime, hi: dt.datetime
                   ) -> Iterator[RegisterLine]:
    rx_patient = aliased(Patient)
    q = (
        sa.select(_reg.recorded_at, _reg.kind, StockLot.lot_number, _reg.quantity,
                  _reg.balance_after, StockMovement.reason, StockMovement.reference,
                  Supplier.name,
                  sa.func.coalesce(StockMovement.supplier_dea, Supplier.dea_number),
                  Prescription.rx_number, rx_patient.last_name, rx_patient.first_name,
                  Staff.full_name, StockMovement.order_form, DeaFormRecord.form)
        .join(StockMovement, StockMovement.id == _reg.movement_id)
        .outerjoin(DeaFormRecord, DeaFormRecord.id == StockMovement.dea_form_id)
        .join(StockLot, StockLot.id == _reg.lot_id)
        .join(Staff, Staff.id == _reg.staff_id)
        .outerjoin(Supplier, Supplier.id == StockMovement.supplier_id)
        .outerjoin(Dispense, Dispense.id == StockMovement.dispense_id)
        .outerjoin(Prescription, Prescription.id == Dispense.prescription_id)
        .outerjoin(rx_patient, rx_patient.id == Prescription.patient_id)
        .where(_reg.product_id == product_id, _reg.recorded_at >= lo, _reg.recorded_at < hi)
        .order_by(_reg.id)
        .execution_options(**STREAM))
    for (when, kind, lot_no, qty, balance, reason, ref, sup, sup_dea, rx, last, first,
         who, order_form, dea_form) in s.execute(q):
        yield RegisterLine(when, kind, lot_no, qty, balance, reason, ref, sup, sup_dea, rx,
                           f"{last}, {first}" if last else None, who, order_form, dea_form)


# ---------------------------------------------------------- patient history


@dataclasses.dataclass(frozen=True)
class HistoryPrescription:
    rx_number: int
    medicine: str
    sig: str
    prescriber: str
    status: RxStatus


@dataclasses.dataclass(frozen=True)
class HistoryDispense:
    dispensed_at: dt.datetime
    rx_number: int
    medicine: str
    quantity: int
    sig: str
    pharmacist: str


@dataclasses.dataclass(frozen=True)
class EarlierDispense:
    dispensed_at: dt.datetime | None
    drug: str
    quantity: int
    instructions: str | None


@dataclasses.dataclass(frozen=True)
class EarlierPrescription:
    prescribed_on: dt.date | None
    text: str
    notes: str | None


@dataclasses.dataclass(frozen=True)
class PatientHistory:
    name: str
    date_of_birth: dt.date
    address: str
    allergies: tuple[str, ...]  # "Penicillin (hives)"
    conditions: tuple[str, ...]
    prescriptions: tuple[HistoryPrescription, ...]  # not cancelled, newest first
    earlier_dispenses: tuple[EarlierDispense, ...]  # from the previous system
    earlier_prescriptions: tuple[EarlierPrescription, ...]


def patient_history(s: Session, patient_id: uuid.UUID) -> PatientHistory:
    patient = s.get(Patient, patient_id)
    assert patient is not None  # the report's parameters were checked
    allergies = s.scalars(sa.select(PatientAllergy).where(
        PatientAllergy.patient_id == patient_id).order_by(PatientAllergy.allergen)).all()
    conditions = s.scalars(sa.select(PatientCondition.name).where(
        PatientCondition.patient_id == patient_id).order_by(PatientCondition.name)).all()
    rxs = s.execute(
        sa.select(Prescription.rx_number, Product.name, Product.strength, Prescription.sig,
                  Prescription.status, Prescriber.first_name, Prescriber.last_name)
        .join(Product, Product.id == Prescription.product_id)
        .join(Prescriber, Prescriber.id == Prescription.prescriber_id)
        .where(Prescription.patient_id == patient_id,
               Prescription.status != RxStatus.CANCELLED)
        .order_by(Prescription.date_written.desc())).all()
    legacy = s.execute(
        sa.select(LegacyDispense.dispensed_at, LegacyDispense.drug_text,
                  LegacyDispense.quantity, LegacyDispense.instructions)
        .where(LegacyDispense.patient_id == patient_id)
        .order_by(LegacyDispense.dispensed_at.desc())).all()
    old_rx = s.execute(
        sa.select(LegacyPrescription.prescribed_on, LegacyPrescription.text,
                  LegacyPrescription.description)
        .where(LegacyPrescription.patient_id == patient_id)
        .order_by(LegacyPrescription.prescribed_on.desc())).all()
    town = " ".join(y for y in (patient.city, patient.state, patient.postal_code) if y)
    return PatientHistory(
        name=f"{patient.first_name} {patient.last_name}",
        date_of_birth=patient.date_of_birth,
        address=", ".join(x for x in (patient.address_line, town) if x),
        allergies=tuple(a.allergen + (f" ({a.reaction})" if a.reaction else "")
                        for a in allergies),
        conditions=tuple(conditions),
        prescriptions=tuple(HistoryPrescription(n, product_label(name, strength, None), sig,
                                                f"{pf} {pl}", status)
                            for n, name, strength, sig, status, pf, pl in rxs),
        earlier_dispenses=tuple(EarlierDispense(*r) for r in legacy),
        earlier_prescriptions=tuple(EarlierPrescription(*r) for r in old_rx),
    )


def patient_dispenses(s: Session, patient_id: uuid.UUID) -> Iterator[HistoryDispense]:
    q = (
        sa.select(Dispense.dispensed_at, Prescription.rx_number, Product.name, Product.strength,
                  Dispense.quantity, Prescription.sig, Staff.full_name)
        .join(Prescription, Prescription.id == Dispense.prescription_id)
        .join(Product, Product.id == Prescription.product_id)
        .join(Staff, Staff.id == Dispense.pharmacist_id)
        .where(Prescription.patient_id == patient_id)
        .order_by(Dispense.dispensed_at.desc())
        .execution_options(**STREAM))
    for when, n, name, strength, qty, sig, who in s.execute(q):
        yield HistoryDispense(when, n, product_label(name, strength, None), qty, sig, who)


# ------------------------------------------------------------ demographics

BANDS: tuple[tuple[int, int, str], ...] = (
    (0, 17, "0-17"), (18, 34, "18-34"), (35, 49, "35-49"), (50, 64, "50-64"),
    (65, 79, "65-79"), (80, 200, "80+"))


def patients_by_age_and_sex(s: Session, today: dt.date) -> dict[tuple[str, Sex], int]:
    """Active patients per (age band, sex), every pair present."""
    counts = {(b[2], sex): 0 for b in BANDS for sex in Sex}
    for dob, sex in s.execute(sa.select(Patient.date_of_birth, Patient.sex).where(
            Patient.active.is_(True)).execution_options(**STREAM)):
        age = today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))
        band = next(b[2] for b in BANDS if b[0] <= age <= b[1])
        counts[(band, sex)] += 1
    return counts


# -------------------------------------------------------------------- staff


@dataclasses.dataclass(frozen=True)
class StaffLine:
    name: str
    username: str
    role: Role
    licence_number: str | None
    dea_number: str | None
    active: bool


def staff_lines(s: Session) -> list[StaffLine]:
    return [StaffLine(x.full_name, x.username, x.role, x.licence_number, x.dea_number,
                      x.active)
            for x in s.scalars(sa.select(Staff).order_by(Staff.role, Staff.full_name))]


