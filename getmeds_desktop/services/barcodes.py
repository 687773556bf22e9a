"""What a keyboard-wedge scanner types: NDCs, UPC-A codes and GS1 element strings.

GS1 parsing (GTIN (01), expiry (17), lot (10), serial (21), in the
parenthesised form and the raw form with group separators) is done by biip.
An NDC-based GTIN carries the 10-digit NDC after the "03" prefix; a 10-digit
NDC maps to up to three 11-digit NDCs, so a scan matches a product when one of
those is the product's NDC (or the GTIN is the product's GTIN).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from .errors import ValidationError
from .identifiers import format_ndc, ndc_candidates_from_10, normalize_ndc

GS = "\x1d"


@dataclasses.dataclass(frozen=True)
class Scan:
    raw: str
    ndc_candidates: tuple[str, ...] = ()
    gtin: str | None = None
    lot: str | None = None
    expiry: dt.date | None = None
    serial: str | None = None

    @property
    def description(self) -> str:
        parts = []
        if len(self.ndc_candidates) == 1:
            parts.append(f"NDC {format_ndc(self.ndc_candidates[0])}")
        elif self.ndc_candidates:
            parts.append("NDC " + " or ".join(format_ndc(c) for c in self.ndc_candidates))
        elif self.gtin:
            parts.append(f"GTIN {self.gtin}")
        if self.lot:
            parts.append(f"lot {self.lot}")
        if self.expiry:
            parts.append(f"expiry {self.expiry:%Y-%m-%d}")
        return ", ".join(parts) or self.raw

    def matches(self, ndc11: str | None, gtin14: str | None) -> bool:
        if gtin14 and self.gtin and self.gtin.zfill(14) == gtin14:
            return True
        return bool(ndc11) and ndc11 in self.ndc_candidates


def _ndc_from_gtin(gtin: str) -> tuple[str, ...]:
    g = gtin.zfill(14)
    if g[1:3] == "03":  # GS1 US prefix for NDC-based codes
        return tuple(ndc_candidates_from_10(g[3:13]))
    return ()


def _gtin_check_ok(digits: str) -> bool:
    """GS1 mod-10 check digit of a GTIN-12/13/14."""
    padded = digits.zfill(14)
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(padded[:13]))
    return (10 - total % 10) % 10 == int(padded[13])


def _from_gs1(text: str) -> Scan:
    from biip.gs1_messages import GS1Message

    try:
        if text.startswith("("):
            msg = GS1Message.parse_hri(text)
        else:
            body = text[3:] if text.startswith("]") else text
            msg = GS1Message.parse(body)
    except Exception as exc:
        raise ValidationError(f"'{_show(text)}' is not a readable GS1 barcode: {exc}",
                              field="scan") from None
    values: dict[str, object] = {}
    expiry = None
    for es in msg.element_strings:
        values[es.ai.ai] = es.value
        if es.ai.ai == "17":
            expiry = getattr(es, "date", None)
    gtin = values.get("01")
    if gtin is None:
        raise ValidationError(f"The barcode '{_show(text)}' has no GTIN (01).", field="scan")
    gtin = str(gtin)
    return Scan(text, _ndc_from_gtin(gtin), gtin, values.get("10"), expiry,  # type: ignore[arg-type]
                values.get("21"))  # type: ignore[arg-type]


def _show(text: str) -> str:
    return text.replace(GS, "<GS>")


def parse_scan(text: str) -> Scan:
    """Understand one scan (or a typed NDC). Raises ValidationError with a message."""
    raw = (text or "").strip()
    if not raw:
        raise ValidationError("Scan the package barcode or type its NDC.", field="scan")
    if raw.startswith(("(", "]")) or GS in raw or (
            raw.startswith("01") and len(raw) > 16 and raw[:16].isdigit()):
        return _from_gs1(raw)
    if re.fullmatch(r"\d+-\d+-\d+", raw):
        return Scan(raw, (normalize_ndc(raw, field="scan"),))  # type: ignore[arg-type]
    digits = re.sub(r"\s", "", raw)
    if not digits.isdigit():
        raise ValidationError(f"'{raw}' is neither a barcode nor an NDC.", field="scan")
    if len(digits) == 11:
        return Scan(raw, (digits,))
    if len(digits) == 10:
        return Scan(raw, tuple(ndc_candidates_from_10(digits)))
    if len(digits) in (12, 13, 14):
        if not _gtin_check_ok(digits):
            raise ValidationError(f"The barcode {raw} fails its check digit: scan it again.",
                                  field="scan")
        gtin = digits.zfill(14)
        if len(digits) == 12 and digits[0] == "3":  # UPC-A with an NDC inside
            return Scan(raw, tuple(ndc_candidates_from_10(digits[1:11])), gtin)
        return Scan(raw, _ndc_from_gtin(gtin), gtin)
    raise ValidationError(f"'{raw}' has {len(digits)} digits: an NDC has 10 or 11, a "
                          "barcode 12 to 14.", field="scan")
