"""The reports: each is a generator of flowables over streamed query results."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph
from sqlalchemy.orm import Session

from ..models import (
    AuditEntry,
    Category,
    ControlledRegisterEntry,
    Dispense,
    LegacyDispense,
    LegacyPrescription,
    MovementKind,
    Patient,
    PatientAllergy,
    PatientCondition,
    Prescriber,
    Prescription,
    Product,
    ProductStock,
    Role,
    Schedule,
    Sex,
    Staff,
    StockLot,
    StockMovement,
    Supplier,
)
from ..services import clock, inventory
from ..services._common import format_ndc
from .base import (
    ACCENT,
    FONT,
    FONT_BOLD,
    MUTED,
    money,
    number,
    section,
    spacer,
    styles,
    table_chunks,
)

STREAM = {"yield_per": 1000}


@dataclasses.dataclass(frozen=True)
class ReportParams:
    start: dt.date | None = None
    end: dt.date | None = None  # inclusive
    days: int | None = None
    schedule: str | None = None  # "II" or "III-V"
    patient_id: uuid.UUID | None = None
    dispense_id: uuid.UUID | None = None


def utc_range(p: ReportParams) -> tuple[dt.datetime, dt.datetime]:
    """Local calendar days [start, end] as a UTC [from, to) range."""
    assert p.start is not None and p.end is not None
    return clock.day_range(p.start, p.end)


def product_label(name: str, strength: str | None, form: str | None) -> str:
    return " ".join(x for x in (name, strength, form) if x)


def _summary(*pairs: tuple[str, str]) -> Flowable:
    st = styles()
    text = " &nbsp;·&nbsp; ".join(f"{k}: <b>{v}</b>" for k, v in pairs)
    return Paragraph(text, st["body"])


# ------------------------------------------------------------------ charts


def bar_chart(labels: list[str], values: list[float], *, width: float, height: float,
              horizontal: bool = False, value_format: str = "{:,.0f}",
              title: str = "") -> Drawing:
    d = Drawing(width, height)
    chart = HorizontalBarChart() if horizontal else VerticalBarChart()
    left = 115 if horizontal else 40
    chart.x, chart.y = left, 28 if not horizontal else 18
    chart.width = width - left - 20
    chart.height = height - (48 if not horizontal else 36)
    chart.data = [values or [0]]
    chart.categoryAxis.categoryNames = labels or [""]
    chart.categoryAxis.labels.fontName = FONT
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontName = FONT
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labelTextFormat = lambda v: value_format.format(v)
    chart.valueAxis.gridStrokeColor = colors.HexColor("#e0e0e0")
    chart.valueAxis.visibleGrid = True
    chart.bars[0].fillColor = ACCENT
    chart.bars[0].strokeColor = None
    chart.barSpacing = 1
    if not horizontal:
        chart.categoryAxis.labels.angle = 0
        chart.categoryAxis.labels.dy = -4
    else:
        chart.categoryAxis.labels.dx = -4
        chart.categoryAxis.labels.textAnchor = "end"
    d.add(chart)
    if title:
        d.add(String(left, height - 10, title, fontName=FONT_BOLD, fontSize=8.5,
                     fillColor=colors.black))
    return d


# ---------------------------------------------------------------- inventory


def inventory_report(s: Session, p: ReportParams, doc_width: float) -> Iterator[Flowable]:
    value = sa.func.sum(StockLot.on_hand * StockLot.unit_cost)
    units = sa.func.sum(StockLot.on_hand)
    cats = s.execute(
        sa.select(Category.id, Category.name, sa.func.count(sa.distinct(Product.id)), units,
                  value)
        .select_from(StockLot)
        .join(Product, Product.id == StockLot.product_id)
        .outerjoin(Category, Category.id == Product.category_id)
        .where(StockLot.on_hand > 0)
        .group_by(Category.id, Category.name)
        .order_by(Category.name)
    ).all()
    grand = sum((decimal.Decimal(v or 0) for *_, v in cats), decimal.Decimal(0))
    yield _summary(("Products with stock", number(sum(c[2] for c in cats))),
                   ("Units on hand", number(sum(int(c[3] or 0) for c in cats))),
                   ("Value at cost", money(grand)))
    yield spacer(6)
    by_value = sorted(cats, key=lambda c: c[4] or 0)
    yield bar_chart([c[1] or "Uncategorised" for c in by_value],
                    [float(c[4] or 0) / 1000 for c in by_value], width=doc_width,
                    height=max(120, 16 * len(cats) + 50), horizontal=True,
                    title="Value at cost by category (thousand USD)")
    widths = [doc_width * f for f in (0.40, 0.14, 0.24, 0.10, 0.12)]
    header = ["Product", "NDC", "Manufacturer", "On hand", "Value at cost"]
    aligns = ["W", "L", "W", "R", "R"]
    # One pass over the stock, in category order; the category totals are known
    # from the aggregate above.
    lot_value = sa.func.sum(StockLot.on_hand * StockLot.unit_cost)
    rows = s.execute(
        sa.select(Product.category_id, Product.name, Product.strength, Product.dosage_form,
                  Product.ndc, Product.manufacturer, sa.func.sum(StockLot.on_hand), lot_value)
        .join(StockLot, StockLot.product_id == Product.id)
        .outerjoin(Category, Category.id == Product.category_id)
        .where(StockLot.on_hand > 0)
        .group_by(Product.id, Category.name, Product.category_id, Product.name,
                  Product.strength, Product.dosage_form, Product.ndc, Product.manufacturer)
        .order_by(Category.name, Product.name, Product.strength, Product.id)
        .execution_options(**STREAM)
    )
    it = iter(rows)
    pending = next(it, None)
    for cat_id, cat_name, n_products, cat_units, cat_value in cats:
        yield from section(f"{cat_name or 'Uncategorised'}",
                           f"{n_products:,} products · {int(cat_units or 0):,} units · "
                           f"{money(cat_value)} at cost")

        def cells(cat_id: Any = cat_id) -> Iterator[list[Any]]:
            nonlocal pending
            while pending is not None and pending[0] == cat_id:
                _c, name, strength, form, ndc, mfr, qty, val = pending
                yield [product_label(name, strength, form), format_ndc(ndc), mfr or "",
                       number(int(qty)), money(val)]
                pending = next(it, None)

        yield from table_chunks(header, cells(), widths, aligns,
                                total=["Category total", "", "", number(int(cat_units or 0)),
                                       money(cat_value)])
    yield spacer(8)
    yield _summary(("Grand total value at cost", money(grand)))


# ------------------------------------------------------------------ reorder


def reorder_report(s: Session, p: ReportParams, doc_width: float) -> Iterator[Flowable]:
    count = s.scalar(sa.select(sa.func.count()).select_from(
        inventory.low_stock_query().subquery())) or 0
    yield _summary(("Products at or below their reorder level", number(count)))
    yield Paragraph("Suggested quantity brings stock up to the reorder level plus the reorder "
                    "quantity, in whole packs.", styles()["note"])
    yield spacer(6)
    widths = [doc_width * f for f in (0.36, 0.10, 0.10, 0.10, 0.12, 0.22)]
    header = ["Product", "On hand", "Reorder at", "Pack", "Suggested", "Last supplier"]
    aligns = ["W", "R", "R", "R", "R", "W"]
    total_units = 0

    def cells() -> Iterator[list[Any]]:
        nonlocal total_units
        for r in s.execute(inventory.low_stock_query().execution_options(**STREAM)):
            sug = inventory.suggested_order(r.on_hand, r.reorder_level, r.reorder_quantity,
                                            r.pack_size)
            total_units += sug
            yield [product_label(r.name, r.strength, r.dosage_form), number(r.on_hand),
                   number(r.reorder_level), number(r.pack_size), number(sug),
                   r.last_supplier or "—"]

    yield from table_chunks(header, cells(), widths, aligns,
                            total=lambda: [f"{count:,} products", "", "", "",
                                           number(total_units), ""])


# ------------------------------------------------------------------- expiry


def expiry_report(s: Session, p: ReportParams, doc_width: float) -> Iterator[Flowable]:
    days = p.days or 90
    today = clock.today()
    widths = [doc_width * f for f in (0.38, 0.12, 0.12, 0.12, 0.12, 0.14)]
    header = ["Product", "Lot", "Expiry", "Status", "On hand", "Value at risk"]
    aligns = ["W", "L", "L", "L", "R", "R"]
    for title, q, note in (
        ("Expired lots still on hand", inventory.expired_query(today),
         "Remove these from the shelf and write them off or return them."),
        (f"Lots expiring within {days} days", inventory.expiring_query(days, today),
         "Dispense first (FEFO does so automatically) or return before expiry."),
    ):
        yield from section(title, note)
        totals = {"lots": 0, "units": 0, "value": decimal.Decimal(0)}

        def cells(q: sa.Select = q, totals: dict = totals) -> Iterator[list[Any]]:
            for r in s.execute(q.execution_options(**STREAM)):
                lot_id, pid, name, strength, lot_no, expiry, status, on_hand, cost = r
                value = decimal.Decimal(cost) * on_hand
                totals["lots"] += 1
                totals["units"] += on_hand
                totals["value"] += value
                yield [product_label(name, strength, None), lot_no, f"{expiry:%Y-%m-%d}",
                       status.value, number(on_hand), money(value)]

        yield from table_chunks(header, cells(), widths, aligns,
                                total=lambda t=totals: [f"{t['lots']:,} lots", "", "", "",
                                                        number(t["units"]), money(t["value"])])


# ---------------------------------------------------------- dispensing log


def _lots_of_dispense(dialect: str) -> sa.ScalarSelect:
    agg = (sa.func.string_agg(StockLot.lot_number, sa.literal_column("', '"))
           if dialect == "postgresql" else sa.func.group_concat(StockLot.lot_number, ", "))
    return (sa.select(agg).select_from(StockMovement)
            .join(StockLot, StockLot.id == StockMovement.lot_id)
            .where(StockMovement.dispense_id == Dispense.id)
            .correlate(Dispense).scalar_subquery())


def dispensing_log(s: Session, p: ReportParams, doc_width: float) -> Iterator[Flowable]:
    lo, hi = utc_range(p)
    per_day: dict[dt.date, int] = {}
    units = 0
    for when, qty in s.execute(sa.select(Dispense.dispensed_at, Dispense.quantity).where(
            Dispense.dispensed_at >= lo, Dispense.dispensed_at < hi).execution_options(
            **STREAM)):
        d = when.astimezone().date()
        per_day[d] = per_day.get(d, 0) + 1
        units += qty
    total = sum(per_day.values())
    yield _summary(("Dispenses", number(total)), ("Units", number(units)),
                   ("Days with dispensing", number(len(per_day))))
    yield spacer(6)
    span = (p.end - p.start).days + 1
    labels, values = [], []
    if span <= 62:
        for i in range(span):
            d = p.start + dt.timedelta(days=i)
            labels.append(d.strftime("%d") if i % max(span // 15, 1) == 0 else "")
            values.append(per_day.get(d, 0))
        title = "Dispenses per day"
    elif span <= 731:  # up to two years: per week
        weeks: dict[dt.date, int] = {}
        for d, n in per_day.items():
            monday = d - dt.timedelta(days=d.weekday())
            weeks[monday] = weeks.get(monday, 0) + n
        monday = p.start - dt.timedelta(days=p.start.weekday())
        i = 0
        while monday <= p.end:
            labels.append(monday.strftime("%b %d") if i % 4 == 0 else "")
            values.append(weeks.get(monday, 0))
            monday += dt.timedelta(days=7)
            i += 1
        title = "Dispenses per week"
    else:  # longer: per month, over the months that have dispensing
        months: dict[tuple[int, int], int] = {}
        for d, n in per_day.items():
            months[(d.year, d.month)] = months.get((d.year, d.month), 0) + n
        first, last = (min(months), max(months)) if months else (
            (p.start.year, p.start.month), (p.start.year, p.start.month))
        year, month = first
        step = max(((last[0] - first[0]) * 12 + last[1] - first[1] + 1) // 12, 1)
        i = 0
        while (year, month) <= last:
            labels.append(f"{dt.date(year, month, 1):%b %Y}" if i % step == 0 else "")
            values.append(months.get((year, month), 0))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            i += 1
        title = "Dispenses per month"
    yield bar_chart(labels, [float(v) for v in values], width=doc_width, height=150,
                    title=title)
    yield spacer(8)
    dialect = s.get_bind().dialect.name
    q = (
        sa.select(Dispense.dispensed_at, Prescription.rx_number,
                  Patient.last_name, Patient.first_name, Product.name, Product.strength,
                  Dispense.quantity, Dispense.fill_number, _lots_of_dispense(dialect),
                  Staff.full_name)
        .join(Prescription, Prescription.id == Dispense.prescription_id)
        .join(Patient, Patient.id == Prescription.patient_id)
        .join(Product, Product.id == Prescription.product_id)
        .join(Staff, Staff.id == Dispense.pharmacist_id)
        .where(Dispense.dispensed_at >= lo, Dispense.dispensed_at < hi)
        .order_by(Dispense.dispensed_at, Dispense.id)
        .execution_options(**STREAM)
    )
    widths = [doc_width * f for f in (0.13, 0.08, 0.18, 0.25, 0.06, 0.06, 0.12, 0.12)]
    header = ["Dispensed", "Rx #", "Patient", "Product", "Qty", "Fill", "Lots", "Pharmacist"]
    aligns = ["L", "R", "W", "W", "R", "C", "W", "W"]

    def cells() -> Iterator[list[Any]]:
        for when, rx, last, first, name, strength, qty, fill, lots, who in s.execute(q):
            yield [f"{when.astimezone():%Y-%m-%d %H:%M}", rx, f"{last}, {first}",
                   product_label(name, strength, None), number(qty),
                   "orig" if fill == 0 else f"R{fill}", lots or "", who]

    yield from table_chunks(header, cells(), widths, aligns,
                            total=["Total", "", f"{total:,} dispenses", "", number(units), "",
                                   "", ""])


# ------------------------------------------------------- controlled register


KIND_WORDS = {MovementKind.RECEIPT: "Receipt", MovementKind.DISPENSE: "Dispense",
              MovementKind.ADJUSTMENT: "Adjustment", MovementKind.RETURN: "Return",
              MovementKind.WRITE_OFF: "Write-off", MovementKind.COUNT: "Count",
              MovementKind.TRANSFER: "Transfer"}


def controlled_register(s: Session, p: ReportParams, doc_width: float) -> Iterator[Flowable]:
    register = p.schedule or "II"
    lo, hi = utc_range(p)
    reg = ControlledRegisterEntry
    products = s.execute(
        sa.select(Product.id, Product.name, Product.strength, Product.dosage_form, Product.ndc,
                  Product.schedule, Product.unit)
        .where(Product.id.in_(sa.select(reg.product_id).where(reg.register == register,
                                                             reg.recorded_at < hi)))
        .order_by(Product.name, Product.strength, Product.id)
    ).all()
    yield Paragraph(
        f"Schedule {register} register. Schedule II records are kept separately from "
        "Schedules III-V (21 CFR 1304). Every receipt, dispense, adjustment, return, "
        "write-off and count is listed with the running balance.", styles()["note"])
    yield _summary(("Products", number(len(products))))
    rx_patient = sa.orm.aliased(Patient)
    widths = [doc_width * f for f in (0.14, 0.11, 0.10, 0.09, 0.09, 0.33, 0.14)]
    header = ["Date", "Entry", "Lot", "Quantity", "Balance", "Reference", "By"]
    aligns = ["L", "L", "L", "R", "R", "W", "W"]
    for pid, name, strength, form, ndc, schedule, unit in products:
        opening = s.scalar(
            sa.select(reg.balance_after).where(reg.product_id == pid, reg.recorded_at < lo)
            .order_by(reg.id.desc()).limit(1)) or 0
        last_count = s.execute(
            sa.select(reg.recorded_at, reg.quantity).where(
                reg.product_id == pid, reg.kind == MovementKind.COUNT, reg.recorded_at < hi)
            .order_by(reg.id.desc()).limit(1)).first()
        yield from section(
            f"{product_label(name, strength, form)} · NDC {format_ndc(ndc) or '—'} · "
            f"Schedule {schedule.value}",
            f"Opening balance on {p.start:%Y-%m-%d}: {opening:,} {unit}")
        q = (
            sa.select(reg.recorded_at, reg.kind, StockLot.lot_number, reg.quantity,
                      reg.balance_after, StockMovement.reason, StockMovement.reference,
                      Supplier.name, Supplier.dea_number, Prescription.rx_number,
                      rx_patient.last_name, rx_patient.first_name, Staff.full_name)
            .join(StockMovement, StockMovement.id == reg.movement_id)
            .join(StockLot, StockLot.id == reg.lot_id)
            .join(Staff, Staff.id == reg.staff_id)
            .outerjoin(Supplier, Supplier.id == StockMovement.supplier_id)
            .outerjoin(Dispense, Dispense.id == StockMovement.dispense_id)
            .outerjoin(Prescription, Prescription.id == Dispense.prescription_id)
            .outerjoin(rx_patient, rx_patient.id == Prescription.patient_id)
            .where(reg.product_id == pid, reg.recorded_at >= lo, reg.recorded_at < hi)
            .order_by(reg.id)
            .execution_options(**STREAM)
        )
        state = {"closing": opening, "in": 0, "out": 0}

        def cells(q: sa.Select = q, state: dict = state) -> Iterator[list[Any]]:
            for (when, kind, lot_no, qty, balance, reason, ref, sup, sup_dea, rx, last,
                 first, who) in s.execute(q):
                state["closing"] = balance
                state["in" if qty > 0 else "out"] += abs(qty)
                if kind is MovementKind.DISPENSE:
                    detail = f"Rx {rx} · {last}, {first}"
                elif kind is MovementKind.RECEIPT:
                    detail = " · ".join(x for x in (
                        sup, f"DEA {sup_dea}" if sup_dea else "",
                        f"invoice {ref}" if ref else "") if x) or "—"
                else:
                    detail = reason or ref or "—"
                yield [f"{when.astimezone():%Y-%m-%d %H:%M}", KIND_WORDS[kind], lot_no,
                       f"{qty:+,}", number(balance), detail, who]

        yield from table_chunks(
            header, cells(), widths, aligns,
            total=lambda st=state: ["Closing balance", "", "", f"+{st['in']:,} / -{st['out']:,}",
                                    number(st["closing"]), "", ""])
        if last_count is not None:
            when, variance = last_count
            yield Paragraph(f"Variance at the last count ({when.astimezone():%Y-%m-%d}): "
                            f"<b>{variance:+,}</b> {unit}", styles()["body"])
        else:
            yield Paragraph("No count recorded for this product up to the end of the period.",
                            styles()["note"])


# ---------------------------------------------------------- patient history


def patient_history(s: Session, p: ReportParams, doc_width: float) -> Iterator[Flowable]:
    patient = s.get(Patient, p.patient_id)
    assert patient is not None
    st = styles()
    allergies = s.scalars(sa.select(PatientAllergy).where(
        PatientAllergy.patient_id == patient.id).order_by(PatientAllergy.allergen)).all()
    conditions = s.scalars(sa.select(PatientCondition.name).where(
        PatientCondition.patient_id == patient.id).order_by(PatientCondition.name)).all()
    address = ", ".join(x for x in (patient.address_line, " ".join(
        y for y in (patient.city, patient.state, patient.postal_code) if y)) if x)
    yield Paragraph(f"<b>{patient.first_name} {patient.last_name}</b> · born "
                    f"{patient.date_of_birth:%B %d, %Y}", st["h3"])
    if address:
        yield Paragraph(address, st["body"])
    yield spacer(4)
    allergy_text = "; ".join(a.allergen + (f" ({a.reaction})" if a.reaction else "")
                             for a in allergies) or "none recorded"
    yield Paragraph(f"<b>Allergies:</b> {allergy_text}", st["body"])
    if conditions:
        yield Paragraph(f"<b>Conditions:</b> {', '.join(conditions)}", st["body"])
    yield Paragraph("This is your medication history at our pharmacy. Please bring it to "
                    "your doctor's appointments, and tell us about medicines you get "
                    "elsewhere.", st["note"])
    yield from section("Current prescriptions")
    rxs = s.execute(
        sa.select(Prescription.rx_number, Product.name, Product.strength, Prescription.sig,
                  Prescription.status, Prescriber.first_name, Prescriber.last_name,
                  Prescription.date_written)
        .join(Product, Product.id == Prescription.product_id)
        .join(Prescriber, Prescriber.id == Prescription.prescriber_id)
        .where(Prescription.patient_id == patient.id,
               Prescription.status.notin_(["cancelled"]))
        .order_by(Prescription.date_written.desc())
    ).all()
    widths = [doc_width * f for f in (0.09, 0.27, 0.34, 0.16, 0.14)]
    yield from table_chunks(
        ["Rx #", "Medicine", "Directions", "Prescriber", "Status"],
        ([n, product_label(name, strength, None), sig, f"{pf} {pl}",
          status.label] for n, name, strength, sig, status, pf, pl, _w in rxs),
        widths, ["R", "W", "W", "W", "L"], empty="No current prescriptions.")
    yield from section("Dispensing history")
    q = (
        sa.select(Dispense.dispensed_at, Prescription.rx_number, Product.name, Product.strength,
                  Dispense.quantity, Prescription.sig, Staff.full_name)
        .join(Prescription, Prescription.id == Dispense.prescription_id)
        .join(Product, Product.id == Prescription.product_id)
        .join(Staff, Staff.id == Dispense.pharmacist_id)
        .where(Prescription.patient_id == patient.id)
        .order_by(Dispense.dispensed_at.desc())
        .execution_options(**STREAM)
    )
    widths = [doc_width * f for f in (0.12, 0.08, 0.28, 0.07, 0.30, 0.15)]
    yield from table_chunks(
        ["Date", "Rx #", "Medicine", "Qty", "Directions", "Pharmacist"],
        ([f"{w.astimezone():%Y-%m-%d}", n, product_label(name, strength, None), number(qty),
          sig, who] for w, n, name, strength, qty, sig, who in s.execute(q)),
        widths, ["L", "R", "W", "R", "W", "W"], empty="Nothing dispensed yet.")
    legacy = s.execute(
        sa.select(LegacyDispense.dispensed_at, LegacyDispense.drug_text,
                  LegacyDispense.quantity, LegacyDispense.instructions)
        .where(LegacyDispense.patient_id == patient.id)
        .order_by(LegacyDispense.dispensed_at.desc())).all()
    old_rx = s.execute(
        sa.select(LegacyPrescription.prescribed_on, LegacyPrescription.text,
                  LegacyPrescription.description)
        .where(LegacyPrescription.patient_id == patient.id)
        .order_by(LegacyPrescription.prescribed_on.desc())).all()
    if legacy or old_rx:
        yield from section("Earlier records (from our previous system)")
    if legacy:
        yield Paragraph("<b>Dispensed</b>", st["body"])
        widths = [doc_width * f for f in (0.14, 0.40, 0.08, 0.38)]
        yield from table_chunks(
            ["Date", "Medicine", "Qty", "Instructions"],
            ([f"{w.astimezone():%Y-%m-%d}" if w else "", drug, number(qty), text or ""]
             for w, drug, qty, text in legacy),
            widths, ["L", "W", "R", "W"])
    if old_rx:
        yield spacer(6)
        yield Paragraph("<b>Prescriptions, as written</b>", st["body"])
        widths = [doc_width * f for f in (0.14, 0.40, 0.46)]
        yield from table_chunks(
            ["Prescribed", "Prescription", "Notes"],
            ([f"{d:%Y-%m-%d}" if d else "", text, note or ""] for d, text, note in old_rx),
            widths, ["L", "W", "W"])


# ------------------------------------------------------------ demographics

BANDS = [(0, 17, "0-17"), (18, 34, "18-34"), (35, 49, "35-49"), (50, 64, "50-64"),
         (65, 79, "65-79"), (80, 200, "80+")]


def demographics(s: Session, p: ReportParams, doc_width: float) -> Iterator[Flowable]:
    today = clock.today()
    counts = {(b[2], sex): 0 for b in BANDS for sex in Sex}
    for dob, sex in s.execute(sa.select(Patient.date_of_birth, Patient.sex).where(
            Patient.active.is_(True)).execution_options(**STREAM)):
        age = today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))
        band = next(b[2] for b in BANDS if b[0] <= age <= b[1])
        counts[(band, sex)] += 1
    total = sum(counts.values())
    yield _summary(("Active patients", number(total)), ("As of", f"{today:%Y-%m-%d}"))
    yield spacer(6)
    d = Drawing(doc_width, 190)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 45, 35, doc_width - 160, 130
    shown = [Sex.FEMALE, Sex.MALE, Sex.OTHER, Sex.UNKNOWN]
    chart.data = [[counts[(b[2], sex)] for b in BANDS] for sex in shown]
    chart.categoryAxis.categoryNames = [b[2] for b in BANDS]
    for axis in (chart.categoryAxis.labels, chart.valueAxis.labels):
        axis.fontName, axis.fontSize = FONT, 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.visibleGrid = True
    chart.valueAxis.gridStrokeColor = colors.HexColor("#e0e0e0")
    palette = [colors.HexColor("#00695c"), colors.HexColor("#4db6ac"),
               colors.HexColor("#ffb74d"), colors.HexColor("#b0bec5")]
    for i, c in enumerate(palette):
        chart.bars[i].fillColor = c
        chart.bars[i].strokeColor = None
    d.add(chart)
    for i, sex in enumerate(shown):
        y = 150 - i * 14
        from reportlab.graphics.shapes import Rect

        d.add(Rect(doc_width - 100, y, 9, 9, fillColor=palette[i], strokeColor=None))
        d.add(String(doc_width - 86, y + 1, sex.value.capitalize(), fontName=FONT,
                     fontSize=8))
    d.add(String(45, 175, "Patients by age band and sex", fontName=FONT_BOLD, fontSize=8.5))
    yield d
    yield spacer(6)
    widths = [doc_width * f for f in (0.2, 0.16, 0.16, 0.16, 0.16, 0.16)]
    rows = [[b[2], *[number(counts[(b[2], sex)]) for sex in shown],
             number(sum(counts[(b[2], sex)] for sex in shown))] for b in BANDS]
    yield from table_chunks(["Age band", "Female", "Male", "Other", "Unknown", "Total"], rows,
                            widths, ["L", "R", "R", "R", "R", "R"],
                            total=["All ages", *[number(sum(counts[(b[2], sex)]
                                                            for b in BANDS)) for sex in shown],
                                   number(total)])


# -------------------------------------------------------------------- staff


def staff_report(s: Session, p: ReportParams, doc_width: float) -> Iterator[Flowable]:
    people = s.scalars(sa.select(Staff).order_by(Staff.role, Staff.full_name)).all()
    yield _summary(("Staff", number(len(people))),
                   ("Active", number(sum(1 for x in people if x.active))))
    widths = [doc_width * f for f in (0.28, 0.18, 0.2, 0.18, 0.16)]
    for role in Role:
        group = [x for x in people if x.role is role]
        if not group:
            continue
        yield from section(f"{role.label}s ({len(group)})")
        yield from table_chunks(
            ["Name", "Username", "Licence", "DEA number", "Status"],
            ([x.full_name, x.username, x.licence_number or "—", x.dea_number or "—",
              "active" if x.active else "disabled"] for x in group),
            widths, ["W", "L", "L", "L", "L"])


# -------------------------------------------------------------------- audit


def audit_report(s: Session, p: ReportParams, doc_width: float) -> Iterator[Flowable]:
    lo, hi = utc_range(p)
    count = s.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
        AuditEntry.occurred_at >= lo, AuditEntry.occurred_at < hi)) or 0
    yield _summary(("Changes recorded", number(count)))
    yield Paragraph("Written by database triggers: the database user is the session's "
                    "login and cannot be forged by a client.", styles()["note"])
    yield spacer(4)
    widths = [doc_width * f for f in (0.13, 0.11, 0.11, 0.08, 0.14, 0.12, 0.31)]
    q = (sa.select(AuditEntry).where(AuditEntry.occurred_at >= lo, AuditEntry.occurred_at < hi)
         .order_by(AuditEntry.id).execution_options(**STREAM))

    def cells() -> Iterator[list[Any]]:
        for e in s.scalars(q):
            if e.action == "UPDATE":
                changed = sorted(k for k in (e.after or {})
                                 if (e.before or {}).get(k) != (e.after or {}).get(k)
                                 and k not in ("updated_at", "version"))
                what = ", ".join(changed) or "(no visible change)"
            else:
                what = "created" if e.action == "INSERT" else "deleted"
            yield [f"{e.occurred_at.astimezone():%Y-%m-%d %H:%M:%S}", e.actor or "—",
                   e.db_user, e.action.lower(), e.table_name, e.row_id[:8], what]

    yield from table_chunks(["When", "Staff", "DB user", "Action", "Table", "Row", "Changed"],
                            cells(), widths, ["L", "W", "W", "L", "L", "L", "W"])


__all__ = [
    "MUTED",
    "ProductStock",
    "ReportParams",
    "Schedule",
    "audit_report",
    "controlled_register",
    "demographics",
    "dispensing_log",
    "expiry_report",
    "inventory_report",
    "mm",
    "patient_history",
    "reorder_report",
    "staff_report",
]
