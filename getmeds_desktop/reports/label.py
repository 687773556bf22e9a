"""The prescription label: one 4 x 2.5 inch page per dispense."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reportlab.graphics.barcode import code128
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas
from reportlab.platypus import Frame, Paragraph

from ..services import clock
from .base import FONT, FONT_BOLD, esc, register_fonts
from .data import LabelData

LABEL_SIZE = (4 * inch, 2.5 * inch)
TRANSFER_CAUTION = ("CAUTION: Federal law prohibits the transfer of this drug to any person "
                    "other than the patient for whom it was prescribed.")




def _fit(c: Any, text: str, font: str, size: float, smallest: float, x: float, y: float,
         room: float) -> None:
    """Draw ``text`` at the largest size down to ``smallest`` that fits ``room``
    points, cut with an ellipsis when even that does not."""
    while size > smallest and stringWidth(text, font, size) > room:
        size -= 0.25
    if stringWidth(text, font, size) > room:
        while text and stringWidth(text + "…", font, size) > room:
            text = text[:-1]
        text = text.rstrip() + "…"
    c.setFont(font, size)
    c.drawString(x, y, text)


def draw_label(target: Path | Any, data: LabelData, *, title: str = "Prescription label"
               ) -> int:
    """Write the label; returns the page count (always 1: text shrinks to fit)."""
    register_fonts()
    w, h = LABEL_SIZE
    c = canvas.Canvas(str(target) if isinstance(target, Path) else target, pagesize=LABEL_SIZE)
    c.setTitle(f"{title} Rx {data.rx_number}")
    c.setAuthor(data.pharmacy.name)
    m = 0.12 * inch
    # header: pharmacy on the left, Rx number and dates on the right; the left
    # side shrinks (then is cut) so that it never runs over the Rx number
    rx_text = f"Rx {data.rx_number}"
    when = f"Filled {clock.local(data.dispensed_at):%m/%d/%Y}"
    if data.initial_fill is not None:  # a refill: the date of the initial filling too
        when += f" · Orig. {clock.local(data.initial_fill):%m/%d/%Y}"
    right = max(stringWidth(rx_text, FONT_BOLD, 9), stringWidth(when, FONT, 6))
    room = w - 2 * m - right - 6
    line = " · ".join(x for x in (data.pharmacy.address, data.pharmacy.phone) if x)
    _fit(c, data.pharmacy.name, FONT_BOLD, 8, 5.5, m, h - m - 7, room)
    _fit(c, line, FONT, 5.8, 4.5, m, h - m - 14, room)
    c.setFont(FONT_BOLD, 9)
    c.drawRightString(w - m, h - m - 7, rx_text)
    c.setFont(FONT, 6)
    c.drawRightString(w - m, h - m - 14, when)
    c.setStrokeColor(colors.black)
    c.setLineWidth(0.6)
    c.line(m, h - m - 18, w - m, h - m - 18)

    barcode = code128.Code128(str(data.rx_number), barHeight=0.28 * inch, barWidth=0.85,
                              humanReadable=False)
    bottom = m + (0.28 * inch) + 3
    barcode.drawOn(c, w - m - barcode.width, m)
    c.setFont(FONT, 5.5)
    # filled by, verified by (the pharmacist's final check; blank until verified)
    c.drawString(m, m + 2, f"Filled {data.pharmacist_initials} · RPh "
                           f"{data.verifier_initials or '____'} · Prescriber: "
                           f"{data.prescriber}"[:78])
    refills = f"Refills left: {data.refills_left}" if data.refills_left else "No refills"
    c.drawString(m, m + 9, refills + (f" · {data.owed} owed" if data.owed else "")
                 + (f" · Discard after {data.discard_by:%m/%d/%Y}" if data.discard_by else ""))

    body_top = h - m - 21
    body_h = body_top - bottom - (16 if data.transfer_caution else 2)
    for size in (9.5, 8.5, 7.5, 6.8, 6.2, 5.6):
        head = ParagraphStyle("h", fontName=FONT_BOLD, fontSize=size + 0.5, leading=size + 2)
        body = ParagraphStyle("b", fontName=FONT, fontSize=size, leading=size + 1.6)
        flow = [
            Paragraph(esc(data.patient), head),
            Paragraph(esc(data.directions), body),
            Paragraph(f"<b>{esc(data.product)}</b> · Qty: {data.quantity} "
                      f"({esc(data.unit)})" + (f" · C-{data.schedule}" if data.schedule
                                                 else "")
                      + (f" · NDC&nbsp;{esc(data.ndc)}" if data.ndc else ""), body),
        ]
        frame = Frame(m, bottom + (16 if data.transfer_caution else 2), w - 2 * m, body_h,
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0,
                      showBoundary=0)
        total = sum(f.wrap(w - 2 * m, body_h)[1] for f in flow)
        if total <= body_h or size == 5.6:
            frame.addFromList(flow, c)
            break
    if data.transfer_caution:  # 21 CFR 290.5: Schedule II, III and IV
        caution = Paragraph(esc(TRANSFER_CAUTION), ParagraphStyle(
            "c", fontName=FONT_BOLD, fontSize=5.2, leading=6))
        caution.wrap(w - 2 * m, 14)
        caution.drawOn(c, m, bottom + 1)
    c.showPage()
    c.save()
    return 1
