"""The DEA inventory report (21 CFR 1304.11): one inventory, Schedule II listed
apart from Schedules III-V (1304.04(h)), each with the date, whether it was
taken as of the opening or the close of business, who took it, and a line to
sign."""

from __future__ import annotations

from collections.abc import Iterator

from reportlab.platypus import Flowable, PageBreak, Paragraph, Table, TableStyle
from sqlalchemy.orm import Session

from ..services import dea_inventory
from ..services.dea_inventory import InventoryInfo, InventoryKind, InventoryLineInfo
from ..services.identifiers import format_ndc
from .base import FONT, Layout, esc, number, section, spacer, styles, table_chunks
from .catalog import ReportParams, _local

CITES = {InventoryKind.INITIAL: "21 CFR 1304.11(b)", InventoryKind.BIENNIAL: "21 CFR 1304.11(c)",
         InventoryKind.NEWLY_CONTROLLED: "21 CFR 1304.11(d)"}


def _count_words(ln: InventoryLineInfo) -> str:
    if ln.exact:
        return "Exact count"
    return f"Estimate (opened container of {ln.container_units:,})"


def _signature(inv: InventoryInfo, page: Layout, what: str) -> Flowable:
    st = styles()
    cells = [[Paragraph(f"{esc(what)} taken by <b>{esc(inv.taken_by)}</b> as of the "
                        f"{esc(inv.business.label.lower())} on {inv.taken_on:%Y-%m-%d}",
                        st["body"]), "", "", ""],
             ["Signature", "", "Date", ""]]
    t = Table(cells, colWidths=[page.width * f for f in (0.12, 0.48, 0.1, 0.3)],
              rowHeights=[None, 30])
    t.setStyle(TableStyle([
        ("SPAN", (0, 0), (3, 0)), ("FONTNAME", (0, 1), (-1, -1), FONT),
        ("FONTSIZE", (0, 1), (-1, -1), 8.5), ("VALIGN", (0, 1), (-1, -1), "BOTTOM"),
        ("ALIGN", (2, 1), (2, 1), "RIGHT"),
        ("LINEBELOW", (1, 1), (1, 1), 0.6, "#333333"),
        ("LINEBELOW", (3, 1), (3, 1), 0.6, "#333333"),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("RIGHTPADDING", (2, 1), (2, 1), 6),
    ]))
    return t


def dea_inventory_report(s: Session, p: ReportParams, page: Layout) -> Iterator[Flowable]:
    inv = dea_inventory.inventory_in(s, p.inventory_id)
    st = styles()
    yield Paragraph(
        f"<b>{esc(inv.kind.label)} inventory</b> ({CITES[inv.kind]}) taken as of the "
        f"<b>{esc(inv.business.label.lower())}</b> on <b>{inv.taken_on:%Y-%m-%d}</b> by "
        f"<b>{esc(inv.taken_by)}</b>, recorded {_local(inv.taken_at)}.", st["body"])
    if inv.note:
        yield Paragraph(f"Note: {esc(inv.note)}", st["body"])
    yield Paragraph(
        "Schedule II is counted exactly; an opened Schedule III-V container may be "
        "estimated unless it holds more than 1,000 tablets or capsules (21 CFR "
        "1304.11(e)(3)). Schedule II is listed separately from Schedules III-V (21 CFR "
        "1304.04(h)). Keep this inventory at the registered location for at least two years "
        "(21 CFR 1304.04(a)).", st["note"])
    widths = [page.width * f for f in (0.30, 0.13, 0.11, 0.09, 0.09, 0.28)]
    header = ["Product", "NDC", "Lot", "Schedule", "Counted", "Count"]
    aligns = ["W", "L", "L", "L", "R", "W"]
    parts = (("Schedule II", inv.schedule_ii), ("Schedules III-V", inv.schedule_iii_v))
    for i, (title, lines) in enumerate(parts):
        if i:
            yield PageBreak()
        products = len({ln.product_id for ln in lines})
        yield from section(f"{title} inventory",
                           f"{products} product(s), {len(lines)} line(s)")

        def cells(rows: tuple[InventoryLineInfo, ...] = lines) -> Iterator[list[str]]:
            for ln in rows:
                yield [ln.display_name, format_ndc(ln.ndc) or "—", ln.lot_number or "none",
                       ln.schedule.value, number(ln.quantity), _count_words(ln)]

        total = ["Total", "", "", "", number(sum(ln.quantity for ln in lines)), ""]
        yield from table_chunks(header, cells(), widths, aligns, total=total,
                                empty=f"No {title} substance on hand: nothing to count "
                                      "(recorded as a zero inventory).")
        yield spacer(14)
        yield _signature(inv, page, f"{title} inventory")


__all__ = ["dea_inventory_report"]
