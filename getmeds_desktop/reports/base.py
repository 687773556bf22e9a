"""The frame every report shares: pharmacy header, title and parameters, who made
it and when, "page X of Y", version in the footer, tables whose header repeats on
every page, and a story that is filled lazily so rows are streamed, not held.

No Qt here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4, letter
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch, mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
)

from ..enums import PaperSize
from ..services import clock
from .data import Pharmacy

FONT = "GetMedsSans"  # DejaVu Sans: every character prints
FONT_BOLD = "GetMedsSans-Bold"
# Dense tables use the PDF standard Helvetica (no embedding, several times faster
# to write than a TrueType subset) and fall back to DejaVu for a cell whose text
# is outside Windows-1252.
TABLE_FONT = "Helvetica"
TABLE_FONT_BOLD = "Helvetica-Bold"


def _table_font(text: str, bold: bool) -> str:
    if not text.isascii():
        try:
            text.encode("cp1252")
        except UnicodeEncodeError:
            return FONT_BOLD if bold else FONT
    return TABLE_FONT_BOLD if bold else TABLE_FONT


# No glyph of Helvetica or DejaVu Sans is wider than this many em: a string that
# short fits without being measured (most cells).
_MAX_EM = 1.02


def _surely_fits(text: str, size: float, width: float) -> bool:
    return len(text) * size * _MAX_EM <= width


@lru_cache(maxsize=65536)
def _width(text: str, font: str, size: float) -> float:
    return float(pdfmetrics.stringWidth(text, font, size))
ACCENT = colors.HexColor("#00695c")
GRID = colors.HexColor("#cfd8dc")
HEADER_BG = colors.HexColor("#eceff1")
TOTAL_BG = colors.HexColor("#e0f2f1")
MUTED = colors.HexColor("#607d8b")
ROWS_PER_TABLE = 45  # a fresh table (with its header) every so many rows


@cache
def register_fonts() -> None:
    """DejaVu Sans (shipped in resources/fonts) so every name prints, accents included."""
    base = resources.files("getmeds_desktop") / "resources" / "fonts"
    for name, file in ((FONT, "DejaVuSans.ttf"), (FONT_BOLD, "DejaVuSans-Bold.ttf")):
        with resources.as_file(base / file) as path:
            pdfmetrics.registerFont(TTFont(name, str(path)))
    from reportlab.pdfbase.pdfmetrics import registerFontFamily

    registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)


def styles() -> dict[str, ParagraphStyle]:
    register_fonts()
    return {
        "body": ParagraphStyle("body", fontName=FONT, fontSize=9, leading=11.5),
        "small": ParagraphStyle("small", fontName=FONT, fontSize=7.5, leading=9,
                                textColor=MUTED),
        "cell": ParagraphStyle("cell", fontName=FONT, fontSize=8, leading=9.6),
        "cell_r": ParagraphStyle("cell_r", fontName=FONT, fontSize=8, leading=9.6,
                                 alignment=TA_RIGHT),
        "h2": ParagraphStyle("h2", fontName=FONT_BOLD, fontSize=11, leading=14,
                             spaceBefore=8, spaceAfter=4, textColor=ACCENT),
        "h3": ParagraphStyle("h3", fontName=FONT_BOLD, fontSize=9.5, leading=12,
                             spaceBefore=6, spaceAfter=2),
        "note": ParagraphStyle("note", fontName=FONT, fontSize=8, leading=10,
                               textColor=MUTED, alignment=TA_LEFT),
    }


def esc(value: Any) -> str:
    """A value as text for a Paragraph, whose markup would otherwise swallow or
    choke on it (a note "<rash" raised; a name "Smith <Jr>" lost its "<Jr>")."""
    return xml_escape("" if value is None else str(value))


@dataclasses.dataclass(frozen=True)
class Layout:
    """The frame a report's flowables go into."""

    width: float
    height: float




@dataclasses.dataclass(frozen=True)
class ReportMeta:
    title: str
    parameters: tuple[str, ...]  # "Period: 2026-01-01 to 2026-01-31", ...
    pharmacy: Pharmacy
    generated_by: str
    generated_at: dt.datetime
    paper: PaperSize
    version: str
    landscape: bool = False


