"""Identifiers and contact details: NDC (any hyphenated form <-> 11 digits), DEA
registration numbers and NPIs with their check digits, e-mail addresses and
phone numbers. The one home of these rules, for the services, the reports and
the screens."""

from __future__ import annotations

import re

from .errors import ValidationError

_NDC_FORMS = {(4, 4, 2): (1, 0, 0), (5, 3, 2): (0, 1, 0), (5, 4, 1): (0, 0, 1),
              (5, 4, 2): (0, 0, 0)}


def normalize_ndc(value: str | None, field: str = "ndc") -> str | None:
    """An NDC in any labeler-product-package form -> 11 digits (5-4-2), or None."""
    if value is None or not str(value).strip():
        return None
    raw = str(value).strip().replace(" ", "")
    if re.fullmatch(r"\d{11}", raw):
        return raw
    parts = raw.split("-")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        pad = _NDC_FORMS.get(tuple(len(p) for p in parts))  # type: ignore[arg-type]
        if pad is not None:
            return "".join("0" * z + p for z, p in zip(pad, parts, strict=True))
    raise ValidationError(
        f"'{value}' is not an NDC: use the hyphenated form from the package "
        "(4-4-2, 5-3-2, 5-4-1 or 5-4-2) or 11 digits.",
        field=field,
    )


def format_ndc(ndc11: str | None) -> str:
    if not ndc11:
        return ""
    return f"{ndc11[:5]}-{ndc11[5:9]}-{ndc11[9:]}"


def ndc_candidates_from_10(digits10: str) -> list[str]:
    """The three 11-digit NDCs a 10-digit NDC (e.g. from a UPC-A barcode) may be."""
    d = digits10
    return ["0" + d, d[:5] + "0" + d[5:], d[:9] + "0" + d[9:]]


_DEA_TYPES = set("ABCDEFGHJKLMPRSTUX")


def dea_check_digit(six: str) -> str:
    """The check digit of a DEA number's first six digits (DEA registration
    numbers: the sum of digits 1, 3 and 5 plus twice the sum of 2, 4 and 6; its
    last digit)."""
    d = [int(c) for c in six]
    return str((d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10)


def npi_check_digit(nine: str) -> str:
    """The check digit of an NPI's first nine digits (CMS NPI standard: the Luhn
    formula over the digits prefixed with 80840)."""
    total = 0
    for i, dgt in enumerate(int(c) for c in reversed("80840" + nine)):
        if i % 2 == 0:
            dgt *= 2
            if dgt > 9:
                dgt -= 9
        total += dgt
    return str((10 - total % 10) % 10)


def clean_dea(value: str | None, field: str = "dea_number") -> str | None:
    """Validate a DEA registration number (format and check digit)."""
    if value is None or not str(value).strip():
        return None
    dea = str(value).strip().upper()
    if not re.fullmatch(r"[A-Z][A-Z9]\d{7}", dea) or dea[0] not in _DEA_TYPES:
        raise ValidationError(
            f"'{value}' is not a DEA number (two letters then seven digits).", field=field
        )
    if dea_check_digit(dea[2:8]) != dea[8]:
        raise ValidationError(
            f"DEA number {dea} fails its check digit: check it for a typing error.", field=field
        )
    return dea


def clean_npi(value: str | None, field: str = "npi") -> str | None:
    """Validate a National Provider Identifier (10 digits, Luhn with prefix 80840)."""
    if value is None or not str(value).strip():
        return None
    npi = str(value).strip()
    if not re.fullmatch(r"\d{10}", npi):
        raise ValidationError(f"'{value}' is not an NPI (10 digits).", field=field)
    if npi_check_digit(npi[:9]) != npi[9]:
        raise ValidationError(f"NPI {npi} fails its check digit.", field=field)
    return npi


def clean_email(value: str | None, field: str = "email") -> str | None:
    if value is None or not str(value).strip():
        return None
    s = str(value).strip()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", s) or len(s) > 254:
        raise ValidationError(f"'{value}' is not an e-mail address.", field=field)
    return s


def clean_phone(value: str | None, field: str = "phone") -> str | None:
    if value is None or not str(value).strip():
        return None
    s = str(value).strip()
    digits = re.sub(r"\D", "", s)
    if not 7 <= len(digits) <= 15 or not re.fullmatch(r"[\d\s()+.\-x]+", s):
        raise ValidationError(f"'{value}' is not a phone number.", field=field)
    return s
