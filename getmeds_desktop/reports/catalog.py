"""The reports' layout: each report is a generator of flowables over the rows of
reports.data (which does all the querying). Every value that goes into a
Paragraph passes through :func:`esc`; table cells are drawn as plain text."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.lib import colors
from reportlab.platypus import Flowable, Paragraph
from sqlalchemy.orm import Session

from ..models import MovementKind, Role, Sex
from ..services import clock
from ..services.identifiers import format_ndc
from . import data
from .base import (
    ACCENT,
    FONT,
    FONT_BOLD,
    Layout,
    esc,
    keep,
    money,
    number,
    section,
    spacer,
    styles,
    table_chunks,
)


@dataclasses.dataclass(frozen=True)
class ReportParams:
    start: dt.date | None = None
    end: dt.date | None = None  # inclusive
    days: int | None = None
    schedule: str | None = None  # "II" or "III-V"
    patient_id: uuid.UUID | None = None
    dispense_id: uuid.UUID | None = None
    # the audit trail's filters (services.audit.AuditFilter)
    staff: str | None = None
    prescription_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None
    table: str | None = None
    lot_id: uuid.UUID | None = None  # the recall worklist's lot
    inventory_id: uuid.UUID | None = None  # the DEA inventory (None: the latest)
    form_id: uuid.UUID | None = None  # a DEA Form 41 or 106 record (its worksheet)


def utc_range(p: ReportParams) -> tuple[dt.datetime, dt.datetime]:
    """Local calendar days [start, end] as a UTC [from, to) range."""
    assert p.start is not None and p.end is not None
    return clock.day_range(p.start, p.end)


def _summary(*pairs: tuple[str, str]) -> Flowable:
    text = " &nbsp;·&nbsp; ".join(f"{esc(k)}: <b>{esc(v)}</b>" for k, v in pairs)
    return Paragraph(text, styles()["body"])


def _local(when: dt.datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return clock.local(when).strftime(fmt)


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
    chart.valueAxis.labelTextFormat = value_format.format
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


def inventory_report(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    cats = data.stock_by_category(s)
    grand = sum((c.value for c in cats), decimal.Decimal(0))
    yield _summary(("Products with stock", number(sum(c.products for c in cats))),
                   ("Units on hand", number(sum(c.units for c in cats))),
                   ("Value at cost", money(grand)))
    yield spacer(6)
    by_value = sorted(cats, key=lambda c: c.value)
    yield bar_chart([c.name for c in by_value], [float(c.value) / 1000 for c in by_value],
                    width=page.width, height=max(120, 16 * len(cats) + 50), horizontal=True,
                    title="Value at cost by category (thousand USD)")
    widths = [page.width * f for f in (0.40, 0.14, 0.24, 0.10, 0.12)]
    header = ["Product", "NDC", "Manufacturer", "On hand", "Value at cost"]
    aligns = ["W", "L", "W", "R", "R"]
    # One pass over the stock, in category order; the category totals are known
    # from the aggregate above.
    lines = data.stock_lines(s)
    pending = next(lines, None)
    for cat in cats:
        yield from section(cat.name, f"{cat.products:,} products · {cat.units:,} units · "
                                     f"{money(cat.value)} at cost")

        def cells(cat_id: uuid.UUID | None = cat.id) -> Iterator[list[Any]]:
            nonlocal pending
            while pending is not None and pending.category_id == cat_id:
                yield [pending.product, format_ndc(pending.ndc), pending.manufacturer or "",
                       number(pending.on_hand), money(pending.value)]
                pending = next(lines, None)

        yield from table_chunks(header, cells(), widths, aligns,
                                total=["Category total", "", "", number(cat.units),
                                       money(cat.value)])
    yield spacer(8)
    yield _summary(("Grand total value at cost", money(grand)))


# ------------------------------------------------------------------ reorder


def reorder_report(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    yield _summary(("Products at or below their reorder level", number(data.reorder_count(s))))
    yield Paragraph("Suggested quantity brings stock up to the reorder level plus the reorder "
                    "quantity, in whole packs.", styles()["note"])
    yield spacer(6)
    widths = [page.width * f for f in (0.36, 0.10, 0.10, 0.10, 0.12, 0.22)]
    header = ["Product", "On hand", "Reorder at", "Pack", "Suggested", "Last supplier"]
    totals = {"products": 0, "units": 0}

    def cells() -> Iterator[list[Any]]:
        for r in data.reorder_lines(s):
            totals["products"] += 1
            totals["units"] += r.suggested
            yield [r.product, number(r.on_hand), number(r.reorder_level), number(r.pack_size),
                   number(r.suggested), r.last_supplier or "—"]

    yield from table_chunks(header, cells(), widths, ["W", "R", "R", "R", "R", "W"],
                            total=lambda: [f"{totals['products']:,} products", "", "", "",
                                           number(totals["units"]), ""])


# ------------------------------------------------------------------- expiry


def expiry_report(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    days = p.days or 90
    today = clock.today()
    widths = [page.width * f for f in (0.38, 0.12, 0.12, 0.12, 0.12, 0.14)]
    header = ["Product", "Lot", "Expiry", "Status", "On hand", "Value at risk"]
    aligns = ["W", "L", "L", "L", "R", "R"]
    for title, lots, note in (
        ("Expired lots still on hand", data.expired_lots(s, today),
         "Remove these from the shelf and write them off or return them."),
        (f"Lots expiring within {days} days", data.expiring_lots(s, days, today),
         "Dispense first (FEFO does so automatically) or return before expiry."),
    ):
        yield from section(title, note)
        totals: dict[str, Any] = {"lots": 0, "units": 0, "value": decimal.Decimal(0)}

        def cells(lots: Iterator[data.LotLine] = lots,
                  t: dict[str, Any] = totals) -> Iterator[list[Any]]:
            for lot in lots:
                t["lots"] += 1
                t["units"] += lot.on_hand
                t["value"] += lot.value
                yield [lot.product, lot.lot_number, f"{lot.expiry_date:%Y-%m-%d}",
                       lot.status.value, number(lot.on_hand), money(lot.value)]

        def total(t: dict[str, Any] = totals) -> list[str]:
            return [f"{t['lots']:,} lots", "", "", "", number(t["units"]), money(t["value"])]

        yield from table_chunks(header, cells(), widths, aligns, total=total)


# ---------------------------------------------------------- dispensing log


def dispensing_log(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    assert p.start is not None and p.end is not None
    lo, hi = utc_range(p)
    per_day, units = data.dispenses_per_day(s, lo, hi)
    total = sum(per_day.values())
    yield _summary(("Dispenses", number(total)), ("Units", number(units)),
                   ("Days with dispensing", number(len(per_day))))
    yield spacer(6)
    buckets = data.chart_buckets(per_day, p.start, p.end)
    yield bar_chart(buckets.labels, [float(v) for v in buckets.values], width=page.width,
                    height=150, title=buckets.title)
    yield spacer(8)
    widths = [page.width * f for f in (0.13, 0.08, 0.18, 0.25, 0.06, 0.06, 0.12, 0.12)]
    header = ["Dispensed", "Rx #", "Patient", "Product", "Qty", "Fill", "Lots", "Pharmacist"]
    aligns = ["L", "R", "W", "W", "R", "C", "W", "W"]
    rows = ([_local(d.dispensed_at), d.rx_number, d.patient, d.product, number(d.quantity),
             "orig" if d.fill_number == 0 else f"R{d.fill_number}", d.lots, d.pharmacist]
            for d in data.dispense_lines(s, lo, hi))
    yield from table_chunks(header, rows, widths, aligns,
                            total=["Total", "", f"{total:,} dispenses", "", number(units), "",
                                   "", ""])


# ------------------------------------------------------- controlled register


KIND_WORDS = {k: k.label for k in MovementKind}


def _register_detail(e: data.RegisterLine) -> str:
    if e.kind is MovementKind.DISPENSE:
        return f"Rx {e.rx_number} · {e.patient}"
    if e.kind is MovementKind.RECEIPT:
        return " · ".join(x for x in (
            e.supplier, f"DEA {e.supplier_dea}" if e.supplier_dea else "",
            f"order {e.order_form}" if e.order_form else "",
            f"invoice {e.reference}" if e.reference else "") if x) or "—"
    if e.dea_form:
        return f"{e.reason or ''} · DEA Form {e.dea_form} record".lstrip(" ·")
    return e.reason or e.reference or "—"


def controlled_register(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    assert p.start is not None
    register = p.schedule or "II"
    lo, hi = utc_range(p)
    products = data.register_products(s, register, lo, hi)
    yield Paragraph(
        f"Schedule {esc(register)} register. Schedule II records are kept separately from "
        "Schedules III-V (21 CFR 1304). Every receipt, dispense, adjustment, return, "
        "write-off and count is listed with the running balance.", styles()["note"])
    yield _summary(("Products", number(len(products))))
    widths = [page.width * f for f in (0.14, 0.11, 0.10, 0.09, 0.09, 0.33, 0.14)]
    header = ["Date", "Entry", "Lot", "Quantity", "Balance", "Reference", "By"]
    aligns = ["L", "L", "L", "R", "R", "W", "W"]
    for product in products:
        opening = data.register_opening(s, product.id, lo)
        yield from section(
            f"{product.label} · NDC {format_ndc(product.ndc) or '—'} · "
            f"Schedule {product.schedule.value}",
            f"Opening balance on {p.start:%Y-%m-%d}: {opening:,} {product.unit}")
        state = {"closing": opening, "in": 0, "out": 0}

        def cells(pid: uuid.UUID = product.id,
                  st: dict[str, int] = state) -> Iterator[list[Any]]:
            for e in data.register_lines(s, pid, lo, hi):
                st["closing"] = e.balance
                st["in" if e.quantity > 0 else "out"] += abs(e.quantity)
                yield [_local(e.recorded_at), KIND_WORDS[e.kind], e.lot_number,
                       f"{e.quantity:+,}", number(e.balance), _register_detail(e), e.by]

        def closing(st: dict[str, int] = state) -> list[str]:
            return ["Closing balance", "", "", f"+{st['in']:,} / -{st['out']:,}",
                    number(st["closing"]), "", ""]

        yield from table_chunks(header, cells(), widths, aligns, total=closing)
        last_count = data.register_last_count(s, product.id, hi)
        if last_count is not None:
            when, variance = last_count
            yield Paragraph(f"Variance at the last count ({_local(when, '%Y-%m-%d')}): "
                            f"<b>{variance:+,}</b> {esc(product.unit)}", styles()["body"])
        else:
            yield Paragraph("No count recorded for this product up to the end of the period.",
                            styles()["note"])


# ---------------------------------------------------------- patient history


def patient_history(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    assert p.patient_id is not None
    h = data.patient_history(s, p.patient_id)
    st = styles()
    yield Paragraph(f"<b>{esc(h.name)}</b> · born {h.date_of_birth:%B %d, %Y}", st["h3"])
    if h.address:
        yield Paragraph(esc(h.address), st["body"])
    yield spacer(4)
    yield Paragraph(f"<b>Allergies:</b> {esc('; '.join(h.allergies) or 'none recorded')}",
                    st["body"])
    if h.conditions:
        yield Paragraph(f"<b>Conditions:</b> {esc(', '.join(h.conditions))}", st["body"])
    yield Paragraph("This is your medication history at our pharmacy. Please bring it to "
                    "your doctor's appointments, and tell us about medicines you get "
                    "elsewhere.", st["note"])
    yield from section("Current prescriptions")
    yield from table_chunks(
        ["Rx #", "Medicine", "Directions", "Prescriber", "Status"],
        ([r.rx_number, r.medicine, r.sig, r.prescriber, r.status.label]
         for r in h.prescriptions),
        [page.width * f for f in (0.09, 0.27, 0.34, 0.16, 0.14)], ["R", "W", "W", "W", "L"],
        empty="No current prescriptions.")
    yield from section("Dispensing history")
    yield from table_chunks(
        ["Date", "Rx #", "Medicine", "Qty", "Directions", "Pharmacist"],
        ([_local(d.dispensed_at, "%Y-%m-%d"), d.rx_number, d.medicine, number(d.quantity),
          d.sig, d.pharmacist] for d in data.patient_dispenses(s, p.patient_id)),
        [page.width * f for f in (0.12, 0.08, 0.28, 0.07, 0.30, 0.15)],
        ["L", "R", "W", "R", "W", "W"], empty="Nothing dispensed yet.")
    if h.earlier_dispenses or h.earlier_prescriptions:
        yield from section("Earlier records (from our previous system)")
    if h.earlier_dispenses:
        yield Paragraph("<b>Dispensed</b>", st["body"])
        yield from table_chunks(
            ["Date", "Medicine", "Qty", "Instructions"],
            ([_local(e.dispensed_at, "%Y-%m-%d") if e.dispensed_at else "", e.drug,
              number(e.quantity), e.instructions or ""] for e in h.earlier_dispenses),
            [page.width * f for f in (0.14, 0.40, 0.08, 0.38)], ["L", "W", "R", "W"])
    if h.earlier_prescriptions:
        yield spacer(6)
        yield Paragraph("<b>Prescriptions, as written</b>", st["body"])
        yield from table_chunks(
            ["Prescribed", "Prescription", "Notes"],
            ([f"{e.prescribed_on:%Y-%m-%d}" if e.prescribed_on else "", e.text, e.notes or ""]
             for e in h.earlier_prescriptions),
            [page.width * f for f in (0.14, 0.40, 0.46)], ["L", "W", "W"])


# ------------------------------------------------------------------ recall


def recall_report(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    """Every patient who received a lot, with contact details and the notices so
    far: the worklist of a recall (services.recalls)."""
    from ..services.recalls import _recipients

    assert p.lot_id is not None
    r = _recipients(s, p.lot_id)
    st = styles()
    yield Paragraph(f"<b>{esc(r.product)}</b> · lot <b>{esc(r.lot_number)}</b> · expires "
                    f"{r.expiry_date:%Y-%m-%d} · {esc(r.status.value)}"
                    + (f" ({esc(r.reason)})" if r.reason else ""), st["h3"])
    yield _summary(("Patients who received it", number(r.patients)),
                   ("Not yet told", number(r.outstanding)),
                   ("Still in the pharmacy (pull before handing out)",
                    number(sum(x.not_handed_out for x in r.rows))))
    yield Paragraph("Tell each patient, record how and what was agreed (Inventory > Lots > "
                    "Patients who received it). Telephone calls are documented here "
                    "(21 CFR 7.49(b)).", st["note"])
    yield spacer(6)

    def state(x: Any) -> str:
        if x.returned:
            return "Returned to stock: not received"
        if x.not_handed_out:
            return "In the pharmacy: pull it"
        if x.notices:
            last = x.notices[-1]
            return (f"Told {_local(last.at, '%Y-%m-%d')} by {last.by} "
                    f"({last.method.replace('_', ' ')}): {last.outcome}")
        return "Told (for another fill)" if x.patient_told else "TO CONTACT"

    yield from table_chunks(
        ["Patient", "Born", "Phone / email", "Address", "Rx #", "Dispensed", "Qty", "Notice"],
        ([x.patient, f"{x.born:%Y-%m-%d}", " · ".join(v for v in (x.phone, x.email) if v)
          or "none on file", x.address or "none on file", x.rx_number,
          _local(x.dispensed_at, "%Y-%m-%d"), number(x.quantity), state(x)] for x in r.rows),
        [page.width * f for f in (0.14, 0.08, 0.13, 0.17, 0.06, 0.08, 0.05, 0.29)],
        ["W", "L", "W", "W", "R", "L", "R", "W"], empty="Nothing was dispensed from this lot.")


# ------------------------------------------------------ DEA form worksheets


def _pairs(rows: list[tuple[str, str]], page: Layout) -> Iterator[Flowable]:
    """Field: value lines, two columns, as the form numbers them."""
    yield from table_chunks(["Field", "Value"], ([k, v or "—"] for k, v in rows),
                            [page.width * 0.36, page.width * 0.64], ["W", "W"])


def _registrant(s: Session, contact: str) -> list[tuple[str, str]]:
    from ..services.settings import load

    row = load(s)
    return [("Registered name", row.pharmacy_name or ""),
            ("DEA registration number", row.dea_number or "(set it in Settings)"),
            ("Registered address", row.address or ""),
            ("Telephone number", row.phone or ""),
            ("Contact name", contact)]


def _record_note(f: Any) -> Flowable:
    """Who filed the record and when, and what corrects what."""
    words = [f"GetMeds record {esc(f.id)}, filed by {esc(f.filed_by)} on "
             f"{esc(_local(f.filed_at))}."]
    if f.corrects_id:
        words.append(f"<b>Corrects</b> record {esc(f.corrects_id)}: {esc(f.correction_note)}.")
    if f.corrected_by:
        words.append("<b>Corrected by</b> record(s) "
                     + esc(", ".join(str(x) for x in f.corrected_by)) + ": file the correction.")
    return Paragraph(" ".join(words), styles()["note"])


def _signatures(f: Any) -> Iterator[Flowable]:
    st = styles()
    for n, name in (("first", f.witness1), ("second", f.witness2)):
        yield spacer(10)
        yield Paragraph(f"Printed name of {n} authorized employee witness: "
                        f"<b>{esc(name or '')}</b>", st["body"])
        yield spacer(14)
        yield Paragraph("Signature of " + n + " witness: " + "_" * 46 + "&nbsp;&nbsp;&nbsp;"
                        "Date: " + "_" * 16, st["body"])


def _form_record(s: Session, p: ReportParams, kind: Any, name: str) -> Any:
    """The DEA form record the worksheet is for, refused when it is another form."""
    from ..services.deaforms import form_info
    from ..services.errors import ValidationError

    assert p.form_id is not None
    f = form_info(s, p.form_id)
    if f.form is not kind:
        raise ValidationError(f"That record is not a {name}.", field="form")
    return f


def dea41_worksheet(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    """The fields of DEA Form 41 (Registrant Record of Controlled Substances
    Destroyed, OMB 1117-0007), sections A-D, from a record of services.deaforms."""
    from ..enums import DeaForm

    f = _form_record(s, p, DeaForm.DESTRUCTION, "DEA Form 41")
    st = styles()
    yield Paragraph(
        "<b>Worksheet, not the form.</b> The official record is DEA Form 41, made on DEA's "
        "online form (Diversion Control Division, deadiversion.usdoj.gov) and kept with the "
        "controlled-substance records for two years (21 CFR 1304.04(a), 1304.21(e)). Copy "
        "these fields into it; the two witnesses sign it.", st["body"])
    yield _record_note(f)
    yield spacer(4)
    yield from section("A. Registrant information")
    yield from _pairs(_registrant(s, f.filed_by), page)
    yield from section("B. Item destroyed (1. Inventory)",
                       "One line per lot; the write-off of each is in the ledger and the "
                       "controlled register.")
    yield from table_chunks(
        ["NDC", "Batch (lot)", "Name of substance", "Strength", "Form", "Pkg. qty.",
         "Full", "Partial", "Total destroyed"],
        ([format_ndc(i.ndc) or "—", i.lot_number, i.product, i.strength or "—",
          i.dosage_form or "—", number(i.pack_size), number(i.full_packages),
          number(i.partial_count), f"{i.quantity:,} {i.unit}"] for i in f.items),
        [page.width * x for x in (0.13, 0.1, 0.21, 0.1, 0.09, 0.08, 0.06, 0.08, 0.15)],
        ["L", "L", "W", "W", "W", "R", "R", "R", "R"],
        empty="Nothing destroyed under this record (a correction of its details).")
    yield from section("C. Method of destruction")
    yield from _pairs([("Date of destruction", f"{f.destroyed_on:%Y-%m-%d}"
                        if f.destroyed_on else ""),
                       ("Method of destruction", f.method or ""),
                       ("Location or business name, address", f.place or "")], page)
    yield keep(*section("D. Witnesses",
                        "Each witness declares, under penalty of perjury (18 U.S.C. 1001), "
                        "that they personally witnessed the destruction to a non-retrievable "
                        "state (21 CFR 1317.95(d))."), *_signatures(f))


def dea106_worksheet(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    """The fields of DEA Form 106 (Report of Theft or Loss of Controlled
    Substances, OMB 1117-0001) from a record of services.deaforms."""
    from ..enums import DeaForm
    from ..models import DeaFormRecord

    f = _form_record(s, p, DeaForm.THEFT_LOSS, "DEA Form 106")
    st = styles()
    yield Paragraph(
        "<b>Worksheet, not the form.</b> DEA Form 106 is filed online only, through DEA's "
        "Theft/Loss Reporting (deadiversion.usdoj.gov), within 45 days of discovery; the "
        "DEA Field Division Office is told in writing within one business day of discovery "
        "(21 CFR 1301.76(b)). Copy these fields into the online form.", st["body"])
    yield _record_note(f)
    yield spacer(4)
    since = f.filed_at - dt.timedelta(days=730)
    earlier = s.scalar(sa.select(sa.func.count()).select_from(DeaFormRecord).where(
        DeaFormRecord.form == DeaForm.THEFT_LOSS.value, DeaFormRecord.corrects_id.is_(None),
        DeaFormRecord.filed_at >= since, DeaFormRecord.filed_at < f.filed_at)) or 0
    reg = _registrant(s, f.filed_by)
    yield from section("Registrant")
    yield from _pairs([("1. Name and address of registrant", f"{reg[0][1]}, {reg[2][1]}"),
                       ("2. Phone number", reg[3][1]),
                       ("3. DEA registration number", reg[1][1]),
                       ("5. Principal business of registrant", "Pharmacy"),
                       ("6. County in which registrant is located",
                        "(complete on the online form)")], page)
    yield from section("The theft or loss")
    loss = f.loss_type.label if f.loss_type else ""
    if f.loss_detail:
        loss = f"{loss}: {f.loss_detail}"
    yield from _pairs([
        ("Date the theft or loss was discovered",
         f"{f.discovered_on:%Y-%m-%d}" if f.discovered_on else ""),
        ("4. Date of theft or loss",
         f"{f.occurred_on:%Y-%m-%d}" if f.occurred_on else "not known"),
        ("7. Was the theft reported to police?", "Yes" if f.police_notified else "No"),
        ("8. Name and telephone number of police department", f.police_department or ""),
        ("9. Thefts or losses in the past 24 months",
         f"{earlier:,} earlier Form 106 record(s) in GetMeds"),
        ("10. Type of theft or loss", loss),
        ("11. If armed robbery, was anyone killed or injured?",
         "(complete on the online form)" if f.loss_type and f.loss_type.value ==
         "armed_robbery" else "—"),
        ("12. Purchase value to registrant of controlled substances taken",
         money(f.value)),
        ("13. Were any pharmaceuticals or merchandise taken?", "(complete on the online form)"),
        ("14. If lost in transit: name of common carrier", f.carrier or "—"),
        ("17. Security measures taken to prevent future thefts or losses",
         f.security_measures or "")], page)
    yield from section("Controlled substances lost or stolen",
                       "By NDC (the online form fills in the product from it); one line per "
                       "lot, each an adjustment in the ledger and the controlled register.")
    yield from table_chunks(
        ["NDC", "Name of substance", "Strength", "Form", "Lot", "Schedule", "Pkg. qty.",
         "Quantity lost", "Value"],
        ([format_ndc(i.ndc) or "—", i.product, i.strength or "—", i.dosage_form or "—",
          i.lot_number, i.schedule.value, number(i.pack_size), f"{i.quantity:,} {i.unit}",
          money(i.unit_cost * i.quantity)] for i in f.items),
        [page.width * x for x in (0.12, 0.22, 0.1, 0.09, 0.1, 0.08, 0.08, 0.11, 0.1)],
        ["L", "W", "W", "W", "L", "L", "R", "R", "R"],
        empty="Nothing taken under this record (a correction of its details).")


# ------------------------------------------------------------ demographics


def demographics(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    today = clock.today()
    counts = data.patients_by_age_and_sex(s, today)
    total = sum(counts.values())
    yield _summary(("Active patients", number(total)), ("As of", f"{today:%Y-%m-%d}"))
    yield spacer(6)
    width = page.width
    d = Drawing(width, 190)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 45, 35, width - 160, 130
    shown = [Sex.FEMALE, Sex.MALE, Sex.OTHER, Sex.UNKNOWN]
    bands = [b[2] for b in data.BANDS]
    chart.data = [[counts[(b, sex)] for b in bands] for sex in shown]
    chart.categoryAxis.categoryNames = bands
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
        d.add(Rect(width - 100, y, 9, 9, fillColor=palette[i], strokeColor=None))
        d.add(String(width - 86, y + 1, sex.value.capitalize(), fontName=FONT, fontSize=8))
    d.add(String(45, 175, "Patients by age band and sex", fontName=FONT_BOLD, fontSize=8.5))
    yield d
    yield spacer(6)
    rows = [[b, *[number(counts[(b, sex)]) for sex in shown],
             number(sum(counts[(b, sex)] for sex in shown))] for b in bands]
    yield from table_chunks(["Age band", "Female", "Male", "Other", "Unknown", "Total"], rows,
                            [width * f for f in (0.2, 0.16, 0.16, 0.16, 0.16, 0.16)],
                            ["L", "R", "R", "R", "R", "R"],
                            total=["All ages", *[number(sum(counts[(b, sex)] for b in bands))
                                                 for sex in shown], number(total)])


# -------------------------------------------------------------------- staff


def staff_report(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    people = data.staff_lines(s)
    yield _summary(("Staff", number(len(people))),
                   ("Active", number(sum(1 for x in people if x.active))))
    widths = [page.width * f for f in (0.28, 0.18, 0.2, 0.18, 0.16)]
    for role in Role:
        group = [x for x in people if x.role is role]
        if not group:
            continue
        yield from section(f"{role.label}s ({len(group)})")
        yield from table_chunks(
            ["Name", "Username", "License", "DEA number", "Status"],
            ([x.name, x.username, x.licence_number or "—", x.dea_number or "—",
              "active" if x.active else "disabled"] for x in group),
            widths, ["W", "L", "L", "L", "L"])


# -------------------------------------------------------------------- audit


def audit_report(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    from ..services import audit

    assert p.start is not None and p.end is not None
    f = audit.AuditFilter(p.start, p.end, staff=p.staff, patient_id=p.patient_id,
                          prescription_id=p.prescription_id, product_id=p.product_id,
                          table=p.table)
    yield _summary(("Changes recorded", number(audit.audit_count(s, f))))
    yield Paragraph("Written by database triggers: the database login is the session's "
                    "own and cannot be forged by a client. Oldest first.", styles()["note"])
    yield spacer(4)
    widths = [page.width * x for x in (0.12, 0.13, 0.08, 0.2, 0.47)]
    rows = ([_local(r.occurred_at, "%Y-%m-%d %H:%M:%S"),
             r.who if r.who == r.db_user else f"{r.who} ({r.db_user})", r.action, r.what,
             r.changes_text] for r in audit.audit_rows(s, f, newest_first=False))
    yield from table_chunks(["When", "Who", "Action", "What", "Changes"],
                            rows, widths, ["L", "W", "L", "W", "W"])


__all__ = [
    "ReportParams",
    "audit_report",
    "bar_chart",
    "controlled_register",
    "dea41_worksheet",
    "dea106_worksheet",
    "demographics",
    "dispensing_log",
    "expiry_report",
    "inventory_report",
    "patient_history",
    "reorder_report",
    "staff_report",
    "utc_range",
]