def page_size(meta: ReportMeta) -> tuple[float, float]:
    size = A4 if meta.paper is PaperSize.A4 else letter
    return (size[1], size[0]) if meta.landscape else size


class LazyStory(list[Flowable]):
    """A flowable list that pulls from a generator as the build consumes it.

    ReportLab's build loop asks ``len(story)`` before each flowable; keeping only
    a few flowables ahead keeps memory flat however many rows the report has.
    """

    def __init__(self, source: Iterable[Flowable], ahead: int = 8) -> None:
        super().__init__()
        self._source: Iterator[Flowable] | None = iter(source)
        self._ahead = ahead

    def _refill(self) -> None:
        while self._source is not None and super().__len__() < self._ahead:
            try:
                super().append(next(self._source))
            except StopIteration:
                self._source = None

    def __len__(self) -> int:
        self._refill()
        return super().__len__()

    def __getitem__(self, i: Any) -> Any:
        self._refill()
        return super().__getitem__(i)


PAGE_TOTAL_FORM = "getmedsPageTotal"


class ReportCanvas(Canvas):
    """The canvas of a report. When the document is complete (``save``) it
    defines the form every footer draws for "of Y", so the total needs no
    second pass; ``frame_height`` tells tables whether they start a page."""

    frame_height: float = 0.0
    pages: int = 0

    def save(self) -> None:
        self.pages = self.getPageNumber() - 1  # after the last showPage
        self.beginForm(PAGE_TOTAL_FORM)
        self.setFont(FONT, 7)
        self.setFillColor(MUTED)
        self.drawString(0, 0, str(self.pages))
        self.endForm()
        super().save()


class ReportDoc(BaseDocTemplate):
    """Header and footer on every page; "page X of Y" through a form drawn last."""

    def __init__(self, target: Path | Any, meta: ReportMeta, *,
                 progress: Callable[[int], None] | None = None) -> None:
        register_fonts()
        self.meta = meta
        self._progress = progress
        size = page_size(meta)
        margin = 15 * mm
        header_h = 28 * mm
        super().__init__(
            target, pagesize=size, leftMargin=margin, rightMargin=margin,
            topMargin=margin + header_h, bottomMargin=margin + 8 * mm, title=meta.title,
            author=meta.pharmacy.name, creator=f"GetMeds Desktop {meta.version}",
            subject=" · ".join(meta.parameters),
        )
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height, id="body",
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        self.addPageTemplates([PageTemplate(id="page", frames=[frame],
                                            onPage=self._decorate)])
        self.pages = 0

    @property
    def layout(self) -> Layout:
        return Layout(self.width, self.height)

    def build_story(self, story: Iterable[Flowable]) -> int:
        """Build the PDF from ``story`` (streamed); the number of pages."""
        height = self.height
        made: list[ReportCanvas] = []

        def canvas(*args: Any, **kwargs: Any) -> ReportCanvas:
            c = ReportCanvas(*args, **kwargs)
            c.frame_height = height
            made.append(c)
            return c

        self.build(LazyStory(story), canvasmaker=canvas)
        self.pages = made[-1].pages
        return self.pages

    def _decorate(self, canv: Any, doc: Any) -> None:
        m = self.meta
        w, h = self.pagesize
        left, right = self.leftMargin, w - self.rightMargin
        top = h - 15 * mm
        canv.saveState()
        canv.setFont(FONT_BOLD, 11)
        canv.setFillColor(ACCENT)
        canv.drawString(left, top - 10, m.pharmacy.name)
        canv.setFillColor(colors.black)
        canv.setFont(FONT, 7.5)
        line2 = " · ".join(x for x in (m.pharmacy.address, m.pharmacy.phone) if x)
        ids = " · ".join(x for x in (
            f"DEA {m.pharmacy.dea_number}" if m.pharmacy.dea_number else "",
            f"NPI {m.pharmacy.npi}" if m.pharmacy.npi else "") if x)
        canv.drawString(left, top - 20, line2)
        canv.drawString(left, top - 29, ids)
        canv.setFont(FONT_BOLD, 13)
        canv.drawRightString(right, top - 10, m.title)
        canv.setFont(FONT, 7.5)
        y = top - 20
        for p in m.parameters[:2]:
            canv.drawRightString(right, y, p)
            y -= 9
        canv.setStrokeColor(ACCENT)
        canv.setLineWidth(1.2)
        canv.line(left, top - 36, right, top - 36)
        # footer
        canv.setStrokeColor(GRID)
        canv.setLineWidth(0.5)
        foot = 15 * mm
        canv.line(left, foot + 9, right, foot + 9)
        canv.setFont(FONT, 7)
        canv.setFillColor(MUTED)
        local = clock.local(m.generated_at)
        offset = local.strftime("%z")
        # the page number on the right, with room for a total of four digits
        label = f"Page {doc.page} of "
        x = (right - pdfmetrics.stringWidth(label, FONT, 7)
             - pdfmetrics.stringWidth("0000", FONT, 7))
        made = (f"Generated by {m.generated_by} on {local:%Y-%m-%d %H:%M %Z} · GetMeds "
                f"Desktop {m.version}")
        times = (f"all times are the pharmacy's local time, {local:%Z} "
                 f"(UTC{offset[:3]}:{offset[3:]})")
        one = f"{made} · {times}"
        if pdfmetrics.stringWidth(one, FONT, 7) <= x - left - 12:
            canv.drawString(left, foot, one)
        else:  # a long name: two lines, never under the page number
            room = x - left - 12
            who = m.generated_by
            while pdfmetrics.stringWidth(made, FONT, 7) > room and len(who) > 8:
                who = who[:-2].rstrip()
                made = (f"Generated by {who}… on {local:%Y-%m-%d %H:%M %Z} · GetMeds "
                        f"Desktop {m.version}")
            canv.drawString(left, foot, made)
            canv.drawString(left, foot - 8.5, times[:1].upper() + times[1:] + ".")
        canv.drawString(x, foot, label)
        canv.translate(x + pdfmetrics.stringWidth(label, FONT, 7), foot)
        canv.doForm(PAGE_TOTAL_FORM)
        canv.restoreState()
        if self._progress is not None:
            self._progress(doc.page)


# ------------------------------------------------------------------ tables


def money(v: decimal.Decimal | float | int | None) -> str:
    if v is None:
        return ""
    return f"${decimal.Decimal(v):,.2f}"


def number(v: int | None) -> str:
    return "" if v is None else f"{v:,}"


def _lines(text: str, font: str, size: float, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap by measured width; the last line is shortened with an ellipsis."""
    if _surely_fits(text, size, width) or pdfmetrics.stringWidth(text, font, size) <= width:
        return [text]
    words, lines, cur = text.split(), [], ""
    for word in words:
        trial = f"{cur} {word}" if cur else word
        if pdfmetrics.stringWidth(trial, font, size) <= width:
            cur = trial
        else:
            if cur:
                lines.append(cur)
            cur = word
    lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] += " …"
    return [_fit(line, font, size, width) for line in lines]


def _fit(text: str, font: str, size: float, width: float) -> str:
    if _surely_fits(text, size, width) or pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


class FastTable(Flowable):
    """A data table drawn directly on the canvas.

    ReportLab's Table computes styles and sizes cell by cell and made a
    2,700-page inventory take 35 s; this draws the same header, zebra rows,
    rules and totals about five times faster. Text in "W" columns wraps (up to
    three lines), other cells are shortened with an ellipsis. It splits between
    rows and repeats the header on every part.
    """

    size = 8.0
    leading = 9.6
    pad = 2.4

    def __init__(self, header: Sequence[str], rows: list[Sequence[Any]],
                 widths: Sequence[float], aligns: Sequence[str],
                 total: Sequence[Any] | None = None, *, continued: bool = False) -> None:
        super().__init__()
        # A continuation of the previous chunk shows its header only at the top of
        # a page, so chunking never repeats the header in the middle of a page.
        self.continued = continued
        self._show_header = True
        self.header = [str(h) for h in header]
        self.widths = list(widths)
        self.aligns = list(aligns)
        self.total = None if total is None else ["" if v is None else str(v) for v in total]
        self._cells: list[list[list[str]]] = [self._layout(r) for r in rows]
        self._font = ""
        self.hAlign = "LEFT"

    def _layout(self, row: Sequence[Any]) -> list[list[str]]:
        out = []
        for v, w, a in zip(row, self.widths, self.aligns, strict=True):
            text = "" if v is None else str(v)
            inner = w - 2 * 3
            font = _table_font(text, False)
            out.append(_lines(text, font, self.size, inner, 3) if a == "W"
                       else [_fit(text, font, self.size, inner)])
        return out

    def _row_h(self, cells: list[list[str]]) -> float:
        return max(len(c) for c in cells) * self.leading + 2 * self.pad

    def _header_h(self) -> float:
        return self.leading + 2 * self.pad

    # ReportLab hands a flowable its canvas in wrapOn/splitOn; a ReportCanvas
    # knows the frame's height, so a table can tell whether it starts a page.
    def wrapOn(self, canv: Any, avail_w: float, avail_h: float) -> tuple[float, float]:  # noqa: N802
        self._frame_h = float(getattr(canv, "frame_height", 0.0))
        return super().wrapOn(canv, avail_w, avail_h)  # type: ignore[no-any-return]

    def splitOn(self, canv: Any, avail_w: float, avail_h: float) -> list[Flowable]:  # noqa: N802
        self._frame_h = float(getattr(canv, "frame_height", 0.0))
        return super().splitOn(canv, avail_w, avail_h)  # type: ignore[no-any-return]

    def _at_top(self, avail_h: float) -> bool:
        frame_h = getattr(self, "_frame_h", 0.0)
        return not frame_h or avail_h >= frame_h - 0.5

    def wrap(self, avail_w: float, avail_h: float) -> tuple[float, float]:
        self._show_header = not self.continued or self._at_top(avail_h)
        h = (self._header_h() if self._show_header else 0.0) + sum(
            self._row_h(c) for c in self._cells)
        if self.total is not None:
            h += self._header_h()
        self.width, self.height = sum(self.widths), h
        return self.width, self.height

    def split(self, avail_w: float, avail_h: float) -> list[Flowable]:
        self._show_header = not self.continued or self._at_top(avail_h)
        used = self._header_h() if self._show_header else 0.0
        k = 0
        for cells in self._cells:
            rh = self._row_h(cells)
            if used + rh > avail_h - 0.01:  # a hair of margin: float sums differ in order
                break
            used += rh
            k += 1
        if (k == len(self._cells) and self.total is not None
                and used + self._header_h() > avail_h - 0.01):
            k -= 1  # every row fits but the total does not: move the last row over
        if k <= 0 or k >= len(self._cells):
            return []  # nothing sensible to split off: it moves to the next page whole
        first = FastTable.__new__(FastTable)
        rest = FastTable.__new__(FastTable)
        parts: tuple[tuple[FastTable, list[list[list[str]]], list[str] | None], ...] = (
            (first, self._cells[:k], None), (rest, self._cells[k:], self.total))
        for part, part_cells, total in parts:
            Flowable.__init__(part)
            part.header, part.widths, part.aligns = self.header, self.widths, self.aligns
            part._cells, part.total, part.hAlign = part_cells, total, "LEFT"
            part._show_header = True
        first.continued = self.continued  # drawn here, as decided above
        rest.continued = False  # starts the next page: with its header
        return [first, rest]

    def _put(self, t: Any, bold: bool, x: float, y: float, w: float, align: str,
             text: str) -> None:
        """Place one cell's text in the shared text object (no object per string)."""
        if not text:
            return
        font = _table_font(text, bold)
        if font != self._font:
            t.setFont(font, self.size)
            self._font = font
        if align == "R":
            x = x + w - 3 - _width(text, font, self.size)
        elif align == "C":
            x = x + (w - _width(text, font, self.size)) / 2
        else:
            x = x + 3
        t.setTextOrigin(x, y)
        t.textOut(text)

    def draw(self) -> None:
        canv = self.canv
        total_w = sum(self.widths)
        hh = self._header_h()
        # shapes first (backgrounds and rules), then all the text in one object
        y = self.height
        if self._show_header:
            canv.setFillColor(HEADER_BG)
            canv.rect(0, y - hh, total_w, hh, stroke=0, fill=1)
            y -= hh
            canv.setStrokeColor(ACCENT)
            canv.setLineWidth(0.8)
            canv.line(0, y, total_w, y)
        canv.setLineWidth(0.25)
        canv.setStrokeColor(GRID)
        zebra = colors.HexColor("#f7f9fa")
        heights = [self._row_h(c) for c in self._cells]
        for i, rh in enumerate(heights):
            if i % 2 == 1:
                canv.setFillColor(zebra)
                canv.rect(0, y - rh, total_w, rh, stroke=0, fill=1)
            y -= rh
            canv.line(0, y, total_w, y)
        if self.total is not None:
            canv.setFillColor(TOTAL_BG)
            canv.rect(0, y - hh, total_w, hh, stroke=0, fill=1)
            canv.setStrokeColor(ACCENT)
            canv.setLineWidth(0.8)
            canv.line(0, y, total_w, y)

        t = canv.beginText()
        t.setFillColor(colors.black)
        self._font = ""
        y = self.height
        if self._show_header:
            x = 0.0
            for text, w, a in zip(self.header, self.widths, self.aligns, strict=True):
                self._put(t, True, x, y - self.pad - self.size, w, a,
                          _fit(text, _table_font(text, True), self.size, w - 6))
                x += w
            y -= hh
        for cells, rh in zip(self._cells, heights, strict=True):
            x = 0.0
            for lines, w, a in zip(cells, self.widths, self.aligns, strict=True):
                ly = y - self.pad - self.size
                for line in lines:
                    self._put(t, False, x, ly, w, a, line)
                    ly -= self.leading
                x += w
            y -= rh
        if self.total is not None:
            x = 0.0
            for text, w, a in zip(self.total, self.widths, self.aligns, strict=True):
                self._put(t, True, x, y - self.pad - self.size, w, a,
                          _fit(text, _table_font(text, True), self.size, w - 6))
                x += w
        canv.drawText(t)


def wrap(text: Any, style: ParagraphStyle) -> Any:
    """Long text in a cell wraps instead of running over its neighbour."""
    if text is None:
        return ""
    s = str(text)
    if len(s) < 28:
        return s
    return Paragraph(esc(s), style)


def table_chunks(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    widths: Sequence[float],
    aligns: Sequence[str],
    *,
    total: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
    chunk: int = ROWS_PER_TABLE,
    empty: str | None = None,
) -> Iterator[Flowable]:
    """Rows as a series of tables of about a page each, every one with the header.
    Streams ``rows``; a callable ``total`` is evaluated after the last row.
    ``empty``: the sentence printed instead of a table without rows."""
    buf: list[Sequence[Any]] = []
    continued = False
    for row in rows:
        buf.append(row)
        if len(buf) >= chunk:
            yield FastTable(header, buf, widths, aligns, continued=continued)
            buf, continued = [], True
    if empty is not None and not buf and not continued:
        yield Paragraph(esc(empty), styles()["body"])
        return
    final = total() if callable(total) else total
    yield FastTable(header, buf, widths, aligns, total=final, continued=continued)


def section(title: str, note: str | None = None) -> list[Flowable]:
    st = styles()
    out: list[Flowable] = [Paragraph(esc(title), st["h2"])]
    if note:
        out.append(Paragraph(esc(note), st["note"]))
    return out


def keep(*items: Flowable) -> Flowable:
    return KeepTogether(list(items))


def spacer(h: float = 6) -> Flowable:
    return Spacer(1, h)


__all__ = ["ACCENT", "FONT", "FONT_BOLD", "Layout", "LazyStory", "Pharmacy", "ReportCanvas",
           "ReportDoc", "ReportMeta", "esc", "inch", "keep", "money", "number", "section",
           "spacer", "styles", "table_chunks", "wrap"]
